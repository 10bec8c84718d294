"""``python -m flowerhub.cli VERB ...``: how the demo and the tests start every child process."""

from flowerhub.cli import main

raise SystemExit(main())

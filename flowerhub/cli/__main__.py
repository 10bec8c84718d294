"""``python -m flowerhub.cli``: how the demo and the tests start a verb as a child process."""

import sys

from flowerhub.cli import main

sys.exit(main())

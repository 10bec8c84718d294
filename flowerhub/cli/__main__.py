"""``python -m flowerhub.cli VERB ...``: the same as the ``flowerhub`` command (the demo's
children and the streams worker process start it this way)."""

import sys

from flowerhub.cli import main

sys.exit(main())

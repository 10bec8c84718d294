"""``python -m flowerhub.cli ...``: the same as the ``flowerhub`` command."""

import sys

from flowerhub.cli import main

sys.exit(main())

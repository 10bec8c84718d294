"""``python -m flowerhub.cli VERB ...`` (the children of the demo and the streams worker)."""

import sys

from flowerhub.cli import main

sys.exit(main())

"""``python -m semclust``: the same as the ``semclust`` command."""

import sys

from semclust.cli import main

sys.exit(main())

"""``python -m semclust.gui [FOLDER | RUN_FOLDER]``."""

import sys

from semclust.gui.app import main

sys.exit(main(sys.argv[1:]))

"""``python -m gui [FOLDER | RUN_FOLDER]``."""

import sys

from gui.app import main

sys.exit(main(sys.argv[1:]))

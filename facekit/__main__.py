"""`python -m facekit ...`: see facekit.cli."""

import sys

from facekit.cli import main

sys.exit(main())

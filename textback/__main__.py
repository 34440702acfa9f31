"""``python -m textback`` is the same as the ``textback`` console script."""

import sys

from textback.cli import main

sys.exit(main())

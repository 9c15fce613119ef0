"""`python -m denseav ...`: the same command line as the `denseav` script."""

import sys

from .cli import main

sys.exit(main())

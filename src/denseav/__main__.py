"""`python -m denseav ...`: the same command line as the `denseav` script."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())

"""`python -m mstkd` (and `torchrun -m mstkd train ...`) run the command line."""

from __future__ import annotations

import sys

from mstkd.cli.main import main

sys.exit(main())

"""`python -m mstkd` (and `torchrun -m mstkd train ...`) run the command line."""

from __future__ import annotations

from mstkd.cli.main import entry

entry()

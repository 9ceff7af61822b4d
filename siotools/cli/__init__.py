"""The ``siotools`` command line.

Every subcommand lives in its own module and registers itself through
:func:`siotools.cli._base.Command`. Errors caused by the user or the environment
print one sentence on stderr and exit with status 2; they never show a traceback.
"""

from __future__ import annotations

from siotools.cli._base import main

__all__ = ["main"]

"""``python -m siotools``: the command line."""

from siotools.cli import main

raise SystemExit(main())

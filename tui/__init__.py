"""The ``siotools tui`` console (installed as :mod:`siotools.tui`).

Needs the ``tui`` extra: ``pip install 'siotools[tui]'``.
"""

from __future__ import annotations

__all__: list[str] = []

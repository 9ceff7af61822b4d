"""Import optional extras with an error that says how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from siotools.exceptions import MissingExtraError

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``.

    Args:
        module: The top-level module to import, e.g. ``"textual"``.
        extra: The siotools extra that installs it, e.g. ``"tui"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, module) from exc

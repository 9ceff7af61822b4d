"""Per-cluster settings of the console, from ``~/.config/siotools/tui.toml``.

The file lists clusters by Redis URL and, optionally, key prefix::

    [[cluster]]
    url = "redis://prod-redis:6379/0"
    prefix = "socket.io"     # optional: any prefix on that Redis when left out
    read_only = true
    refresh = 5.0

The first entry that matches wins. ``read_only = true`` in the file cannot be turned off from
the command line; ``--refresh`` overrides ``refresh``. ``SIOTOOLS_TUI_CONFIG`` names another
file; ``XDG_CONFIG_HOME`` moves the default folder.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from siotools.exceptions import ConfigurationError

__all__ = ["DEFAULT_REFRESH", "MIN_REFRESH", "Settings", "config_path", "load_settings"]

DEFAULT_REFRESH = 2.0
MIN_REFRESH = 0.5


@dataclass(frozen=True, slots=True)
class Settings:
    """What the console runs with."""

    read_only: bool = False
    refresh: float = DEFAULT_REFRESH


def config_path() -> Path:
    """The settings file (it may not exist)."""
    explicit = os.environ.get("SIOTOOLS_TUI_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "siotools" / "tui.toml"


def _strip_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, host = rest.rpartition("@")
    user = auth.partition(":")[0]
    return f"{scheme}://{user + '@' if user else ''}{host}"


def load_settings(
    url: str,
    prefix: str,
    *,
    read_only: bool = False,
    refresh: float | None = None,
    path: Path | None = None,
) -> Settings:
    """Settings for the cluster at ``url``/``prefix``: the file's entry, then the flags.

    Raises:
        ConfigurationError: The file is not valid TOML or has wrong types.
    """
    entry: dict[str, Any] = {}
    path = path or config_path()
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path} is not valid TOML: {exc}") from exc
        wanted = {url, _strip_password(url)}
        for item in data.get("cluster", []):
            if not isinstance(item, dict):
                raise ConfigurationError(f"{path}: every [[cluster]] must be a table")
            if item.get("url") in wanted and item.get("prefix", prefix) == prefix:
                entry = item
                break
    file_read_only = entry.get("read_only", False)
    file_refresh = entry.get("refresh", DEFAULT_REFRESH)
    if not isinstance(file_read_only, bool):
        raise ConfigurationError(f"{path}: read_only must be true or false")
    if not isinstance(file_refresh, int | float) or isinstance(file_refresh, bool):
        raise ConfigurationError(f"{path}: refresh must be a number of seconds")
    chosen = float(refresh if refresh is not None else file_refresh)
    if chosen < MIN_REFRESH:
        where = "--refresh" if refresh is not None else f"refresh in {path}"
        raise ConfigurationError(
            f"{where} {chosen:g} is too short: "
            f"the refresh interval must be at least {MIN_REFRESH} s"
        )
    return Settings(read_only=read_only or file_read_only, refresh=chosen)

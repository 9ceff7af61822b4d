"""Argument parsing and error handling shared by every subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from siotools._version import __version__
from siotools.exceptions import (
    ConfigurationError,
    MissingExtraError,
    RedisUnavailableError,
    RequestError,
    SiotoolsError,
)

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "ArgumentParser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran but did not succeed (timeout, not found)
EXIT_USAGE = 2  # wrong arguments, or Redis/an extra is missing

# Subcommand modules; each defines ``register(subparsers)`` returning nothing and
# sets ``func`` on its parser to an ``(args) -> int`` callable.
_COMMAND_MODULES = [
    "siotools.cli.demo",
    "siotools.cli.doctor",
    "siotools.cli.exporter",
    "siotools.cli.ops",
    "siotools.cli.sniff",
    "siotools.cli.tui",
]

Handler = Callable[[argparse.Namespace], int]


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one sentence and exit status 2."""

    def error(self, message: str) -> NoReturn:
        if "arguments are required" in message or "unrecognized arguments: -" in message:
            # Socket ids may start with '-' (base64url): argparse then reads them as options.
            message += "; a socket id that starts with '-' goes after '--' (join -- -AbC room)"
        sys.stderr.write(f"{self.prog}: {message} (see '{self.prog} --help').\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> ArgumentParser:
    """Build the top-level parser with every subcommand registered."""
    parser = ArgumentParser(
        prog="siotools",
        description="Tools for Socket.IO clusters that share Redis.",
    )
    parser.add_argument("--version", action="version", version=f"siotools {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except (ConfigurationError, MissingExtraError, RedisUnavailableError) as exc:
        _fail(exc)
        return EXIT_USAGE
    except RequestError as exc:
        _fail(exc)
        return EXIT_FAILED
    except SiotoolsError as exc:
        _fail(exc)
        return EXIT_USAGE


def _fail(exc: BaseException) -> None:
    text = str(exc).strip() or type(exc).__name__
    if not text.endswith((".", "!", "?")):
        text += "."
    sys.stderr.write(f"siotools: {text}\n")

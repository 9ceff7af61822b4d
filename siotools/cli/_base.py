"""Argument parsing and error handling shared by every subcommand."""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import unquote

from siotools._version import __version__
from siotools.cli.options import URL_ENV, redact, resolve_options
from siotools.exceptions import (
    ConfigurationError,
    MissingExtraError,
    RedisUnavailableError,
    RequestError,
    SiotoolsError,
)

__all__ = ["EXIT_FAILED", "EXIT_NOBODY", "EXIT_OK", "EXIT_USAGE", "ArgumentParser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran but did not succeed (timeout, not found)
EXIT_USAGE = 2  # wrong arguments, or Redis/an extra is missing
EXIT_NOBODY = 3  # an emit went out but no socket was there to receive it

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

# Passwords seen in this run's arguments and environment: hidden in every message printed.
_secrets: set[str] = set()


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one sentence and exit status 2.

    A mistyped option gets the closest real one ("did you mean --nsp?"); the hint about
    socket ids that start with '-' appears only where such a word was given.
    """

    argv: Sequence[str] = ()
    """The words being parsed (set by :func:`main`), to explain errors with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: dict[str, ArgumentParser] = {}
        """The subcommands' parsers by name (the top-level parser's)."""

    def error(self, message: str) -> NoReturn:
        say(f"{self.prog}: {self._explain(message)} (see '{self.prog} --help').")
        raise SystemExit(EXIT_USAGE)

    def unrecognized(self, words: Sequence[str]) -> NoReturn:
        """Fail on ``words`` that no option or positional of this parser took."""
        self.error(f"unrecognized arguments: {' '.join(words)}")

    def option_strings(self) -> list[str]:
        """Every option this parser knows (``--nsp``, ``-h``, ...)."""
        # argparse has no public list of a parser's options; tests/cli pins this use.
        return [s for action in self._actions for s in action.option_strings]

    def _explain(self, message: str) -> str:
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            options = re.findall(r"'([^']*)'", choice[2])
            close = difflib.get_close_matches(choice[1], options, n=1, cutoff=0.6)
            return message + (f"; did you mean {close[0]!r}?" if close else "")
        known = self.option_strings()
        hints: list[str] = []
        dashed = False
        for word in self.argv:
            if word == "--":
                break
            name = word.partition("=")[0]
            if not word.startswith("-") or len(word) < 2 or name in known:
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            if close and name.startswith("--"):
                hints.append(f"did you mean {close[0]} instead of {name}?")
            else:
                dashed = True
        if dashed and self._takes_socket_id():
            # Socket ids may start with '-' (base64url): argparse then reads them as options.
            hints.append("a socket id that starts with '-' goes after '--' (join -- -AbC room)")
        return "; ".join([message, *hints])

    def _takes_socket_id(self) -> bool:
        return any(a.metavar == "SID" for a in self._actions if not a.option_strings)


def build_parser() -> ArgumentParser:
    """Build the top-level parser with every subcommand registered."""
    parser = ArgumentParser(
        prog="siotools",
        description="Tools for Socket.IO clusters that share Redis.",
        epilog=(
            "Every command reads --url from $SIOTOOLS_URL and --prefix from $SIOTOOLS_PREFIX "
            "when they are not given; a Redis Cluster is one node's URL with ?cluster=true, "
            "and --dialect sharded selects the 8.x sharded adapter. Exit status: 0 ok; 1 the "
            "operation failed (timeout, not found, no node serves the namespace); 2 wrong "
            "arguments, Redis unreachable or an extra missing; 3 an emit that no socket "
            "received."
        ),
    )
    parser.add_argument("--version", action="version", version=f"siotools {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    parser.commands = dict(sub.choices)
    return parser


def say(text: str) -> None:
    """Print one line on stderr, with every password hidden."""
    sys.stderr.write(redact(text, *_secrets) + "\n")
    sys.stderr.flush()


def _collect_secrets(words: Sequence[str]) -> None:
    for word in [*words, os.environ.get(URL_ENV, "")]:
        m = re.search(r"://[^/?#@\s:]*:([^@\s/]+)@", word)
        if m:
            _secrets.update({m[1], unquote(m[1])})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    _collect_secrets(words)
    ArgumentParser.argv = words
    parser = build_parser()
    args, extras = parser.parse_known_args(words)
    if extras:
        parser.commands.get(args.command or "", parser).unrecognized(extras)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        resolve_options(args)
        return func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (siotools ... | head): not an error worth a sentence.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (ConfigurationError, MissingExtraError, RedisUnavailableError) as exc:
        _fail(exc)
        return EXIT_USAGE
    except RequestError as exc:
        _fail(exc)
        return EXIT_FAILED
    except SiotoolsError as exc:
        _fail(exc)
        return EXIT_USAGE
    except OSError as exc:
        _fail(exc)
        return EXIT_USAGE
    except Exception as exc:  # the last line of defence against a traceback
        if os.environ.get("SIOTOOLS_DEBUG"):
            raise
        _fail(
            exc,
            prefix=f"unexpected {type(exc).__name__}: ",
            suffix=" (a bug in siotools; SIOTOOLS_DEBUG=1 shows where)",
        )
        return EXIT_USAGE


def _fail(exc: BaseException, *, prefix: str = "", suffix: str = "") -> None:
    text = " ".join(str(exc).split())  # one line, whatever the library put in it
    text = (prefix + (text or type(exc).__name__)).rstrip(": ") + suffix
    if not text.endswith((".", "!", "?")):
        text += "."
    say(f"siotools: {text}")

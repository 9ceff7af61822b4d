"""Filtering and sorting of table rows (pure Python, no Textual).

Filter syntax, the same on every list:

* ``text``: a case-insensitive regular expression; when it does not compile it is matched
  as a plain substring, so ``a+b(`` still finds ``a+b(``;
* ``!text``: the rows that do *not* match.

The traffic view also takes the ``siotools sniff`` filters as ``field=value`` words
(``nsp=/chat room=lobby event=news kind=broadcast``), which must match exactly; the rest of
the text is the filter above.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "FIELDS",
    "Cell",
    "column_sort_keys",
    "compile_field_filter",
    "compile_filter",
    "is_literal",
    "narrows",
    "sort_key",
]

Cell = Any
"""A table cell: ``str``, ``int``, ``float`` or a ``rich.text.Text``."""


def compile_filter(text: str) -> Callable[[str], bool] | None:
    """A predicate over a row's search text, or None when ``text`` filters nothing."""
    inverse = text.startswith("!")
    body = text[1:] if inverse else text
    if not body:
        return None
    search: Callable[[str], bool]
    if is_literal(body):
        needle = body.lower()
        search = lambda s: needle in s  # noqa: E731 - search texts are lower-case (KeyedTable)
    else:
        try:
            pattern = re.compile(body, re.IGNORECASE)
            search = lambda s: pattern.search(s) is not None  # noqa: E731
        except re.error:
            needle = body.lower()
            search = lambda s: needle in s  # noqa: E731
    if inverse:
        return lambda s: not search(s)
    return search


_META = frozenset(".^$*+?{}[]\\|()")


def is_literal(text: str) -> bool:
    """True when ``text`` has no regex syntax (a regex and a substring then agree)."""
    return not _META.intersection(text)


def narrows(old: str, new: str) -> bool:
    """True when every row matching ``new`` also matches ``old`` (two plain substrings)."""
    return (
        bool(old)
        and not old.startswith("!")
        and not new.startswith("!")
        and is_literal(old)
        and is_literal(new)
        and old.lower() in new.lower()
    )


def plain(cell: Cell) -> str:
    """The text of a cell."""
    if isinstance(cell, str):
        return cell
    plain_text = getattr(cell, "plain", None)
    if isinstance(plain_text, str):
        return plain_text
    return str(cell)


def sort_key(cell: Cell) -> tuple[int, float, str]:
    """Numbers before text, numbers numerically, text case-insensitively (mixed columns)."""
    if isinstance(cell, bool):
        return (0, float(cell), "")
    if isinstance(cell, int | float):
        return (0, float(cell), "")
    return (1, 0.0, plain(cell).lower())


FIELDS = ("kind", "nsp", "room", "event")
"""The ``field=value`` filter words of the traffic view (the ``siotools sniff`` filters)."""


def tagged(field: str, value: str) -> str:
    """How a field is written into a row's search text for :func:`compile_field_filter`."""
    return f"\x00{field}={value.lower()}\x00"


def compile_field_filter(text: str) -> Callable[[str], bool] | None:
    """:func:`compile_filter` plus exact ``field=value`` words (see :data:`FIELDS`)."""
    required: list[str] = []
    rest: list[str] = []
    for word in text.split(" "):
        name, sep, value = word.partition("=")
        if sep and name in FIELDS and value:
            required.append(tagged(name, value))
        elif word:
            rest.append(word)
    free = compile_filter(" ".join(rest))
    if not required:
        return free

    def predicate(s: str) -> bool:
        return all(t in s for t in required) and (free is None or free(s))

    return predicate


def column_sort_keys(rows: Mapping[str, Sequence[Cell]], col: int) -> dict[str, Any]:
    """Row key -> sort key of column ``col``: floats for an all-number column, lower-case text
    for an all-text one (cheap to compare), :func:`sort_key` tuples for a mixed one."""
    cells = {k: r[col] if col < len(r) else "" for k, r in rows.items()}
    values = cells.values()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return {k: float(v) for k, v in cells.items()}
    if all(isinstance(v, str) for v in values):
        return {k: v.lower() for k, v in cells.items()}
    return {k: sort_key(v) for k, v in cells.items()}

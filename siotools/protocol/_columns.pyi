from typing import Any

def broadcast_columns(
    data: Any,
    offsets: Any,
    first: int,
    channel_codes: Any,
    sharded: Any,
    channel_fast: Any,
    channel_nsp: Any,
    max_size: int,
    dialect_values: tuple[str, str],
    dialect_column: tuple[dict[Any, int], list[Any]],
    type_codes: tuple[int, int],
    uid_column: tuple[dict[Any, int], list[Any]],
    event_column: tuple[dict[Any, int], list[Any]],
    objects: bool,
) -> tuple[
    bytes, bytes, list[Any] | None, list[Any] | None, list[Any] | None, list[Any] | None
]: ...

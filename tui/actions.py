"""The mutating actions: prompt, confirm with the blast radius, run, re-query, report.

Each flow runs in a worker of the screen it was started from (modals are awaited with
``push_screen_wait``). Every flow refuses to run in read-only mode even if reached by some
path other than a key binding.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

from siotools.exceptions import RedisUnavailableError, RequestTimeout

from .confirm import ConfirmAction
from .emit_prompt import EmitPrompt
from .room_picker import RoomPicker
from .rows import Cell
from .source import Outcome, Shortfall, run_bulk, run_one
from .table import Diff

if TYPE_CHECKING:
    from .base import ClusterScreen

__all__ = [
    "disconnect_all_flow",
    "disconnect_flow",
    "emit_flow",
    "join_flow",
    "leave_all_flow",
    "leave_flow",
]

_SHOW = 5


def _allowed(screen: ClusterScreen) -> bool:
    if screen.siotools.read_only:
        screen.notify("read-only mode: no changes to the cluster", severity="warning")
        return False
    return True


def _members(screen: ClusterScreen, room: str) -> list[str] | None:
    data = screen.namespace_data()
    return None if data is None else data.members.get(room, [])


def _some(ids: list[str]) -> str:
    shown = ", ".join(ids[:_SHOW])
    return shown + (f" and {len(ids) - _SHOW} more" if len(ids) > _SHOW else "")


async def _confirm(
    screen: ClusterScreen,
    title: str,
    radius: list[str],
    run: Callable[[bool], Awaitable[Outcome]],
    *,
    offer_close: bool = False,
) -> Outcome | None:
    before: list[Mapping[str, tuple[Cell, ...]]] = []

    async def run_from_here(close: bool) -> Outcome:
        before.append(screen.table.rows)
        return await run(close)

    outcome = await screen.app.push_screen_wait(
        ConfirmAction(title, radius, run_from_here, offer_close=offer_close)
    )
    if outcome is None:
        screen.set_note("cancelled")
        return None
    loaded = await screen.load(highlight=True)
    diff = None
    if loaded is not None and before:
        # Against the rows shown when the action ran, not the last load: a refresh of its
        # own (the screen's, on coming back from the modal) may have shown the change first.
        diff = Diff.between(before[0], screen.table.rows)
        screen.table.mark(diff)
    after = "" if diff is None else f"; after re-query: {diff.summary()}"
    screen.set_note(f"{outcome.summary}{after}")
    screen.notify(outcome.summary, severity="information" if outcome.ok else "error")
    return outcome


async def join_flow(screen: ClusterScreen, sid: str) -> None:
    """Pick or type a room, then make socket ``sid`` join it."""
    if not _allowed(screen):
        return
    nsp = screen.namespace
    data = screen.namespace_data()
    current = set(data.socket_rooms().get(sid, [])) if data else set()
    # The namespace cache may be older than the socket's own rooms on a detail screen.
    current |= screen.rooms_known(sid)
    choices = sorted(r for r in (data.members if data else {}) if r not in current)
    room = await screen.app.push_screen_wait(RoomPicker(f"Join {sid} to a room", choices))
    if not room:
        screen.set_note("cancelled")
        return
    members = _members(screen, room)
    size = "unknown" if members is None else f"{_members_now(len(members))}"
    radius = [
        f"Namespace {nsp}: 1 socket",
        f"  {sid}",
        f"joins room {room!r} ({'new room' if members == [] else size})",
    ]
    await _confirm(
        screen,
        "Remote join",
        radius,
        lambda _close: run_one(
            f"join {room}", lambda: screen.cluster.remote_join(sid, room, namespace=nsp)
        ),
    )


def _members_now(n: int) -> str:
    return f"{n} member now" if n == 1 else f"{n} members now"


async def leave_flow(screen: ClusterScreen, sid: str, room: str | None = None) -> None:
    """Make socket ``sid`` leave ``room`` (picked from its rooms when None)."""
    if not _allowed(screen):
        return
    nsp = screen.namespace
    if room is None:
        try:
            rooms = await screen.cluster.client_rooms(sid, namespace=nsp)
        except RequestTimeout:
            screen.set_note(f"socket {sid} is gone")
            return
        except RedisUnavailableError as exc:
            screen.siotools.redis_down(exc)
            return
        choices = [r for r in rooms if r != sid]
        if not choices:
            screen.notify(f"{sid} is in no named room", severity="warning")
            return
        picked = await screen.app.push_screen_wait(
            RoomPicker(f"{sid} leaves which room?", choices, free_text=False)
        )
        if not picked:
            screen.set_note("cancelled")
            return
        room = picked
    members = _members(screen, room)
    size = "" if members is None else f" ({_members_now(len(members))})"
    chosen = room
    await _confirm(
        screen,
        "Remote leave",
        [f"Namespace {nsp}: 1 socket", f"  {sid}", f"leaves room {room!r}{size}"],
        lambda _close: run_one(
            f"leave {chosen}", lambda: screen.cluster.remote_leave(sid, chosen, namespace=nsp)
        ),
    )


async def disconnect_flow(screen: ClusterScreen, sid: str) -> None:
    """Disconnect socket ``sid`` (optionally closing the whole client connection)."""
    if not _allowed(screen):
        return
    nsp = screen.namespace
    data = screen.namespace_data()
    rooms = data.socket_rooms().get(sid, []) if data else []
    radius = [
        f"Namespace {nsp}: 1 socket",
        f"  {sid}",
        f"in rooms: {', '.join(rooms) or 'none'}",
        "is disconnected.",
    ]
    await _confirm(
        screen,
        "Remote disconnect",
        radius,
        lambda close: run_one(
            "disconnect" + (" (closed)" if close else ""),
            lambda: screen.cluster.remote_disconnect(sid, close, namespace=nsp),
        ),
        offer_close=True,
    )


async def emit_flow(screen: ClusterScreen, target: str, *, is_room: bool) -> None:
    """Emit an event with JSON arguments to a room or a socket."""
    if not _allowed(screen):
        return
    nsp = screen.namespace
    what = f"room {target!r}" if is_room else f"socket {target}"
    request = await screen.app.push_screen_wait(EmitPrompt(what))
    if request is None:
        screen.set_note("cancelled")
        return
    if is_room:
        members = _members(screen, target)
        reach = "unknown number of sockets" if members is None else f"{len(members)} sockets"
    else:
        reach = "1 socket"
    radius = [
        f"Namespace {nsp}: event {request.event!r} with {len(request.args)} argument(s)",
        f"to {what}: {reach}",
    ]
    await _confirm(
        screen,
        "Emit",
        radius,
        lambda _close: run_one(
            f"emit {request.event}",
            lambda: screen.cluster.emit(
                request.event, *request.args, rooms=[target], namespace=nsp
            ),
        ),
    )


async def _room_sockets(screen: ClusterScreen, room: str) -> tuple[list[str], Shortfall | None]:
    try:
        return await screen.cluster.clients([room], namespace=screen.namespace), None
    except RequestTimeout as exc:
        return list(exc.partial or []), Shortfall.of(exc)


async def _room_targets(
    screen: ClusterScreen, room: str
) -> tuple[list[str], Shortfall | None] | None:
    """The sockets a room-wide action would touch, or None when there is nothing to do
    (read-only, Redis down, empty room: each says so)."""
    if not _allowed(screen):
        return None
    try:
        sids, short = await _room_sockets(screen, room)
    except RedisUnavailableError as exc:
        screen.siotools.redis_down(exc)
        return None
    if not sids:
        screen.notify(f"room {room!r} is empty", severity="warning")
        return None
    return sids, short


async def leave_all_flow(screen: ClusterScreen, room: str) -> None:
    """Every socket of ``room`` leaves it."""
    targets = await _room_targets(screen, room)
    if targets is None:
        return
    sids, short = targets
    nsp = screen.namespace
    radius = [f"Namespace {nsp}: {len(sids)} sockets leave room {room!r}", f"  {_some(sids)}"]
    if short is not None:
        radius.append(f"(membership is partial: {short})")
    await _confirm(
        screen,
        "Clear room",
        radius,
        lambda _close: run_bulk(
            f"leave {room}",
            [partial(screen.cluster.remote_leave, s, room, namespace=nsp) for s in sids],
        ),
    )


async def disconnect_all_flow(screen: ClusterScreen, room: str) -> None:
    """Disconnect every socket of ``room``."""
    targets = await _room_targets(screen, room)
    if targets is None:
        return
    sids, short = targets
    nsp = screen.namespace
    radius = [
        f"Namespace {nsp}: {len(sids)} sockets of room {room!r} are disconnected",
        f"  {_some(sids)}",
    ]
    if short is not None:
        radius.append(f"(membership is partial: {short})")
    await _confirm(
        screen,
        "Disconnect room",
        radius,
        lambda close: run_bulk(
            "disconnect" + (" (closed)" if close else ""),
            [partial(screen.cluster.remote_disconnect, s, close, namespace=nsp) for s in sids],
        ),
        offer_close=True,
    )

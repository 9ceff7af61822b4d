"""What a requester waits for (Node's completion rules), read from a request frame."""

from __future__ import annotations

from siotools.dialects.answers import Expectation, counts_as_answer, expectation
from siotools.protocol import (
    AllRoomsRequest,
    BroadcastAckRequest,
    LegacyAllRoomsRequest,
    LegacyRemoteJoinRequest,
    RemoteJoinRequest,
    RoomsResponse,
    ServerSideEmitRequest,
    make_broadcast,
)


def test_how_many_answers_each_generation_waits_for() -> None:
    # socket.io-redis 5.x waits for NUMSUB answers (its own included); 8.x for NUMSUB - 1.
    assert expectation(LegacyAllRoomsRequest(request_id="r1"), 3) == Expectation(
        "allRooms", "r1", 3
    )
    assert expectation(AllRoomsRequest(uid="u", request_id="r2"), 3) == Expectation(
        "allRooms", "r2", 2
    )
    assert expectation(AllRoomsRequest(uid="u", request_id="r2"), 0) == Expectation(
        "allRooms", "r2", 0
    )
    ack = BroadcastAckRequest(uid="u", request_id="r3", packet={}, opts={})
    assert expectation(ack, 2) == Expectation("broadcastWithAck", "r3", 1)
    # The first answer completes a request about one socket.
    assert expectation(LegacyRemoteJoinRequest(request_id="r4", sid="s", room="x"), 5) == (
        Expectation("remoteJoin", "r4", None)
    )
    assert expectation(RemoteJoinRequest(uid="u", request_id="r5", sid="s", room="x"), 5) == (
        Expectation("remoteJoin", "r5", None)
    )


def test_frames_that_expect_no_answer() -> None:
    assert expectation(RemoteJoinRequest(uid="u", opts={}, rooms=("a",)), 3) is None  # socketsJoin
    assert expectation(ServerSideEmitRequest(uid="u", data=["e"]), 3) is None  # no ack
    assert expectation(ServerSideEmitRequest(uid="u", data=["e"], request_id=""), 3) is None
    assert expectation(make_broadcast(uid="u", data=["e"]), 3) is None
    assert expectation(RoomsResponse(request_id="r", rooms=("a",)), 3) is None
    assert counts_as_answer(RoomsResponse(request_id="r", rooms=("a",))) == "r"
    assert counts_as_answer(AllRoomsRequest(uid="u", request_id="r")) is None

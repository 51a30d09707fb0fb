"""The id and de-duplication key rules of LoRaWAN uplinks (issue 14, finding 5) as tables; pure, no I/O.

Before: the frame key was (dev_eui, fCnt, fPort), so a device that reset its counter lost every new reading
within 60 s; and the id came from ChirpStack's deduplicationId, so the same frame from two ChirpStack replicas
(or redelivered to another instance of a share group) got two ids that consumers could not match.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from distributor.demo_feed import to_json, uplink_event
from distributor.envelope import message_id
from distributor.sources import chirpstack
from distributor.sources.chirpstack import dedup_key, frame_key, message_key, payload_part, time_bucket
from distributor.sources.chirpstack_event import ChirpStackEvent
from distributor.sources.chirpstack_parse import parse_json, parse_protobuf

EUI = "a81758fffe0312ab"
FRAME = bytes.fromhex("0101170231" "04008b" "0508" "070e3d")
OTHER = bytes.fromhex("0100e2022904008b")
HEX = "010117023104008b0508070e3d"


def up(*, dedup: str | None = "dd-1", f_cnt: int = 42, f_port: int = 5, data: bytes = FRAME,
       time: str | None = "2026-11-22T10:00:04.500000000Z") -> ChirpStackEvent:
    return ChirpStackEvent("up", EUI, time=time, dedup_id=dedup, f_cnt=f_cnt, f_port=f_port, data=data)


def test_the_rule_written_out() -> None:
    """Pinned: a change here changes every LoRaWAN message id (say so in the release notes)."""
    ev = up()
    assert message_key(ev) == f"lorawan:{EUI}:42:5:{HEX}:179534160"
    assert dedup_key(ev) == "chirpstack:dd-1"
    assert frame_key(ev) == (EUI, 42, 5, HEX)


def test_a_payload_longer_than_any_frame_is_keyed_by_its_hash() -> None:
    big = bytes(range(256)) + b"!"
    assert payload_part(bytes(range(256))) == bytes(range(256)).hex()
    assert payload_part(big).startswith("sha256-") and len(payload_part(big)) == 7 + 64
    assert message_key(up(data=big)) != message_key(up(data=big[:-1] + b"?"))


SAME_ID: dict[str, tuple[ChirpStackEvent, ChirpStackEvent]] = {
    "two replicas, two deduplicationIds, 40 ms apart": (up(dedup="replica-a"),
                                                         up(dedup="replica-b", time="2026-11-22T10:00:04.54Z")),
    "a redelivery of one event": (up(), up()),
    "the same instant with a zone offset": (up(), up(time="2026-11-22T12:00:04.5+02:00")),
    "nanoseconds or none": (up(time="2026-11-22T10:00:00Z"), up(time="2026-11-22T10:00:09.999999999Z")),
    "no time: the deduplicationId, as before": (up(time=None), up(time=None, data=OTHER)),
    "an unreadable time counts as none": (up(time="yesterday"), up(time=None)),
}

OTHER_ID: dict[str, tuple[ChirpStackEvent, ChirpStackEvent]] = {
    "a counter reset: same fCnt, new payload": (up(dedup="a"), up(dedup="b", data=OTHER)),
    "a counter reset with an identical frame, later": (up(dedup="a"), up(dedup="b", time="2026-11-22T11:13:04Z")),
    "another counter": (up(), up(f_cnt=43)),
    "another port": (up(), up(f_port=6)),
    "copies either side of a bucket edge (the known limit)": (up(time="2026-11-22T10:00:09.99Z"),
                                                              up(time="2026-11-22T10:00:10.01Z")),
    "no time, other deduplicationIds": (up(dedup="a", time=None), up(dedup="b", time=None)),
}


@pytest.mark.parametrize(("a", "b"), SAME_ID.values(), ids=SAME_ID.keys())
def test_the_same_uplink_gets_the_same_id(a: ChirpStackEvent, b: ChirpStackEvent) -> None:
    assert message_id(message_key(a)) == message_id(message_key(b))


@pytest.mark.parametrize(("a", "b"), OTHER_ID.values(), ids=OTHER_ID.keys())
def test_different_uplinks_get_different_ids(a: ChirpStackEvent, b: ChirpStackEvent) -> None:
    assert message_id(message_key(a)) != message_id(message_key(b))


@pytest.mark.parametrize(("a", "b", "same_frame"), [
    (up(dedup="a"), up(dedup="b"), True),                 # two replicas: one frame
    (up(dedup="a"), up(dedup="b", data=OTHER), False),     # a counter reset: another frame
    (up(f_cnt=1), up(f_cnt=2), False),
])
def test_the_frame_key_includes_the_payload(a: ChirpStackEvent, b: ChirpStackEvent, same_frame: bool) -> None:
    assert (frame_key(a) == frame_key(b)) is same_frame


@pytest.mark.parametrize(("ev", "key"), [
    (up(), "chirpstack:dd-1"),                                       # the source's own id
    (up(dedup=None), f"lorawan:{EUI}:42:5:{HEX}:179534160"),  # none: the message key
    (up(dedup=None, time=None), f"lorawan:{EUI}:42:5:{HEX}"),
])
def test_the_dedup_key_is_the_sources_own_id_when_there_is_one(ev: ChirpStackEvent, key: str) -> None:
    assert dedup_key(ev) == key


TIMES = [
    ("2026-11-22T10:00:04.5Z", 179534160),
    ("2026-11-22T10:00:04.123456789Z", 179534160),
    ("2026-11-22T10:00:04", 179534160),            # no zone: UTC
    ("2026-11-22T11:00:04+01:00", 179534160),
    ("2026-11-22T10:00:10Z", 179534161),
    ("2026-11-22T10:00:04.Z", 179534160),         # Python reads it; not ChirpStack's form, so never from the cache
    ("1969-12-31T23:59:59.5Z", -1),               # before the epoch: floor, not truncation
    ("2026-11-22T10:00:04.١٢Z", None),            # other digits than ASCII are not RFC 3339
    ("2026-11-22T10:00:04.1234567890Z", 179534160),
    (None, None), ("", None), ("not a time", None), ("9999-99-99T00:00:00Z", None),
]


@pytest.mark.parametrize(("text", "bucket"), TIMES)
def test_time_bucket(text: str | None, bucket: int | None) -> None:
    assert time_bucket(text) == bucket


@pytest.mark.parametrize("before", [t for t, _ in TIMES])
@pytest.mark.parametrize(("text", "bucket"), TIMES)
def test_the_same_second_shortcut_answers_what_parsing_does(before: str | None, text: str | None,
                                                            bucket: int | None) -> None:
    """Whatever was read before (the one-second cache), a time gets the bucket a cold instance gives it."""
    time_bucket(before)
    assert time_bucket(text) == bucket
    chirpstack._last_second[:] = ["", None]
    assert time_bucket(text) == bucket


def test_both_marshalers_give_the_same_id() -> None:
    ev = uplink_event(dev_eui=EUI, data=FRAME, f_cnt=42, when=datetime(2026, 11, 22, 10, 0, 4, 500000, tzinfo=UTC))
    from_json = parse_json("up", to_json(ev))
    from_protobuf = parse_protobuf("up", ev.SerializeToString())
    assert message_key(from_json) == message_key(from_protobuf) == f"lorawan:{EUI}:42:5:{HEX}:179534160"

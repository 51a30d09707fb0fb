"""ChirpStack v4 events from real chirpstack_api messages: both marshalers must give the same fields."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from chirpstack_api import common, gw, integration
from google.protobuf import json_format

from distributor.sources.chirpstack_event import ChirpStackEvent, EventParseError, GatewayReception
from distributor.sources.chirpstack_parse import parse, parse_json, parse_protobuf, parse_topic

PAYLOAD = bytes.fromhex("010117023104008b0508070e3d")
DEV_EUI = "A81758FFFE03B2C1"  # upper case on purpose: parsers must lower it


def device_info(msg: Any) -> None:
    d = msg.device_info
    d.tenant_id = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
    d.tenant_name = "City"
    d.application_id = "17c82e96-be03-4f38-aef3-f83d48582d97"
    d.application_name = "Sensors"
    d.device_profile_id = "14855bf7-d10d-4aee-b618-ebfcb64dc7ad"
    d.device_profile_name = "Elsys ERS"
    d.device_name = "Room 101"
    d.dev_eui = DEV_EUI
    d.device_class_enabled = common.CLASS_A
    d.tags["floor"] = "1"
    msg.time.FromJsonString("2024-05-01T10:00:00.123456789Z")


def uplink() -> Any:
    m = integration.UplinkEvent(deduplication_id="3f1b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d", dev_addr="01ab23cd",
                                adr=True, dr=5, f_cnt=42, f_port=5, data=PAYLOAD, region_config_id="eu868")
    device_info(m)
    rx = m.rx_info.add(gateway_id="0016c001f153a14c", uplink_id=123456, rssi=-87, snr=9.8, channel=2,
                       crc_status=gw.CRC_OK)
    rx.gw_time.FromJsonString("2024-05-01T10:00:00.100Z")
    rx.location.latitude, rx.location.longitude = 55.67, 12.56
    m.rx_info.add(gateway_id="0016c001f153a14d", uplink_id=654321, rssi=-110, snr=0, channel=2)  # snr 0: no JSON key
    m.tx_info.frequency = 868100000
    m.tx_info.modulation.lora.bandwidth = 125000
    m.tx_info.modulation.lora.spreading_factor = 7
    m.tx_info.modulation.lora.code_rate = gw.CR_4_5
    return m


def status(unavailable: bool = False) -> Any:
    m = integration.StatusEvent(deduplication_id="0c0a3e3f-6a7b-4c1d-9e2f-3a4b5c6d7e8f", margin=7,
                                external_power_source=False, battery_level_unavailable=unavailable,
                                battery_level=0 if unavailable else 87.4016)
    device_info(m)
    return m


def join() -> Any:
    m = integration.JoinEvent(deduplication_id="5b6c7d8e-9f00-4112-8334-455667788990", dev_addr="01ab23cd")
    device_info(m)
    return m


def log(level: int = integration.WARNING, code: int = integration.UPLINK_CODEC) -> Any:
    m = integration.LogEvent(level=level, code=code, description="decoder threw")
    m.context["deduplication_id"] = "3f1b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d"
    device_info(m)
    return m


def as_json(msg: Any, **kw: Any) -> bytes:
    text: str = json_format.MessageToJson(msg, **kw)
    return text.encode()


def fields(ev: ChirpStackEvent) -> dict[str, Any]:
    d = dataclasses.asdict(ev)
    del d["raw"]
    return d


def both(event: str, msg: Any) -> tuple[ChirpStackEvent, ChirpStackEvent]:
    """(from JSON, from protobuf), asserting they agree."""
    from_json, from_pb = parse_json(event, as_json(msg)), parse_protobuf(event, msg.SerializeToString())
    assert fields(from_json) == fields(from_pb)
    return from_json, from_pb


def test_uplink_both_marshalers_agree() -> None:
    msg = uplink()
    body = as_json(msg)
    assert b'"snr"' in body and body.count(b'"snr"') == 1  # the JSON mapping drops the second gateway's 0
    ev, from_pb = both("up", msg)
    assert (ev.event, ev.dev_eui, ev.tenant_id, ev.application_id) == (
        "up", "a81758fffe03b2c1", "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "17c82e96-be03-4f38-aef3-f83d48582d97")
    assert (ev.device_name, ev.device_profile_name, ev.tags) == ("Room 101", "Elsys ERS", {"floor": "1"})
    assert ev.time == "2024-05-01T10:00:00.123456789Z"
    assert ev.dedup_id == "3f1b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d"
    assert (ev.f_cnt, ev.f_port, ev.data, ev.dr, ev.frequency, ev.confirmed) == (42, 5, PAYLOAD, 5, 868100000, False)
    assert ev.rx == [GatewayReception("0016c001f153a14c", -87, 9.8), GatewayReception("0016c001f153a14d", -110, 0.0)]
    assert ev.object is None and ev.dev_addr == "01ab23cd"
    assert ev.battery_level is None and ev.level is None
    assert ev.raw == orjson.loads(body)
    assert from_pb.raw == json_format.MessageToDict(msg)


def test_uplink_with_default_values_printed() -> None:
    try:
        body = as_json(uplink(), always_print_fields_with_no_presence=True)
    except TypeError:  # protobuf < 5.26 names it differently
        body = as_json(uplink(), including_default_value_fields=True)
    assert body.count(b'"snr"') == 2
    assert fields(parse_json("up", body)) == fields(parse_protobuf("up", uplink().SerializeToString()))


def test_uplink_defaults_when_omitted() -> None:
    msg = integration.UplinkEvent(f_cnt=0, f_port=0, dr=0)  # all proto3 defaults: JSON has no such keys
    msg.device_info.dev_eui = "0101010101010101"
    ev, _ = both("up", msg)
    assert (ev.f_cnt, ev.f_port, ev.dr, ev.data, ev.frequency, ev.rx, ev.time, ev.dedup_id, ev.dev_addr) == (
        0, 0, 0, b"", None, [], None, None, None)


def test_uplink_object_from_chirpstack_codec() -> None:
    msg = uplink()
    msg.object.update({"temperature": 27.9, "humidity": 41, "labels": ["a", "b"], "nested": {"ok": True}})
    ev, from_pb = both("up", msg)
    assert ev.object == {"temperature": 27.9, "humidity": 41, "labels": ["a", "b"], "nested": {"ok": True}}
    assert from_pb.object is not None and from_pb.object["humidity"] == 41  # 41.0: Struct numbers are doubles


def test_chirpstack_style_json() -> None:
    """As ChirpStack itself writes it: every top-level field emitted, "+00:00" offsets, a null object."""
    doc = {
        "deduplicationId": "9d0e1f2a-3b4c-4d5e-8f60-718293a4b5c6", "time": "2024-05-01T10:00:00.5+00:00",
        "deviceInfo": {"tenantId": "t", "tenantName": "T", "applicationId": "a", "applicationName": "A",
                       "deviceProfileId": "p", "deviceProfileName": "P", "deviceName": "n",
                       "devEui": "0004a30b001b7ad2", "deviceClassEnabled": "CLASS_A", "tags": {}},
        "devAddr": "", "adr": True, "dr": 0, "fCnt": 0, "fPort": 1, "confirmed": True, "data": "qg==",
        "object": None, "rxInfo": [{"gatewayId": "0016c001f153a14c", "uplinkId": 1, "rssi": -36, "nsTime": "x"}],
        "txInfo": {"frequency": 868500000}, "relayRxInfo": None, "regionConfigId": "eu868",
    }
    ev = parse_json("up", orjson.dumps(doc))
    assert (ev.time, ev.dr, ev.f_cnt, ev.confirmed, ev.data, ev.object, ev.dev_addr) == (
        "2024-05-01T10:00:00.5+00:00", 0, 0, True, b"\xaa", None, None)
    assert ev.rx == [GatewayReception("0016c001f153a14c", -36, 0.0)]


def test_unknown_fields_and_lenient_numbers() -> None:
    doc = orjson.loads(as_json(uplink()))
    doc["futureField"] = 1
    doc["rxInfo"][1]["gwTime"] = "2024-05-01T10:00:00.1Z"
    doc["rxInfo"][1]["futureGatewayField"] = {"x": [1]}
    doc["fCnt"] = "42"  # a 64-bit style numeric string
    doc["data"] = "AQEXAjEEAIsFCAcOPQ"  # no padding: accepted by the JSON mapping
    ev = parse_json("up", orjson.dumps(doc))
    assert fields(ev) == fields(parse_protobuf("up", uplink().SerializeToString()))
    assert ev.raw["futureField"] == 1


@pytest.mark.parametrize("unavailable", [False, True])
def test_status(unavailable: bool) -> None:
    ev, _ = both("status", status(unavailable))
    assert (ev.margin, ev.external_power_source) == (7, False)
    assert ev.battery_level == (None if unavailable else 87.4016)
    assert ev.dedup_id == "0c0a3e3f-6a7b-4c1d-9e2f-3a4b5c6d7e8f" and ev.f_cnt is None


def test_join() -> None:
    ev, _ = both("join", join())
    assert (ev.dev_addr, ev.time, ev.dev_eui) == ("01ab23cd", "2024-05-01T10:00:00.123456789Z", "a81758fffe03b2c1")


def test_log() -> None:
    ev, _ = both("log", log())
    assert (ev.level, ev.code, ev.description, ev.dedup_id) == ("WARNING", "UPLINK_CODEC", "decoder threw", None)
    assert ev.raw["context"] == {"deduplication_id": "3f1b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d"}


def test_log_zero_enums_are_omitted_in_json_but_named() -> None:
    msg = log(integration.INFO, integration.UNKNOWN)
    assert b'"level"' not in as_json(msg)
    ev, _ = both("log", msg)
    assert (ev.level, ev.code) == ("INFO", "UNKNOWN")
    assert parse_json("log", b'{"deviceInfo": {"devEui": "0102030405060708"}, "level": 2, "code": 99}').code == "99"


@pytest.mark.parametrize(("event", "msg"), [
    ("ack", integration.AckEvent(deduplication_id="d", queue_item_id="q", acknowledged=True, f_cnt_down=3)),
    ("txack", integration.TxAckEvent(downlink_id=7, queue_item_id="q", f_cnt_down=3, gateway_id="g")),
    ("location", integration.LocationEvent(deduplication_id="d", location=common.Location(latitude=1, longitude=2))),
])
def test_other_events_keep_common_fields(event: str, msg: Any) -> None:
    device_info(msg)
    ev, _ = both(event, msg)
    assert (ev.event, ev.dev_eui, ev.device_name, ev.f_cnt) == (event, "a81758fffe03b2c1", "Room 101", None)
    assert ev.dedup_id == (None if event == "txack" else "d")


def test_integration_event_follows_installed_api() -> None:
    """IntegrationEvent left chirpstack-api in 4.15; older packages still decode it."""
    if hasattr(integration, "IntegrationEvent"):
        msg = integration.IntegrationEvent(integration_name="x", event_type="y")
        device_info(msg)
        assert parse_protobuf("integration", msg.SerializeToString()).event == "integration"
    else:
        with pytest.raises(EventParseError, match="integration"):
            parse_protobuf("integration", join().SerializeToString())
    assert parse_json("integration", as_json(join())).dev_eui == "a81758fffe03b2c1"


@pytest.mark.parametrize(("content_type", "wire"), [
    (None, "json"), (None, "protobuf"), ("application/json", "json"), ("application/json; charset=utf-8", "json"),
    ("application/octet-stream", "protobuf"), ("application/x-protobuf", "protobuf"), ("text/plain", "json"),
    ("text/plain", "protobuf"),
])
def test_parse_detects_the_marshaler(content_type: str | None, wire: str) -> None:
    msg = uplink()
    body = b" \n" + as_json(msg) if wire == "json" else msg.SerializeToString()
    ev = parse("up", body, content_type)
    assert fields(ev) == fields(parse_protobuf("up", msg.SerializeToString()))


def test_content_type_wins_over_sniffing() -> None:
    with pytest.raises(EventParseError, match="protobuf"):
        parse("up", as_json(uplink()), "application/octet-stream")
    with pytest.raises(EventParseError, match="not JSON"):
        parse("up", uplink().SerializeToString(), "application/json")


def _uplink_doc(**changes: Any) -> bytes:
    doc = orjson.loads(as_json(uplink()))
    doc.update(changes)
    return orjson.dumps(doc)


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "not JSON"),
    (b"", "not JSON"),
    (b"[]", "expected a JSON object, got list"),
    (b"{}", "deviceInfo missing"),
    (b'{"deviceInfo": "x"}', "deviceInfo must be an object"),
    (b'{"deviceInfo": {"deviceName": "n"}}', "devEui missing"),
    (b'{"deviceInfo": {"devEui": 1234}}', "devEui must be 16 hex digits"),
    (b'{"deviceInfo": {"devEui": "a81758fffe0312a\\u0000"}}', "devEui must be 16 hex digits"),
    (b'{"deviceInfo": {"devEui": "' + b"a" * 1_000_000 + b'"}}', "devEui must be 16 hex digits"),
    (b'{"deviceInfo": {"devEui": "a81758fffe0312ag"}}', "devEui must be 16 hex digits"),
    (_uplink_doc(deduplicationId="d" * 101), "deduplicationId is longer than 100"),
    (_uplink_doc(data="not base64!"), "data is not valid base64"),
    (_uplink_doc(data=12), "data must be a base64 string"),
    (_uplink_doc(fCnt="forty-two"), "fCnt must be an integer"),
    (_uplink_doc(fPort=[1]), "fPort must be an integer"),
    (_uplink_doc(confirmed="yes"), "confirmed must be true or false"),
    (_uplink_doc(rxInfo={"gatewayId": "g"}), "rxInfo must be a list"),
    (_uplink_doc(rxInfo=["g"]), "rxInfo entries must be objects"),
    (_uplink_doc(rxInfo=[{"snr": "loud"}]), "snr must be a number"),
    (_uplink_doc(txInfo=[]), "txInfo must be an object"),
    (_uplink_doc(object="x"), "object must be an object"),
    (_uplink_doc(time=1714557600), "time must be a string"),
])
def test_malformed_json(body: bytes, message: str) -> None:
    with pytest.raises(EventParseError, match=message):
        parse_json("up", body)


def test_an_event_over_a_mebibyte_is_refused_before_parsing() -> None:
    with pytest.raises(EventParseError, match="larger than"):
        parse("up", b"{" + b" " * (1024 * 1024) + b"}")


def test_names_from_chirpstack_are_made_storable_and_bounded() -> None:
    doc = orjson.loads(as_json(uplink()))
    doc["deviceInfo"].update(deviceName="bin\u00007" + "x" * 1000, tenantId="t\u0000", devEui="A81758FFFE0312AB")
    doc["time"] = "2026-11-29T10:00:00Z" + "9" * 1000
    ev = parse_json("up", orjson.dumps(doc))
    assert ev.dev_eui == "a81758fffe0312ab"
    assert "\x00" not in ev.device_name and ev.device_name.startswith("bin\ufffd7") and len(ev.device_name) == 200
    assert ev.tenant_id == "t\ufffd" and ev.time is not None and len(ev.time) == 64
    log_doc = b'{"deviceInfo": {"devEui": "0102030405060708"}, "description": "a\\u0000b"}'
    assert parse_json("log", log_doc).description == "a\ufffdb"


@pytest.mark.parametrize(("event", "body", "message"), [
    ("up", b"\x0a\xff\xff\xff\xff\x0f", "not a protobuf UplinkEvent"),  # a length beyond the end
    ("up", b"\xff\xff\xff\xff", "not a protobuf"),
    ("up", uplink().SerializeToString()[:-3], "not a protobuf"),  # truncated
    ("join", b"", "devEui missing"),  # an empty message is a valid one, but no device
    ("nonsense", uplink().SerializeToString(), "no protobuf message for ChirpStack event 'nonsense'"),
])
def test_malformed_protobuf(event: str, body: bytes, message: str) -> None:
    with pytest.raises(EventParseError, match=message):
        parse_protobuf(event, body)


@pytest.mark.parametrize(("topic", "expected"), [
    ("application/17c8/device/A81758FFFE03B2C1/event/up", ("17c8", "a81758fffe03b2c1", "up")),
    ("application/17c8/device/0101010101010101/event/status", ("17c8", "0101010101010101", "status")),
    ("application/17c8/device/0101010101010101/command/down", None),
    ("application/17c8/device/0101010101010101/event/up/extra", None),
    ("application/17c8/device/0101010101010101/event/", None),
    ("application//device/0101010101010101/event/up", None),
    ("gateway/0016c001f153a14c/event/up", None),
    ("/application/17c8/device/0101010101010101/event", None),
    ("", None),
])
def test_parse_topic(topic: str, expected: tuple[str, str, str] | None) -> None:
    assert parse_topic(topic) == expected


@pytest.mark.perf
def test_benchmark_script_runs() -> None:
    from tests.perf import bench_chirpstack_parse as bench

    results = bench.run(iterations=5)
    assert set(results) == {"json", "protobuf"} and all(us > 0 for us in results.values())

"""A frame a decoder could walk only part of still delivers what was read before the bad field
(issue 15, item 1): measurements and ``payload.decoded`` beside ``decoder.status = "error"`` and the
error that says where the walk stopped. Before, the readings were dropped with the error."""

from __future__ import annotations

from typing import Any

from decoders import catalog
from distributor.ack import Finalizer
from distributor.demo_feed import to_json, uplink_event
from distributor.metrics import Metrics
from distributor.pipeline import Pipeline
from distributor.sources.chirpstack import submit
from distributor.sources.chirpstack_parse import parse
from tests.distributor.test_pipeline_dedup import EUI, Cache, State

UNKNOWN_AFTER_TEMPERATURE = bytes.fromhex("01011799")   # Elsys: temperature 27.9 °C, then unknown field 0x99


class Capture:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def dispatch(self, message: dict[str, Any], raw: Any, consumers: Any, topic_vars: Any, finalizer: Finalizer,
                 received_at: float, rendered: dict[str, bytes] | None = None) -> int:
        self.messages.append(message)
        return 0


def test_the_readings_before_the_bad_field_are_delivered_with_the_error() -> None:
    lanes = Capture()
    pipeline = Pipeline(Cache(), lanes, State(), Metrics())  # type: ignore[arg-type]
    body = to_json(uplink_event(dev_eui=EUI, data=UNKNOWN_AFTER_TEMPERATURE, f_cnt=7, f_port=5))
    submit(pipeline, parse("up", body), Finalizer(lambda ok: None), "chirpstack-mqtt", 1.0)
    (message,) = lanes.messages
    assert message["decoder"]["status"] == "error"
    assert any("unknown field type 0x99" in e for e in message["decoder"]["errors"])
    assert message["payload"]["decoded"] == {"temperature": 27.9}
    assert [(m["name"], m["value"]) for m in message["measurements"]] == [("temperature", 27.9)]


def test_the_cli_and_the_trial_use_the_same_rule() -> None:
    elsys = catalog.get("elsys")
    assert elsys is not None
    result = elsys.decode(UNKNOWN_AFTER_TEMPERATURE, 5)
    assert not result.ok and [m.name for m in elsys.measure(result)] == ["temperature"]
    nothing = elsys.decode(b"", 5)
    assert elsys.measure(nothing) == [] and not nothing.ok

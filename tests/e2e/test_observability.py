"""Logs and metrics as an operator reads them (issue 15, items 10 and 11), on a real service:

* log lines about a consumer or a device carry its name (and dev_eui) beside the id, and a decoder that
  fails on every uplink logs a bounded number of warnings while the metric counts every failure;
* ``/metrics`` has no ``*_created`` series, has the process metrics, maps consumer ids to names in
  ``iotd_consumer_info`` (current after a rename), and shows no series for a JavaScript decoder that has
  not counted anything.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import orjson

from distributor.demo_feed import to_json, uplink_event
from distributor.js_metrics import JsDecoderCollector
from distributor.js_pool import DecoderCounters, JsPool
from distributor.log_budget import LogBudget
from tests.support.api import running_api
from tests.support.broker import MosquittoBroker, free_port
from tests.support.scenario import EUI, FAST_RETRIES, ServiceProcess, provision, publish_all, settings, uplinks

CODEC = "function decodeUplink(input) { return { data: { t: input.bytes[0] } }; }"
BROKEN_FRAME = b"\x99\x00"    # Elsys: unknown field type 0x99, a decode error on every uplink


def samples(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def value(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in samples(text) if line.startswith(prefix))


async def test_metrics_have_no_created_series_but_process_metrics_and_consumer_names(db: str) -> None:
    async with running_api(db, js_workers=1) as api:
        org = (await api.create("organizations", {"name": "Aarhus"}))["id"]
        consumer = (await api.create("consumers", {"organization_id": org, "name": "traffic dashboard",
                                                   "kind": "http", "url": "http://127.0.0.1:9/hook"}))["id"]
        await api.create("decoders", {"id": "never-used", "organization_id": org, "source": CODEC,
                                      "examples": [{"description": "7", "input": {"fPort": 1, "bytes": [7]},
                                                    "output": {"data": {"t": 7}}}]})
        info = (f'iotd_consumer_info{{consumer="{consumer}",name="traffic dashboard",organization="{org}",'
                f'organization_name="Aarhus"}} 1.0')
        async with asyncio.timeout(10):
            while info not in (text := (await api.client.get("/metrics")).text):
                await asyncio.sleep(0.1)   # the registry reloads after the write
        lines = samples(text)
        assert any(line.startswith(f'iotd_deliveries_total{{consumer="{consumer}"') for line in lines)  # labelled
        assert not [line for line in lines if "_created" in line]
        assert value(text, "process_resident_memory_bytes") > 0 and value(text, "process_start_time_seconds") > 0
        assert not [line for line in lines if line.startswith("iotd_js_decoder_")]   # registered, never used

        r = await api.client.patch(f"/api/v1/consumers/{consumer}", json={"name": "traffic dashboard v2"})
        assert r.status_code == 200, r.text
        async with asyncio.timeout(10):
            while 'name="traffic dashboard v2"' not in (text := (await api.client.get("/metrics")).text):
                await asyncio.sleep(0.1)
        assert 'name="traffic dashboard"' not in text   # one series per consumer, the current name


def test_a_decoders_series_appear_as_they_count_something() -> None:
    pool = JsPool(1, 1, 10, 5, 60)
    collector = JsDecoderCollector(pool)
    assert not [s for family in collector.collect() if family.name.startswith("iotd_js_decoder")
                for s in family.samples]
    pool.counters["used"] = DecoderCounters()
    pool.counters["used"].calls, pool.counters["used"].contexts_built = 3, 1
    found = {(family.name, s.labels["decoder"]) for family in collector.collect() for s in family.samples
             if family.name.startswith("iotd_js_decoder")}
    assert found == {("iotd_js_decoder_calls", "used"), ("iotd_js_decoder_contexts_built", "used")}


async def test_log_lines_name_consumers_and_devices_and_decode_failures_are_bounded(
        broker: MosquittoBroker, db: str) -> None:
    tenant = await provision(db, {"city dashboard": {"kind": "http", "url": f"http://127.0.0.1:{free_port()}/h"}})
    proc = ServiceProcess(settings(db, broker, **FAST_RETRIES))
    proc.start()
    try:
        await proc.ready()
        broken = [to_json(uplink_event(dev_eui=EUI, data=BROKEN_FRAME, f_cnt=1000 + i)) for i in range(40)]
        await publish_all(broker.port, [body for _, body in uplinks(1)] + broken)
        async with httpx.AsyncClient(timeout=5) as client, asyncio.timeout(20):
            while value((await client.get(f"http://127.0.0.1:{proc.port}/metrics")).text,
                        'iotd_decoded_total{decoder="elsys",status="error"}') < 40:
                await asyncio.sleep(0.2)
            while "delivery failed" not in proc.stderr():
                await asyncio.sleep(0.2)
    finally:
        proc.kill(2)
        await proc.wait()
        proc.stop()
    events = [orjson.loads(line) for line in proc.log.read_text().splitlines() if line.startswith("{")]
    failed = [e for e in events if e["event"] == "decode failed; delivering raw"]
    assert 1 <= len(failed) <= LogBudget().per_window, len(failed)   # 40 failures, at most 10 lines
    assert {(e["device"], e["device_name"], e["dev_eui"]) for e in failed} == {(tenant.device, "d", EUI)}
    delivery = [e for e in events if e.get("consumer") == tenant.consumers["city dashboard"]]
    assert delivery and all(e["consumer_name"] == "city dashboard" for e in delivery)
    assert not re.search(r"Traceback", proc.log.read_text())

"""One command, one table: ``python -m tests.perf [--size smoke|small|full] [--only SECTION ...] [--json PATH]``.

Runs, in one run on one private Mosquitto (issue 16's reference method), the anchors (the broker relaying
directly; a forwarder of Mosquitto's C clients, measured before and after iotd, the mean is what ratios
divide by), iotd's throughput per consumer kind, latency at fixed rates and where it bends, the soak (on
demand: ``--only soak``, 10 minutes; a few seconds at ``smoke``), scale-out with ``--processes N``, the
registry at scale and the JavaScript decoders; then prints one table with every figure next to its target.
Needs the local PostgreSQL (IOTD_TEST_DATABASE_URL) and Mosquitto with its C clients, like the tests.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from tests.perf import anchors, history_queries, js_section, registry_scale, service_runs
from tests.perf.report import SECTIONS, Figure, Table, Target, load_average, machine
from tests.perf.traffic import UplinkFactory, anchor_broker
from tests.support.broker import MosquittoBroker

YEAR_OF_10_MINUTES = 365 * 24 * 6


@dataclass(frozen=True)
class Size:
    messages: int                  # per throughput run (the reference method: 20,000)
    rates: tuple[int, ...]         # the latency ladder, msg/s
    rate_seconds: float
    soak_seconds: float
    soak_every_s: float
    devices: int                   # registry scale
    import_rows: int
    js_seconds: float
    history_rows: int              # the charted device's stored messages (a year of 10-minute data: 52,560)
    history_other_devices: int
    replay_stored: int             # messages replayed while live traffic flows


SIZES = {
    "smoke": Size(300, (500, 2000, 5000), 0.3, 3, 1, 1_000, 100, 0.1, 2_000, 1, 300),
    "small": Size(20_000, (500, 1000, 2000, 3000, 5000, 7500, 10_000, 15_000), 5, 600, 30, 100_000, 10_000, 2,
                  YEAR_OF_10_MINUTES, 4, 20_000),
    "full": Size(100_000, (500, 1000, 2000, 3000, 4000, 5000, 6000, 7500, 10_000, 12_500, 15_000), 10, 600, 30,
                 1_000_000, 20_000, 5, YEAR_OF_10_MINUTES, 19, 100_000),
}
FIXED_RATES = (500, 2000, 5000)
CHART_MS = 200.0            # issue 17: a year of 10-minute data for one device, charted
SOAK_RATE = 2000
REPLAY_LIVE_RATE = 500      # live traffic while a replay runs: a busy city's steady stream
MIB_PER_GIB = 1024


def _num(value: float | None) -> float | None:
    """None for what was not measured (no message arrived at a rate: the percentiles are NaN)."""
    return None if value is None or math.isnan(value) else value


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Run:
    """The sections, sharing one broker, one uplink factory and the same-run forwarder anchor."""

    def __init__(self, size: Size, table: Table, broker: MosquittoBroker, soak_seconds: float) -> None:
        self.size, self.table, self.broker, self.soak_seconds = size, table, broker, soak_seconds
        self.factory = UplinkFactory()
        self.forwarder: list[float] = []

    def forwarder_rate(self) -> float:
        if not self.forwarder:
            self.anchors()
        return sum(self.forwarder) / len(self.forwarder)

    def ratio(self, per_s: float | None) -> float | None:
        return None if per_s is None else per_s / self.forwarder_rate()

    def anchors(self) -> None:
        n = self.size.messages
        relay = anchors.relay(self.broker, self.factory, n)
        forwarder = anchors.forwarder(self.broker, self.factory, n)
        self.forwarder.append(forwarder.per_s or 0.0)
        self.table.add(Figure("anchors", "broker relay, publisher → subscriber", relay.per_s, "msg/s"),
                       Figure("anchors", "C forwarder (mosquitto_sub | mosquitto_pub)", forwarder.per_s, "msg/s",
                              note="before iotd"),
                       Figure("anchors", "broker CPU during the C forwarder", forwarder.broker_cores, "cores"))

    def throughput(self) -> None:
        n = self.size.messages
        mqtt = service_runs.mqtt_throughput(self.broker, self.factory, n)
        bare = service_runs.mqtt_throughput(self.broker, self.factory, n, history=False)
        batch1 = service_runs.http_throughput(self.broker, self.factory, n, 1)
        batched = service_runs.http_throughput(self.broker, self.factory, n, 100)
        again = anchors.forwarder(self.broker, self.factory, n)
        self.forwarder.append(again.per_s or 0.0)
        lost = sum(n - r.distinct for r in (mqtt, bare, batch1, batched))
        self.table.add(
            Figure("anchors", "C forwarder (mosquitto_sub | mosquitto_pub)", again.per_s, "msg/s", note="after iotd"),
            Figure("throughput", "MQTT consumer, QoS 1", mqtt.per_s, "msg/s"),
            Figure("throughput", "MQTT consumer / C forwarder", self.ratio(mqtt.per_s), "", Target(">=", 0.8)),
            Figure("throughput", "broker CPU during iotd → MQTT", mqtt.broker_cores, "cores"),
            Figure("throughput", "MQTT consumer, history off (IOTD_HISTORY=false)", bare.per_s, "msg/s"),
            Figure("throughput", "history on / history off", None if not (mqtt.per_s and bare.per_s)
                   else mqtt.per_s / bare.per_s, "", Target(">=", 0.9, "≥ 0.90")),
            Figure("throughput", "history: messages stored (MQTT run)", mqtt.stored, "", Target(">=", n, f"{n:,}")),
            Figure("throughput", "history: bytes per stored message",
                   mqtt.stored_bytes / mqtt.stored if mqtt.stored else None, "B",
                   note="row, lz4-compressed body, 2 indexes"),
            Figure("throughput", "history: GiB per million messages", mqtt.stored_bytes / mqtt.stored * 1e6 / 2**30
                   if mqtt.stored else None, "GiB"),
            Figure("throughput", "HTTP webhook, batch_size 1", batch1.per_s, "msg/s", note="default concurrency 8"),
            Figure("throughput", "HTTP batch_size 1 / C forwarder", self.ratio(batch1.per_s), "", Target(">=", 0.5)),
            Figure("throughput", "HTTP webhook, batch_size 100", batched.per_s, "msg/s", note="batch_wait_ms 50"),
            Figure("throughput", "HTTP batch_size 100 / C forwarder", self.ratio(batched.per_s), "",
                   Target(">=", 0.8)),
            Figure("throughput", "messages lost (4 runs)", lost, "", Target("<=", 0, "0")),
            Figure("throughput", "duplicates delivered (4 runs)",
                   sum(r.duplicates for r in (mqtt, bare, batch1, batched)), "", Target("<=", 0, "0")),
        )

    def latency(self) -> None:
        points = service_runs.latency_ladder(self.broker, self.factory, self.size.rates, self.size.rate_seconds,
                                             FIXED_RATES)
        by_rate = {p.rate: p for p in points}
        for rate in FIXED_RATES:
            p = by_rate.get(rate)
            target = Target("<=", service_runs.LATENCY_P99_MS) if rate == 2000 else None
            self.table.add(Figure("latency", f"p50 at {rate:,} msg/s", _num(p.p50_ms if p else None), "ms"),
                           Figure("latency", f"p99 at {rate:,} msg/s", _num(p.p99_ms if p else None), "ms", target,
                                  note="" if p is None or not p.behind else f"behind: {p.delivered}/{p.sent}"),
                           Figure("latency", f"max at {rate:,} msg/s", _num(p.max_ms if p else None), "ms"))
        bent = next((p for p in points if p.bent), None)
        if bent is None:
            self.table.add(Figure("latency", "bends at", None, "msg/s",
                                  note=f"not up to {points[-1].rate:,} msg/s" if points else "no rate measured"))
        else:
            why = "behind" if bent.behind else f"p99 {bent.p99_ms:.0f} ms"
            self.table.add(Figure("latency", "bends at", bent.rate, "msg/s", note=why))

    def soak(self) -> None:
        result = service_runs.soak(self.broker, self.factory, self.soak_seconds, SOAK_RATE, self.size.soak_every_s,
                                   say)
        first, last = result.rss_mib[0][1], result.rss_mib[-1][1]
        # The service's bounded state fills first (the de-duplication windows hold up to 500,000 ids: 250 s at
        # 2,000 msg/s), so "flat" is judged on the second half of the run: a leak keeps growing there
        middle = next(rss for t, rss in result.rss_mib if t >= result.rss_mib[-1][0] / 2)
        self.table.add(
            Figure("soak", "duration", self.soak_seconds, "s"),
            Figure("soak", "achieved rate", result.achieved_rate, "msg/s", Target(">=", SOAK_RATE * 0.95)),
            Figure("soak", "RSS at first sample", first, "MiB"),
            Figure("soak", "RSS at half time", middle, "MiB"),
            Figure("soak", "RSS at end", last, "MiB"),
            Figure("soak", "RSS growth over the second half", (last - middle) / middle * 100, "%",
                   Target("<=", 5, "flat (≤ 5 %)"), note="healthy MQTT + failing webhook (spilling)"),
            Figure("soak", "messages lost (healthy consumer)", result.sent - result.delivered, "",
                   Target("<=", 0, "0")),
        )

    def scale_out(self) -> None:
        n = self.size.messages
        one = service_runs.mqtt_throughput(self.broker, self.factory, n, processes=1)
        two = service_runs.mqtt_throughput(self.broker, self.factory, n, processes=2)
        killed = service_runs.mqtt_throughput(self.broker, self.factory, n, processes=2, kill_one=True)
        separate = service_runs.instances_throughput(self.broker, self.factory, n, 2)
        cores = os.cpu_count() or 1
        self.table.add(
            Figure("scale-out", "--processes 1, MQTT consumer", one.per_s, "msg/s"),
            Figure("scale-out", "--processes 2, MQTT consumer", two.per_s, "msg/s"),
            Figure("scale-out", "--processes 2 / C forwarder", self.ratio(two.per_s), "", Target(">=", 0.8)),
            Figure("scale-out", "broker CPU at --processes 2", two.broker_cores, "cores",
                   note=f"leaves {cores - two.broker_cores:.2f} of {cores} cores"),
            Figure("scale-out", "2 separate instances, one share group", separate.per_s, "msg/s"),
            Figure("scale-out", "2 separate instances / C forwarder", self.ratio(separate.per_s), ""),
            Figure("scale-out", "messages lost by separate instances", n - separate.distinct, "", Target("<=", 0, "0")),
            Figure("scale-out", "duplicates without a kill", one.duplicates + two.duplicates + separate.duplicates, "",
                   Target("<=", 0, "0")),
            Figure("scale-out", "lost with one worker SIGKILLed mid-run", n - killed.distinct, "",
                   Target("<=", 0, "0"), note="killed" if killed.killed else "no worker found to kill"),
            Figure("scale-out", "duplicates after the kill", killed.duplicates, "",
                   note="redelivered: in flight at the kill"),
        )

    def registry(self) -> None:
        r = registry_scale.run(self.broker, self.size.devices, self.size.import_rows)
        per_million = r.cache_rss_mib * 1_000_000 / r.devices
        self.table.add(
            Figure("registry", "devices", r.devices),
            Figure("registry", "REST CSV import", r.import_per_s, "devices/s", note=f"{r.import_rows:,} rows"),
            Figure("registry", "cache load", r.cache_load_s, "s"),
            Figure("registry", "cache RSS", r.cache_rss_mib, "MiB"),
            Figure("registry", "cache RSS per 1,000,000 devices", per_million, "MiB",
                   Target("<=", MIB_PER_GIB, "< 1 GiB"),
                   note="measured" if r.devices == 1_000_000 else "linear from the measured size"),
            Figure("registry", "lookup by DevEUI", r.lookup_us, "µs"),
            Figure("registry", "one change reaches a running cache", r.change_visible_s, "s"),
            Figure("registry", "iotd serve exec → ready", r.serve_ready_s, "s"),
            Figure("registry", "iotd serve RSS when ready", r.serve_rss_mib, "MiB"),
        )

    def javascript(self) -> None:
        js = js_section.run(self.size.js_seconds)
        self.table.add(
            Figure("javascript", "TTN codec, limits on, decode only, 1 thread", js["limits_on_per_s"], "calls/s"),
            Figure("javascript", "TTN codec through the worker pool, 1 worker", js["pool_per_s"], "calls/s"),
            Figure("javascript", "through the pool, per core of worker CPU (as the service runs it)",
                   None if js["per_core_per_s"] != js["per_core_per_s"] else js["per_core_per_s"], "calls/s",
                   Target(">=", 50_000)),
            Figure("javascript", "plain QuickJS, same codec, no limits", js["plain_per_s"], "calls/s"),
            Figure("javascript", "limits on / plain QuickJS", js["limits_on_per_s"] / js["plain_per_s"]),
        )


    def history(self) -> None:
        h = history_queries.run(self.size.history_rows, self.size.history_other_devices)
        self.table.add(
            Figure("history", "stored messages in the table", h.rows, "",
                   note=f"{h.per_device:,} of the charted device, 10 minutes apart"),
            Figure("history", "COPY into the partitioned table", h.rows / h.load_s, "rows/s"),
            *(Figure("history", f"chart of the device, buckets of {label}", ms, "ms", Target("<=", CHART_MS))
              for label, ms in h.chart_ms.items()),
            Figure("history", "newest page of 100 messages", h.page_newest_ms, "ms"),
            Figure("history", "a page of 100 at the oldest end (cursor)", h.page_oldest_ms, "ms"),
        )

    def replay(self) -> None:
        r = service_runs.replay_cost(self.broker, self.factory, self.size.replay_stored, REPLAY_LIVE_RATE,
                                     self.size.rate_seconds)
        live = f"live p99 at {REPLAY_LIVE_RATE:,} msg/s"

        def behind(p: service_runs.Latency) -> str:
            return "" if not p.behind else f"behind: {p.delivered}/{p.sent}"

        self.table.add(
            Figure("replay", "stored messages replayed to the MQTT consumer", r.stored, ""),
            Figure("replay", "replay pace", r.replay_per_s, "msg/s", note=f"job rate limit {r.fast_rate:,}/s"),
            Figure("replay", f"{live}, no replay", _num(r.alone.p99_ms), "ms", note=behind(r.alone)),
            Figure("replay", f"{live}, replay at the default {r.default_rate:,}/s", _num(r.during_default.p99_ms),
                   "ms", Target("<=", service_runs.LATENCY_P99_MS), note=behind(r.during_default)),
            Figure("replay", f"{live}, replay at {r.fast_rate:,}/s", _num(r.during_fast.p99_ms), "ms",
                   Target("<=", service_runs.LATENCY_P99_MS), note=behind(r.during_fast)),
            Figure("replay", "live messages lost during the replays",
                   sum(p.sent - p.delivered for p in (r.during_default, r.during_fast)), "", Target("<=", 0, "0")),
        )


def main(argv: list[str] | None = None) -> Table:
    parser = argparse.ArgumentParser(prog="python -m tests.perf", description="One command, one table (issue 16).")
    parser.add_argument("--size", choices=tuple(SIZES), default="small")
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="SECTION",
                        help=f"run only these sections (repeatable): {', '.join(SECTIONS)}")
    parser.add_argument("--soak-seconds", type=float, default=None, help="soak duration (default 600; smoke: 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    chosen = args.only or [s for s in SECTIONS if s != "soak" or args.size == "smoke"]
    table = Table(args.size, machine())
    broker = anchor_broker()
    run = Run(size, table, broker, args.soak_seconds or size.soak_seconds)
    sections: dict[str, Callable[[], None]] = {
        "anchors": run.anchors, "throughput": run.throughput, "latency": run.latency, "soak": run.soak,
        "scale-out": run.scale_out, "registry": run.registry, "javascript": run.javascript, "history": run.history,
        "replay": run.replay}
    try:
        for name in SECTIONS:
            if name not in chosen:
                table.skipped[name] = "on demand: --only soak" if name == "soak" else "not chosen (--only)"
                continue
            say(f"[{name}] running (load average {load_average()})")
            try:
                sections[name]()
            except Exception as exc:   # one broken section must not hide the others' figures
                traceback.print_exc()
                table.skipped[name] = f"failed: {type(exc).__name__}: {exc}"
    finally:
        broker.close()
    table.machine["load_after"] = load_average()
    print(table.render())
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(table.to_json(), option=orjson.OPT_INDENT_2))
    return table


if __name__ == "__main__":
    main()

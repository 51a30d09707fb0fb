"""Pure pieces of delivery under faults: the pending counts behind ``iotd_pending_deliveries`` (current at
every change, not 5 s late) and the one-line-per-outage log."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from distributor.delivery.backlog import Backlog
from distributor.delivery.outage import Outage


def gauge_value(registry: CollectorRegistry, consumer: str) -> float | None:
    return registry.get_sample_value("iotd_pending_deliveries", {"consumer": consumer})


def test_counts_follow_every_change_and_the_gauge_with_them() -> None:
    registry = CollectorRegistry()
    backlog = Backlog(Gauge("iotd_pending_deliveries", "", ["consumer"], registry=registry))
    backlog.stored({"a": 5, "b": 2})
    assert (backlog.count("a"), gauge_value(registry, "a"), gauge_value(registry, "b")) == (5, 5.0, 2.0)
    backlog.removed("a", 3)
    backlog.removed("b", 9)                     # never below zero
    assert (backlog.count("a"), backlog.count("b"), gauge_value(registry, "b")) == (2, 0, 0.0)
    assert backlog.count("never-seen") == 0


def test_a_resync_sets_the_tables_counts_plus_what_changed_while_it_ran() -> None:
    backlog = Backlog()
    backlog.stored({"a": 5, "gone": 4})
    backlog.resync_started()
    backlog.stored({"a": 1})                    # committed after the query's snapshot
    backlog.resynced({"a": 10, "other": 3})     # another instance spilled for "a" and "other"; "gone" was drained
    assert (backlog.count("a"), backlog.count("other"), backlog.count("gone")) == (11, 3, 0)
    backlog.resync_started()
    backlog.resync_failed()
    backlog.stored({"a": 1})
    assert backlog.count("a") == 12


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append(("error", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))


def test_an_outage_is_logged_when_it_starts_and_when_it_ends() -> None:
    log = Log()
    outage = Outage(log, "writes failing", "writes work again")
    outage.ok()
    assert log.lines == []
    assert outage.failed("connection refused", rows=3) is True
    for _ in range(50):
        assert outage.failed("connection refused") is False
    assert outage.ongoing
    outage.ok()
    outage.ok()
    assert [(level, event) for level, event, _ in log.lines] == [("error", "writes failing"),
                                                                ("warning", "writes work again")]
    assert log.lines[0][2] == {"error": "connection refused", "rows": 3}
    assert log.lines[1][2]["failed_attempts"] == 51 and log.lines[1][2]["lasted_s"] >= 0
    outage.failed("again")                      # a new outage: logged again
    assert len(log.lines) == 3

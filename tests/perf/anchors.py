"""The same-run anchors of issue 16's reference method: what the broker relays publisher → subscriber
directly, and what a forwarder of Mosquitto's own C clients (``mosquitto_sub | mosquitto_pub``, both
QoS 1) achieves: the physical limit for any service that takes from the broker and gives back to it.
"""

from __future__ import annotations

from tests.perf.service_runs import Throughput, measure
from tests.perf.traffic import Counter, UplinkFactory, c_forwarder
from tests.support.broker import MosquittoBroker

SOURCE = "application/+/device/+/event/up"


def relay(broker: MosquittoBroker, factory: UplinkFactory, n: int) -> Throughput:
    uplinks = factory.make(n)
    return measure(broker, uplinks, Counter(broker.port, SOURCE, n), ids=False)


def forwarder(broker: MosquittoBroker, factory: UplinkFactory, n: int) -> Throughput:
    uplinks = factory.make(n)
    with c_forwarder(broker.port, SOURCE, "forwarded/out"):
        return measure(broker, uplinks, Counter(broker.port, "forwarded/out", n), ids=False)

"""The uplink path, as named steps in plain order: resolve → dedup → decode → normalize → route.

Everything here is synchronous and does no I/O: it ends by offering the message to the
consumers' lanes (which never block) and releasing the pipeline's own hold on the finalizer.
Built-in (Python) decoders run in line. A JavaScript decoder runs in a worker process
(``distributor.js_pool``): the pipeline holds the finalizer, submits the uplink, and the rest of the
path (envelope, state, dispatch) runs in the pool's callback, which then releases the hold, so the
source's ack still comes only after the message was dispatched. Every failure there (timeout,
suspension, full queue, lost worker, pool stopped) is an answer with errors: the message still
goes out, undecoded, with ``decoder.status = "error"``.

De-duplication (``distributor.dedup``) comes after resolving the device (an unknown device's uplinks
are only counted, never de-duplicated; device events are not de-duplicated): a copy of a message that
is still in progress joins it and is acknowledged only with the first copy's outcome; a copy of a
message done within the window is acknowledged at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from decoders import catalog
from decoders.contract import DecodeResult, Measurement
from distributor.ack import Finalizer
from distributor.dedup import JOINED, NEW, Deduplicator
from distributor.delivery.dispatcher import Dispatcher
from distributor.envelope import build_message, message_id
from distributor.formats import render
from distributor.history import MessageStore
from distributor.history import row as history_row
from distributor.js_codecs import JsDecoders, decode_outcome, decode_request, isolation_key
from distributor.js_pool import JsPool, failure
from distributor.log_budget import LogBudget
from distributor.metrics import Metrics
from distributor.uplink import RawUplink
from registry.cache import RegistryCache
from registry.records import DEFAULT_RETENTION_DAYS, Device, JsDecoderRecord
from registry.state_writer import StateWriter

log = structlog.get_logger("iotd.pipeline")


class Pipeline:
    def __init__(self, cache: RegistryCache, dispatcher: Dispatcher, state: StateWriter, metrics: Metrics,
                 dedup_window_s: float = 600.0, frame_window_s: float = 60.0, js: JsDecoders | None = None,
                 js_pool: JsPool | None = None, history: MessageStore | None = None) -> None:
        self._cache = cache
        self._dispatcher = dispatcher
        self._state = state
        self._metrics = metrics
        self.dedup = Deduplicator(dedup_window_s, frame_window_s)
        self._js = js
        self._js_pool = js_pool
        self._history = history
        self._decoded: dict[tuple[str, str], Any] = {}
        self._error_logs = LogBudget()          # per organization and decoder: a broken one cannot flood the log

    # --- steps -------------------------------------------------------------------------------
    def resolve(self, up: RawUplink) -> Device | None:
        if up.device is not None:
            return up.device
        if up.dev_eui is not None:   # only the organization owning the ChirpStack tenant, when mapped
            return self._cache.snapshot.lorawan_device(up.dev_eui, up.tenant_id, up.application_id)
        return None

    def admit(self, up: RawUplink) -> str:
        """``NEW``, ``JOINED`` (released with its first copy's outcome) or ``DONE`` (acked at once)."""
        return self.dedup.admit(up.dedup_key, up.frame_key, up.finalizer)

    def decode(self, device: Device, payload: bytes, fport: int | None
               ) -> tuple[str | None, DecodeResult | None, list[Measurement]]:
        """(decoder version, result, measurements) of a built-in decoder; the version is None when the decoder
        is not installed (a JavaScript decoder runs through ``decode_js``)."""
        if not device.decoder:
            return None, None, []
        builtin = catalog.get(device.decoder)
        if builtin is not None:
            result = builtin.decode(payload, fport)
            return builtin.device.version, result, builtin.measure(result)
        return None, None, []

    async def redecode(self, device: Device, payload: bytes, fport: int | None, received_at: float
                       ) -> tuple[str | None, DecodeResult | None, list[Measurement]]:
        """A stored uplink through the device's current decoder (a reprocess job, ``distributor.replay``): a
        built-in in line, JavaScript in the pool like a live uplink (its limits and fairness apply). The raw
        network event is not stored: an OS2iot-dialect decoder sees none."""
        record = self.js_decoder(device)
        if record is None:
            return self.decode(device, payload, fport)
        assert self._js_pool is not None
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def done(outcome: dict[str, Any]) -> None:
            if not answer.done():
                answer.set_result(outcome)

        key = isolation_key(record, device)
        try:
            body = decode_request(record, device, key, payload, fport, None, received_at,
                                  self._js.status(device) if self._js is not None else None)
            self._js_pool.submit(device.organization_id, record, key, body, done)
        except Exception as exc:
            done(failure(f"cannot hand the uplink to the JavaScript decoder: {type(exc).__name__}: {exc}"))
        result, measurements = decode_outcome(await answer)
        return f"js-{record.version}", result, measurements

    def js_decoder(self, device: Device) -> JsDecoderRecord | None:
        """The device's JavaScript decoder, when it has one (and not a built-in) and the pool runs."""
        if self._js is None or self._js_pool is None or not device.decoder:
            return None
        record = self._js.get(device.decoder, device.organization_id)
        return None if record is None or catalog.get(device.decoder) is not None else record  # a built-in wins

    def decode_js(self, device: Device, up: RawUplink, record: JsDecoderRecord) -> None:
        """Decode in a worker; the rest of the path continues in the callback, which releases the hold."""
        assert self._js_pool is not None
        version = f"js-{record.version}"

        def done(answer: dict[str, Any]) -> None:
            try:
                result, measurements = decode_outcome(answer)
                self._deliver(device, up, version, result, measurements)
            except Exception:
                log.exception("delivering a JavaScript-decoded uplink failed", message_id=message_id(up.message_key),
                              device=device.id)
                up.finalizer.release(False)
                return
            up.finalizer.release(True)

        up.finalizer.hold()
        key = isolation_key(record, device)
        try:
            body = decode_request(record, device, key, up.payload, up.fport, up.raw_event, up.received_at,
                                  self._js.status(device) if self._js is not None else None)
            self._js_pool.submit(device.organization_id, record, key, body, done)
        except Exception as exc:  # the request could not be built (an event that is not JSON): this uplink's error
            done(failure(f"cannot hand the uplink to the JavaScript decoder: {type(exc).__name__}: {exc}"))

    # --- the path ----------------------------------------------------------------------------
    def handle(self, up: RawUplink) -> None:
        ok = False   # a path that raised did not deliver: its copies are not acked and its keys not remembered
        try:
            self._handle(up)
            ok = True
        finally:
            up.finalizer.release(ok)

    def _handle(self, up: RawUplink) -> None:
        device = self.resolve(up)
        if device is None:
            self._metrics.unknown_devices.labels(up.source).inc()
            self._state.unknown_device(up.source, up.dev_eui or "?", up.unknown_detail)
            log.debug("uplink from unknown device", dev_eui=up.dev_eui, source=up.source)
            return
        verdict = self.admit(up)
        if verdict != NEW:
            self._metrics.duplicates.labels(up.source).inc()
            log.debug("duplicate joins its first copy" if verdict == JOINED else "duplicate of a done message",
                      message_id=message_id(up.message_key), device=device.id)
            return
        record = self.js_decoder(device)
        if record is not None:
            self.decode_js(device, up, record)
            return
        decoder_version, result, measurements = self.decode(device, up.payload, up.fport)
        self._deliver(device, up, decoder_version, result, measurements)

    def _deliver(self, device: Device, up: RawUplink, decoder_version: str | None, result: DecodeResult | None,
                 measurements: list[Measurement]) -> None:
        """Envelope, state and dispatch: the end of the path for every decoded (or undecodable) uplink."""
        msg_id = message_id(up.message_key)
        status = "none" if result is None and device.decoder is None else (
            "ok" if result is not None and result.ok else "error")
        key = (device.decoder or "none", status)
        counter = self._decoded.get(key)
        if counter is None:   # labels() hashes and locks: resolve each child once
            counter = self._decoded[key] = self._metrics.decoded.labels(*key)
        counter.inc()
        message = build_message(
            msg_id=msg_id, received_at=up.received_at, measured_at=up.measured_at, device=device,
            network=up.network, payload=up.payload, decoder_version=decoder_version, result=result,
            measurements=measurements,
        )
        if status == "error":
            allowed, left_out = self._error_logs.allow((device.organization_id, device.decoder))
            if allowed:
                log.warning("decode failed; delivering raw", message_id=msg_id, device=device.id,
                            decoder=device.decoder, errors=message["decoder"]["errors"],
                            **({"earlier_failures_not_logged": left_out} if left_out else {}))
        self._state.message(device.id, up.network.get("f_cnt"), message)
        snapshot = self._cache.snapshot
        rendered: dict[str, bytes] | None = None
        consumers = snapshot.consumers_for(device)
        if self._history is not None:
            application = snapshot.applications.get(device.application_id)
            retention = application.retention_days if application is not None else DEFAULT_RETENTION_DAYS
            if retention > 0:   # stored as delivered: the native body, rendered once for the store and consumers
                body = render("native", message, None)
                rendered = {"native": body}
                self._history.add(history_row(retention, up.received_at, msg_id, device, up.fport, up.payload, body,
                                              message["measurements"]), up.finalizer)
                if snapshot.gated:   # a stored message before a backfill's seam goes out with the backfill
                    consumers = snapshot.live_consumers(device, up.received_at)
        self._dispatcher.dispatch(message, up.raw_event, consumers, topic_vars(device), up.finalizer, up.received_at,
                                  rendered)

    def device_event(self, dev_eui: str, event: str, detail: dict[str, Any], state: dict[str, Any],
                     finalizer: Finalizer, tenant_id: str | None = None, application_id: str | None = None) -> None:
        """join/status/log/...: update the device's state and keep the event; never delivered as data."""
        try:
            device = self._cache.snapshot.lorawan_device(dev_eui, tenant_id, application_id)
            self._metrics.device_events.labels(event).inc()
            if device is not None:
                self._state.event(device.id, event, detail, state)
                if self._js is not None:   # OS2iot decoders read the last battery level and margin
                    self._js.note_status(device, state)
        finally:
            finalizer.release(True)


def topic_vars(device: Device) -> dict[str, str]:
    return {"organization": device.organization_id, "application": device.application_id,
            "device": device.id, "device_name": device.name, "dev_eui": device.dev_eui or "",
            "decoder": device.decoder or "none"}

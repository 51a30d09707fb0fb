"""Turns a parsed ChirpStack event into pipeline work; shared by the MQTT source and the HTTP endpoint."""

from __future__ import annotations

from typing import Any

from distributor.ack import Finalizer
from distributor.pipeline import Pipeline
from distributor.sources.chirpstack_event import ChirpStackEvent
from distributor.uplink import RawUplink


def uplink_network(ev: ChirpStackEvent) -> dict[str, Any]:
    network: dict[str, Any] = {"kind": "lorawan", "dev_eui": ev.dev_eui, "f_cnt": ev.f_cnt, "f_port": ev.f_port,
                               "dedup_id": ev.dedup_id,
                               "radio": [{"gateway": r.gateway, "rssi": r.rssi, "snr": r.snr} for r in ev.rx]}
    if ev.dr is not None:
        network["dr"] = ev.dr
    if ev.frequency:
        network["frequency"] = ev.frequency
    return network


def dedup_key(ev: ChirpStackEvent) -> str:
    """ChirpStack's deduplicationId when present; otherwise what identifies the frame."""
    if ev.dedup_id:
        return f"chirpstack:{ev.dedup_id}"
    return f"chirpstack:{ev.dev_eui}:{ev.f_cnt}:{ev.f_port}:{ev.time}"


def device_state_of(ev: ChirpStackEvent) -> tuple[dict[str, Any], dict[str, Any]]:
    """(detail kept with the event, fields merged into the device state) for a non-uplink event."""
    if ev.event == "status":
        detail: dict[str, Any] = {"battery_level": ev.battery_level, "margin": ev.margin,
                  "external_power_source": ev.external_power_source}
        return detail, {"battery_level": ev.battery_level, "margin": ev.margin,
                        "external_power": ev.external_power_source}
    if ev.event == "join":
        from datetime import datetime

        joined = None
        if ev.time:
            try:
                joined = datetime.fromisoformat(ev.time.replace("Z", "+00:00"))
            except ValueError:
                joined = None
        return {"dev_addr": ev.dev_addr, "time": ev.time}, {"joined_at": joined, "dev_addr": ev.dev_addr}
    if ev.event == "log":
        detail = {"level": ev.level, "code": ev.code, "description": ev.description, "time": ev.time}
        return detail, {"last_log": detail}
    return {"time": ev.time}, {}


def submit(pipeline: Pipeline, ev: ChirpStackEvent, finalizer: Finalizer, source: str, received_at: float) -> None:
    if ev.event != "up":
        detail, state = device_state_of(ev)
        pipeline.device_event(ev.dev_eui, ev.event, detail, state, finalizer, ev.tenant_id or None,
                              ev.application_id or None)
        return
    frame_key = (ev.dev_eui, ev.f_cnt, ev.f_port or 0) if ev.f_cnt is not None else None
    pipeline.handle(RawUplink(
        source=source, dedup_key=dedup_key(ev), payload=ev.data, fport=ev.f_port, received_at=received_at,
        measured_at=ev.time, network=uplink_network(ev), finalizer=finalizer, dev_eui=ev.dev_eui,
        frame_key=frame_key, raw_event=ev.raw,
        unknown_detail={"tenant_id": ev.tenant_id, "application_id": ev.application_id,
                        "device_name": ev.device_name, "device_profile": ev.device_profile_name},
        tenant_id=ev.tenant_id or None, application_id=ev.application_id or None,
    ))

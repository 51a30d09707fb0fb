"""Netvox R718 family: one frame layout, a device type byte tells the models apart.

Layout from Netvox' public "LoRaWAN Application Command" document and Netvox' codecs in the TTN
device repository. Big-endian values; frames are 11 bytes.

* fPort 6, reports: version byte, device type byte, report type byte, then 8 bytes. Report type 0x00
  is the start-up version report (software version in tenths, hardware version, BCD date code);
  0x01 the status report: battery in 0.1 V with bit 7 set for low battery, then model fields.
* fPort 7, configuration answers: command 0x81 (ConfigReportRsp, status 0 = success) or 0x82
  (ReadConfigReportRsp: min and max report time in s, battery change in 0.1 V, model thresholds).
* fPort 14, global calibration answers (Netvox' R718B codec): 0x81 SetGlobalCalibrateRsp (sensor
  type, channel, status), 0x82 GetGlobalCalibrateRsp (sensor type, channel, uint16 multiplier,
  uint16 divisor, int16 offset: reading * multiplier / divisor + offset), 0x83 ClearGlobalCalibrateRsp
  (status). Byte 1 is the sensor type here, not the device type. Device configuration, never measurements.

Compared on fPorts 6 and 7 with Netvox' TTN codecs (r711_r718a_r718ab_r720a.js, r718cj_ck_ct_cr_ce_r718b.js,
r311w.js, r311a_r718f_r730f.js) on their published frames and 200 mutated frames per model and port: every
value both produce agrees. Ours refuses what those codecs decode anyway: frames under 11 bytes (they read
past the end) and another model's device type byte (they decode any type with this model's layout).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from decoders.catalog import Decoder
from decoders.contract import DecodeResult, DeviceType, Example, Measurement, measurements_from

Reader = Callable[[bytes], dict[str, Any]]
FRAME_SIZE = 11


def _u(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _s(b: bytes) -> int:
    return int.from_bytes(b, "big", signed=True)


@dataclass(frozen=True, slots=True)
class _Model:
    """What differs between models: the type byte, the status fields and the configured thresholds."""

    name: str
    device_type: int
    status: Reader  # bytes 4-10 of a status report
    thresholds: Reader = field(default=lambda b: {})  # bytes 7-10 of a ReadConfigReportRsp
    normalized: Mapping[str, tuple[str, float]] = field(default_factory=dict)


_NAMES = {0x0B: "R718A", 0x95: "R718B", 0x32: "R718WA", 0x12: "R718WB", 0x1D: "R718F"}


def _report(payload: bytes, model: _Model) -> DecodeResult:
    report = payload[2]
    data: dict[str, Any] = {"device": model.name, "protocol_version": payload[0]}
    if report == 0x00:
        data.update(report="version", software_version=payload[3] / 10, hardware_version=payload[4],
                    date_code=payload[5:9].hex())
    elif report == 0x01:
        data.update(report="status", battery_voltage=(payload[3] & 0x7F) / 10, low_battery=bool(payload[3] & 0x80))
        data.update(model.status(payload[4:]))
    else:
        return DecodeResult(data=data, errors=[f"unknown report type 0x{report:02x}"])
    return DecodeResult(data=data)


def _configuration(payload: bytes, model: _Model) -> DecodeResult:
    command = payload[0]
    if command == 0x81:
        return DecodeResult(data={"device": model.name, "command": "config_report_response",
                                  "success": payload[2] == 0})
    if command == 0x82:
        return DecodeResult(data={"device": model.name, "command": "read_config_report_response",
                                  "min_time": _u(payload[2:4]), "max_time": _u(payload[4:6]),
                                  "battery_change": payload[6] / 10, **model.thresholds(payload[7:])})
    return DecodeResult(errors=[f"unknown configuration command 0x{command:02x}"])


_SENSOR_TYPES = {1: "temperature", 2: "humidity"}


def _calibration(payload: bytes, model: _Model) -> DecodeResult:
    """A global calibration answer: how the device corrects its own readings (configuration, not a reading)."""
    command = payload[0]
    data: dict[str, Any] = {"device": model.name}
    if command == 0x83:
        return DecodeResult(data={**data, "command": "clear_global_calibrate_response", "success": payload[1] == 0})
    if command not in (0x81, 0x82):
        return DecodeResult(errors=[f"unknown calibration command 0x{command:02x}"])
    data.update(sensor=_SENSOR_TYPES.get(payload[1], f"unknown {payload[1]}"), channel=payload[2] + 1)
    if command == 0x81:
        return DecodeResult(data={**data, "command": "set_global_calibrate_response", "success": payload[3] == 0})
    return DecodeResult(data={**data, "command": "get_global_calibrate_response", "multiplier": _u(payload[3:5]),
                              "divisor": _u(payload[5:7]), "offset": _s(payload[7:9])})


_PORTS: dict[int, Callable[[bytes, _Model], DecodeResult]] = {6: _report, 7: _configuration, 14: _calibration}
_CALIBRATION_PORT = 14


def _decode(payload: bytes, fport: int | None, model: _Model) -> DecodeResult:
    handle = _PORTS.get(fport) if fport is not None else None
    if handle is None:
        return DecodeResult(errors=[f"unsupported fPort {fport}: Netvox reports on 6, configuration answers on 7, "
                                    "calibration answers on 14"])
    if len(payload) < FRAME_SIZE:
        return DecodeResult(errors=[f"frame needs {FRAME_SIZE} bytes, has {len(payload)}"])
    if fport != _CALIBRATION_PORT and payload[1] != model.device_type:
        other = _NAMES.get(payload[1], "an unknown model")
        return DecodeResult(errors=[f"device type 0x{payload[1]:02x} is {other}, not {model.name}"])
    return handle(payload, model)


def _decoder(model: _Model, slug: str, description: str, examples: tuple[Example, ...]) -> Decoder:
    device = DeviceType(id=f"netvox-{slug}", vendor="Netvox", model=model.name, description=description)
    mapping = {"battery_voltage": ("battery_voltage", 1.0), **model.normalized}

    def normalize(data: dict[str, Any]) -> list[Measurement]:
        return measurements_from(data, mapping) if data.get("report") == "status" else []

    measurements = tuple(dict.fromkeys(name for name, _ in mapping.values()))
    t = f"{model.device_type:02x}"
    common = (
        Example("start-up version report", f"01{t}00640220200811 0000".replace(" ", ""), 6,
                data={"device": model.name, "protocol_version": 1, "report": "version", "software_version": 10.0,
                      "hardware_version": 2, "date_code": "20200811"}),
        Example("configuration accepted (fPort 7)", f"81{t}00" + "00" * 8, 7,
                data={"device": model.name, "command": "config_report_response", "success": True}),
        Example("short frame", f"01{t}0124", 6, errors=("frame needs 11 bytes, has 4",)),
        Example("unknown report type", f"01{t}05" + "00" * 8, 6, errors=("unknown report type 0x05",)),
        Example("unknown configuration command", f"7f{t}" + "00" * 9, 7, errors=("unknown configuration command",)),
        Example("unknown calibration command", "7f01" + "00" * 9, 14, errors=("unknown calibration command 0x7f",)),
        Example("calibration cleared (fPort 14)", "8300" + "00" * 9, 14,
                data={"device": model.name, "command": "clear_global_calibrate_response", "success": True}),
        Example("wrong fPort", f"01{t}0124" + "00" * 7, 1, errors=("unsupported fPort 1",)),
    )
    return Decoder(device, measurements, (*examples, *common),
                   lambda payload, fport: _decode(payload, fport, model), normalize)


def _version_example(name: str, frame: str, hardware: int, date: str) -> Example:
    """A start-up version report as published in Netvox' TTN codec examples."""
    return Example(f"start-up version report (vendor sample, {date})", frame, 6,
                   data={"device": name, "protocol_version": 1, "report": "version", "software_version": 10.0,
                         "hardware_version": hardware, "date_code": date})


def _read_config_example(name: str, t: str) -> Example:
    """The vendor's ReadConfigReportRsp sample: min 900 s, max 1800 s, battery change 0.1 V."""
    return Example("report configuration (vendor sample)", f"82{t}038407080100000000", 7,
                   data={"device": name, "command": "read_config_report_response", "min_time": 900,
                         "max_time": 1800, "battery_change": 0.1})


R718A = _decoder(
    _Model("R718A", 0x0B,
           lambda b: {"temperature": _s(b[0:2]) / 100, "humidity": _u(b[2:4]) / 100},
           lambda b: {"temperature_change": _u(b[0:2]) / 100, "humidity_change": _u(b[2:4]) / 100},
           {"temperature": ("temperature", 1), "humidity": ("humidity", 1)}),
    "r718a", "Temperature and humidity sensor for low-temperature environments",
    (
        Example("status report (vendor sample)", "010b012409ea1a90000000", 6,
                data={"device": "R718A", "protocol_version": 1, "report": "status", "battery_voltage": 3.6,
                      "low_battery": False, "temperature": 25.38, "humidity": 68.0},
                measurements=(("battery_voltage", 3.6), ("temperature", 25.38), ("humidity", 68.0))),
        Example("freezer: negative temperature, low battery", "010b01a0f8301388000000", 6,
                data={"device": "R718A", "protocol_version": 1, "report": "status", "battery_voltage": 3.2,
                      "low_battery": True, "temperature": -20.0, "humidity": 50.0},
                measurements=(("temperature", -20.0),)),
        Example("report configuration (vendor sample)", "820b03840708010032 0032".replace(" ", ""), 7,
                data={"device": "R718A", "command": "read_config_report_response", "min_time": 900,
                      "max_time": 1800, "battery_change": 0.1, "temperature_change": 0.5, "humidity_change": 0.5}),
        Example("an R718B frame", "0195012400fd0000000000", 6, errors=("device type 0x95 is R718B, not R718A",)),
    ),
)

R718B = _decoder(
    _Model("R718B", 0x95,
           lambda b: {"probe_temperature": _s(b[0:2]) / 10},
           lambda b: {"temperature_change": _u(b[0:2]) / 10},
           {"probe_temperature": ("temperature_external", 1)}),
    "r718b", "Temperature sensor with an external probe",
    (
        Example("status report (vendor sample)", "0195012400fd0000000000", 6,
                data={"device": "R718B", "protocol_version": 1, "report": "status", "battery_voltage": 3.6,
                      "low_battery": False, "probe_temperature": 25.3},
                measurements=(("battery_voltage", 3.6), ("temperature_external", 25.3))),
        Example("probe in a freezer", "01950124fe700000000000", 6,
                data={"device": "R718B", "protocol_version": 1, "report": "status", "battery_voltage": 3.6,
                      "low_battery": False, "probe_temperature": -40.0},
                measurements=(("temperature_external", -40.0),)),
        _version_example("R718B", "0195006403202012080000", 3, "20201208"),
        Example("report configuration (vendor sample)", "8295038407080100050000", 7,
                data={"device": "R718B", "command": "read_config_report_response", "min_time": 900,
                      "max_time": 1800, "battery_change": 0.1, "temperature_change": 0.5}),
        Example(
            # temperature sensor, channel 0 -> 1; multiplier 1, divisor 1, offset 0xfffb = -5 (tenths, as set)
            "global calibration read back (fPort 14)", "820100000100 01fffb0000".replace(" ", ""), 14,
            data={"device": "R718B", "command": "get_global_calibrate_response", "sensor": "temperature",
                  "channel": 1, "multiplier": 1, "divisor": 1, "offset": -5}),
        Example("global calibration set: failure (fPort 14)", "8101000100000000000000", 14,
                data={"device": "R718B", "command": "set_global_calibrate_response", "sensor": "temperature",
                      "channel": 1, "success": False}),
        Example("calibration answer cut off (fPort 14)", "820100000100", 14, errors=("frame needs 11 bytes, has 6",)),
    ),
)


def _leak_model(name: str, device_type: int) -> _Model:
    return _Model(name, device_type, lambda b: {"water_leak": bool(b[0])}, normalized={"water_leak": ("leak", 1)})


def _leak_examples(name: str, t: str, version: Example) -> tuple[Example, ...]:
    return (
        version,
        _read_config_example(name, t),
        Example("status report: leak (vendor sample)", f"01{t}011e01000000000000", 6,
                data={"device": name, "protocol_version": 1, "report": "status", "battery_voltage": 3.0,
                      "low_battery": False, "water_leak": True},
                measurements=(("battery_voltage", 3.0), ("leak", 1))),
        Example("status report: dry, low battery", f"01{t}019f00000000000000", 6,
                data={"device": name, "protocol_version": 1, "report": "status", "battery_voltage": 3.1,
                      "low_battery": True, "water_leak": False},
                measurements=(("leak", 0),)),
    )


R718WA = _decoder(_leak_model("R718WA", 0x32), "r718wa", "Water leak detector with built-in probes",
                  _leak_examples("R718WA", "32", _version_example("R718WA", "013200640b20191112 0000".replace(" ", ""),
                                                                  11, "20191112")))
R718WB = _decoder(_leak_model("R718WB", 0x12), "r718wb", "Water leak detector with a rope sensor",
                  _leak_examples("R718WB", "12", _version_example("R718WB", "011200640220191112 0000".replace(" ", ""),
                                                                  2, "20191112")))

R718F = _decoder(
    _Model("R718F", 0x1D, lambda b: {"contact_open": bool(b[0])}, normalized={"contact_open": ("door_open", 1)}),
    "r718f", "Reed switch open/close detector for doors and windows",
    (
        Example("status report: open (vendor sample)", "011d0124010000000000 00".replace(" ", ""), 6,
                data={"device": "R718F", "protocol_version": 1, "report": "status", "battery_voltage": 3.6,
                      "low_battery": False, "contact_open": True},
                measurements=(("battery_voltage", 3.6), ("door_open", 1))),
        _version_example("R718F", "011d0064022019061900 00".replace(" ", ""), 2, "20190619"),
        _read_config_example("R718F", "1d"),
        Example("status report: closed", "011d0124000000000000 00".replace(" ", ""), 6,
                data={"device": "R718F", "protocol_version": 1, "report": "status", "battery_voltage": 3.6,
                      "low_battery": False, "contact_open": False},
                measurements=(("door_open", 0),)),
    ),
)

DECODERS = [R718A, R718B, R718WA, R718WB, R718F]

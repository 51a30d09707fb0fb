"""Elsys models cities buy, listed by name: each reuses the Elsys type-tagged frame decoder.

The frame format is the same for the whole family (see ``decoders.builtin.elsys``); a model only
narrows the declared measurements and carries examples of the frames it sends.
"""

from __future__ import annotations

from decoders.builtin.elsys import decode, normalize
from decoders.catalog import Decoder
from decoders.contract import DeviceType, Example


def _model(slug: str, model: str, description: str, measurements: tuple[str, ...],
           examples: tuple[Example, ...]) -> Decoder:
    device = DeviceType(id=f"elsys-{slug}", vendor="Elsys", model=model, description=description)
    broken = (
        Example("empty frame", "", 5, errors=("empty payload",)),
        Example("cut-off field", "0100f10601", 5, errors=("field 0x06 at byte 3 needs 2 bytes, has 1",)),
        Example("unknown field type", "0100f1ee01", 5, errors=("unknown field type 0xee at byte 3",)),
    )
    return Decoder(device, measurements, (*examples, *broken), decode, normalize)


# REFERENCE payload: 01 00f1 temperature 241 -> 24.1 C; 02 2e humidity 46 %; 04 012c light 300 lx; 05 00 motion 0;
# 06 0190 CO2 400 ppm; 07 0e22 vdd 3618 mV
_REFERENCE = "0100f1022e04012c0500060190070e22"

ERS = _model(
    "ers", "ERS", "Indoor climate sensor: temperature, humidity, light and motion (PIR)",
    ("temperature", "humidity", "illuminance", "motion", "battery_voltage"),
    (
        Example(
            "temperature, humidity, light, motion, vdd",
            "0100e6022904002a0503070e10",
            5,
            data={"temperature": 23.0, "humidity": 41, "light": 42, "motion": 3, "vdd": 3600},
            measurements=(("temperature", 23.0), ("humidity", 41), ("illuminance", 42), ("motion", 3),
                          ("battery_voltage", 3.6)),
        ),
        Example("temperature, humidity, light, motion (Elsys' published example)", "0100e202290400270506", 1,
                data={"temperature": 22.6, "humidity": 41, "light": 39, "motion": 6},
                measurements=(("temperature", 22.6), ("humidity", 41.0), ("illuminance", 39.0), ("motion", 6))),
        Example("below freezing (0xffce = -50)", "01ffce0250", 5, data={"temperature": -5.0, "humidity": 80},
                measurements=(("temperature", -5.0), ("humidity", 80))),
    ),
)

ERS_CO2 = _model(
    "ers-co2", "ERS CO2", "Indoor climate sensor with CO2: temperature, humidity, light, motion and CO2 (NDIR)",
    ("temperature", "humidity", "illuminance", "motion", "co2", "battery_voltage"),
    (
        Example(
            "REFERENCE frame: temperature, humidity, light, motion, CO2, vdd",
            _REFERENCE,
            5,
            data={"temperature": 24.1, "humidity": 46, "light": 300, "motion": 0, "co2": 400, "vdd": 3618},
            measurements=(("temperature", 24.1), ("humidity", 46), ("illuminance", 300), ("motion", 0),
                          ("co2", 400), ("battery_voltage", 3.618)),
        ),
        Example("temperature, humidity, light, motion, CO2 (Elsys' published example)", "0100e202290400270506060308", 1,
                data={"temperature": 22.6, "humidity": 41, "light": 39, "motion": 6, "co2": 776},
                measurements=(("temperature", 22.6), ("co2", 776.0), ("motion", 6))),
        Example("stuffy meeting room: CO2 0x0708 = 1800 ppm", "06070801010e", 5,
                data={"co2": 1800, "temperature": 27.0}, measurements=(("co2", 1800), ("temperature", 27.0))),
    ),
)

ELT_2 = _model(
    "elt-2", "ELT-2",
    "Outdoor sensor with external inputs: temperature, humidity, pressure, pulse counter, analog input, "
    "external temperature probe, water leak and switch",
    ("temperature", "humidity", "pressure", "battery_voltage", "analog_input", "pulse_count",
     "temperature_external", "leak", "door_open"),
    (
        Example(
            # 14 000f7d1c: 1015068 / 1000 = 1015.068 hPa; 0b 00003039: absolute pulses 12345; 0c ff9c: -10.0 C
            "pressure, absolute pulse count, external probe below zero, vdd",
            "0100c8023c14000f7d1c0b000030390cff9c070e74",
            5,
            data={"temperature": 20.0, "humidity": 60, "pressure": 1015.068, "pulseAbs": 12345,
                  "externalTemperature": -10.0, "vdd": 3700},
            measurements=(("pressure", 1015.068), ("pulse_count", 12345), ("temperature_external", -10.0),
                          ("battery_voltage", 3.7)),
        ),
        Example("analog input 0x0bb8 = 3000 mV, water leak, switch open", "080bb812010d01", 5,
                data={"analog1": 3000, "waterleak": 1, "digital": 1},
                measurements=(("analog_input", 3.0), ("leak", 1), ("door_open", 1))),
    ),
)

DECODERS = [ERS, ERS_CO2, ELT_2]

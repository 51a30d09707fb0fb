"""One shared vocabulary: the same quantity has the same name and SenML unit for every supplier.

Units come from the SenML registry (RFC 8428) and its secondary units (RFC 8798).
The bounds are plausibility limits that the decoder test suite checks every example against.

Every quantity has one numeric kind, whichever decoder reports it, so a consumer never sees
humidity as ``49`` from one sensor and ``49.5`` from another:

* ``PHYSICAL``: a measured value, always a float (``49.0``);
* ``STATE``: a two-valued state, always the int 0 or 1, taken from the documented bit or value
  (never a raw byte: a leak level of 17 is a leak, reported as 1);
* ``COUNT``: a number of events or pulses, always an int.

``decoders.contract.measurements_from`` applies the kind; the decoder tests check it on every example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PHYSICAL: Final = "physical"
STATE: Final = "state"
COUNT: Final = "count"

@dataclass(frozen=True, slots=True)
class Quantity:
    """A named physical (or logical) quantity with its one unit and plausible range."""

    name: str
    unit: str
    description: str
    minimum: float
    maximum: float
    kind: str = PHYSICAL


def _q(name: str, unit: str, description: str, minimum: float, maximum: float, kind: str = "") -> Quantity:
    """A quantity; its kind is a count for the unit ``count``, physical otherwise, unless given."""
    return Quantity(name, unit, description, minimum, maximum, kind or (COUNT if unit == "count" else PHYSICAL))


QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        _q("temperature", "Cel", "air or surface temperature", -60, 150),
        _q("temperature_external", "Cel", "temperature of an external probe", -100, 400),
        _q("humidity", "%RH", "relative humidity", 0, 100),
        _q("co2", "ppm", "carbon dioxide concentration", 0, 100_000),
        _q("pressure", "hPa", "barometric pressure", 0, 2000),
        _q("water_pressure", "Pa", "hydrostatic or line pressure", -1e6, 1e8),
        _q("illuminance", "lx", "light level", 0, 200_000),
        _q("motion", "count", "motion events (PIR) since the previous frame", 0, 65_535),
        _q("occupancy", "/", "occupied (1) or free (0)", 0, 1, STATE),
        _q("battery_voltage", "V", "battery or supply voltage", 0, 60),
        _q("battery", "%EL", "remaining battery", 0, 100),
        _q("distance", "m", "measured distance, e.g. ultrasonic to a surface", 0, 100),
        _q("water_level", "m", "water level above a reference", -100, 1000),
        _q("fill_level", "%", "container fill level", 0, 100),
        _q("soil_moisture", "%", "volumetric soil water content", 0, 100),
        _q("soil_temperature", "Cel", "soil temperature", -60, 100),
        _q("conductivity", "uS/cm", "electrical conductivity", 0, 1e6),
        _q("noise", "dB", "sound pressure level", 0, 200),
        _q("pm1", "ug/m3", "particulate matter below 1 um", 0, 10_000),
        _q("pm2_5", "ug/m3", "particulate matter below 2.5 um", 0, 10_000),
        _q("pm10", "ug/m3", "particulate matter below 10 um", 0, 10_000),
        _q("tvoc", "ppb", "total volatile organic compounds", 0, 1e6),
        _q("tvoc_mass", "ug/m3", "total volatile organic compounds as a mass concentration (ppb needs the gas"
                                 " mixture to convert, so it is a quantity of its own)", 0, 1e6),
        _q("voc_index", "/", "volatile organic compound index", 0, 500),
        _q("water_volume", "m3", "cumulative water volume", 0, 1e9),
        _q("energy", "kWh", "cumulative energy", 0, 1e12),
        _q("power", "W", "active power", -1e9, 1e9),
        _q("pulse_count", "count", "cumulative pulse counter", 0, 1e12),
        _q("door_open", "/", "door or window open (1) or closed (0)", 0, 1, STATE),
        _q("leak", "/", "water leak detected (1) or not (0)", 0, 1, STATE),
        _q("latitude", "lat", "WGS84 latitude", -90, 90),
        _q("longitude", "lon", "WGS84 longitude", -180, 180),
        _q("altitude", "m", "altitude above sea level", -500, 10_000),
        _q("speed", "m/s", "ground speed", 0, 350),
        _q("acceleration", "m/s2", "acceleration", -200, 200),
        _q("rssi", "dBm", "received signal strength", -200, 20),
        _q("snr", "dB", "signal to noise ratio", -40, 40),
        _q("analog_input", "V", "analog input voltage", -100, 100),
        _q("digital_input", "/", "digital input state", 0, 1, STATE),
        _q("flow_rate", "m3/s", "volume flow rate", -1e3, 1e3),
        _q("door_open_count", "count", "door or window openings, cumulative", 0, 1e9),
        _q("button_press", "count", "button presses since the previous frame or cumulative", 0, 1e9),
        _q("uv_index", "/", "ultraviolet index", 0, 20),
        _q("wind_speed", "m/s", "wind speed", 0, 120),
        _q("precipitation", "mm", "precipitation since the previous frame", 0, 1000),
        _q("ph", "pH", "acidity", 0, 14),
        _q("position_accuracy", "m", "estimated position error", 0, 1e6),
        _q("tilt", "deg", "tilt angle from the vertical", -180, 180),
        _q("light_level", "/", "relative light level (unitless index)", 0, 1e6),
        _q("generic", "/", "a unitless value", -1e12, 1e12),
    )
}


def quantity(name: str) -> Quantity:
    """Look up a quantity by name; a KeyError names the unknown quantity."""
    try:
        return QUANTITIES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the shared vocabulary (decoders/vocabulary.py)") from None


def typed(q: Quantity, value: float | int | bool) -> float | int:
    """``value`` as the quantity's kind: a float for a physical value, an int for a count or a state.

    A state keeps its value (a bool becomes 0 or 1): a raw byte that is not 0 or 1 stays visible, so the
    decoder tests catch it instead of a silent ``bool()`` hiding which bit was meant.
    """
    if q.kind == PHYSICAL:
        return float(value)
    if isinstance(value, bool) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    return value

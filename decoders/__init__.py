"""Device-type decoders: bytes in, common data out; pure, with their own examples."""

from decoders.contract import DecodeResult, DeviceType, Example, Measurement

__all__ = ["DecodeResult", "DeviceType", "Example", "Measurement"]

"""Sandboxed JavaScript codecs: TTN/TS013, ChirpStack v3/v4 and OS2iot decoders in QuickJS.

Modules, each with one job:

* ``codec``: :class:`JsCodec`, compiled once, per-thread contexts, decode/normalize/encode, never raising;
* ``engine``: one QuickJS context with one codec, its limits and thread rule; :class:`JsCompileError`;
* ``harness`` and ``shims``: the JavaScript inside each context (call, reset, console, ``Buffer``, ``atob``);
* ``dialects``, ``os2iot``, ``results``: how each dialect is called and what its answer becomes;
* ``limits``: :class:`Limits` (time, memory, stack, output size, console capture);
* ``examples``: TTN-style example runner (deep JSON equality with a diff message);
* ``spec``, ``ttn_repository``, ``chirpstack_repository``, ``yaml12``: importers of the two public
  device repositories and their per-codec example report;
* ``bridge``: a :class:`decoders.catalog.Decoder` made from a JsCodec;
* ``worker``, ``wire``, ``worker_client``: the worker process that runs codecs off the service's event
  loop, its frames, and a blocking client with a hard deadline (for the API's trials).

Exceptions: :class:`JsCompileError` (ValueError) from the constructor only; every call returns a result.
"""

from typing import TYPE_CHECKING, Any

from decoders.js.codec import JsCodec, JsCodecStats
from decoders.js.dialects import Dialect, detect_dialect
from decoders.js.engine import JsCompileError
from decoders.js.examples import CodecExample, ExampleOutcome, run_examples
from decoders.js.limits import Limits
from decoders.js.results import CallOutcome, EncodeResult, NormalizeResult

if TYPE_CHECKING:
    from decoders.js.chirpstack_repository import scan_chirpstack_repository
    from decoders.js.spec import CodecReport, CodecSpec, run_codec_examples
    from decoders.js.ttn_repository import scan_ttn_repository

_LAZY = {
    "scan_chirpstack_repository": "decoders.js.chirpstack_repository",
    "CodecReport": "decoders.js.spec",
    "CodecSpec": "decoders.js.spec",
    "run_codec_examples": "decoders.js.spec",
    "scan_ttn_repository": "decoders.js.ttn_repository",
}


def __getattr__(name: str) -> Any:
    """The repository importers load on first use (YAML and all): a worker process never needs them."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'decoders.js' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "CallOutcome",
    "CodecExample",
    "CodecReport",
    "CodecSpec",
    "Dialect",
    "EncodeResult",
    "ExampleOutcome",
    "JsCodec",
    "JsCodecStats",
    "JsCompileError",
    "Limits",
    "NormalizeResult",
    "detect_dialect",
    "run_codec_examples",
    "run_examples",
    "scan_chirpstack_repository",
    "scan_ttn_repository",
]

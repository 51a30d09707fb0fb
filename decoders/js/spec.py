"""An imported codec (source, dialect, devices, examples) and the report of running its examples."""

from __future__ import annotations

from dataclasses import dataclass

from decoders.js.codec import JsCodec
from decoders.js.dialects import Dialect
from decoders.js.engine import JsCompileError
from decoders.js.examples import CodecExample, run_examples
from decoders.js.limits import Limits


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """A codec found in a device repository; ``problem`` says why it could not be read completely."""

    repository: str  # "ttn" or "chirpstack"
    vendor: str  # the vendor's directory name in the repository
    codec_id: str
    devices: tuple[str, ...]
    source: str
    dialect: Dialect
    examples: tuple[CodecExample, ...] = ()
    path: str = ""
    problem: str | None = None
    vendor_name: str = ""

    @property
    def key(self) -> str:
        """A stable identifier: ``<repository>:<vendor>/<codec id>``."""
        return f"{self.repository}:{self.vendor}/{self.codec_id}"


@dataclass(frozen=True, slots=True)
class CodecReport:
    """How a codec fared on its examples; ``messages`` name each failure (and a compile error), ``warnings``
    each example whose ``normalizedOutput`` differs (counted apart in ``normalized_mismatches``: the decoded
    output matched, so the codec still passes)."""

    key: str
    passed: int
    failed: int
    messages: tuple[str, ...] = ()
    normalized_mismatches: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No example failed (an untested codec is ok, but not :attr:`tested`)."""
        return self.failed == 0

    @property
    def tested(self) -> bool:
        """Some example ran: a codec that has none compiled, and that is all that is known of it."""
        return self.passed + self.failed > 0

    @property
    def status(self) -> str:
        """``PASS``, ``FAIL`` or ``UNTESTED`` (compiles, but has no example to run)."""
        return "FAIL" if not self.ok else "PASS" if self.tested else "UNTESTED"


def run_codec_examples(spec: CodecSpec, limits: Limits | None = None) -> CodecReport:
    """Compile the codec and run its examples; a codec that does not compile fails all of them (at least one)."""
    if spec.problem is not None:
        return CodecReport(spec.key, 0, max(1, len(spec.examples)), (spec.problem,))
    try:
        codec = JsCodec(spec.source, dialect=spec.dialect, limits=limits)
    except JsCompileError as exc:
        return CodecReport(spec.key, 0, max(1, len(spec.examples)), (f"does not compile: {exc}",))
    outcomes = run_examples(codec, spec.examples)

    def named(routine: str, description: str, message: str) -> str:
        return f"{routine} {description or '(no description)'}: {message}"

    messages = tuple(named(o.example.routine, o.example.description, o.message) for o in outcomes if not o.passed)
    warnings = tuple(named("normalizeUplink", o.example.description, o.normalized_message.removeprefix(
        "normalizeUplink: ")) for o in outcomes if o.normalized_message)
    passed = sum(1 for o in outcomes if o.passed)
    return CodecReport(spec.key, passed, len(outcomes) - passed, messages, len(warnings), warnings)

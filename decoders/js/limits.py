"""What one codec call may use: CPU time, memory, stack, output size, console lines."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-context and per-call bounds; the defaults suit a decoder on the hot path.

    ``time_ms`` is enforced by QuickJS's interrupt handler against the C ``clock()``, i.e. the CPU time
    of the whole process: with one thread decoding it is the codec's CPU time; with several threads
    running JavaScript at once it runs out faster (never slower) than wall time would. ``load_time_ms``
    bounds compiling and running the codec's top level once per context. ``memory_bytes`` is the
    context's whole heap (about 0.3 MiB go to the built-ins and the loaded codec).
    """

    time_ms: float = 100.0
    load_time_ms: float = 2000.0
    memory_bytes: int = 32 * MIB
    stack_bytes: int = 256 * 1024
    max_output_chars: int = 256 * 1024
    capture_console: bool = False
    max_console_lines: int = 20
    max_console_chars: int = 500

    def __post_init__(self) -> None:
        if self.time_ms <= 0 or self.load_time_ms <= 0:
            raise ValueError("time limits must be positive")
        if self.memory_bytes < 2 * MIB:
            raise ValueError("memory_bytes below 2 MiB cannot even hold the built-ins and a codec")
        if self.stack_bytes < 64 * 1024 or self.max_output_chars < 1024:
            raise ValueError("stack_bytes must be >= 64 KiB and max_output_chars >= 1024")

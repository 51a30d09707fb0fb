"""A consumer's delivery health in words, for people reading the delivery log.

The delivery log's ``health`` field is the circuit breaker's state (``closed``, ``half_open``,
``open``): exact, but jargon. It stays for compatibility; ``status`` says the same in plain words,
with the time deliveries are paused until when the log knows it. Pure, tested with a table.

What is known in the database: the circuit state the distributor last wrote, the last failure, and
when the earliest waiting delivery is due. An open circuit holds deliveries back until its next
probe; that moment is not stored, so "paused until" names the earliest due retry when it lies
ahead, and otherwise says the next probe is due (it comes within the circuit's cooldown).
"""

from __future__ import annotations

from datetime import datetime


def _at(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def delivery_status(circuit: str, pending: int, next_retry_at: datetime | None, now: datetime) -> str:
    """``healthy`` / ``probing…`` / ``failing, paused until …``, from the breaker's state and the backlog."""
    waiting = f"; {pending} {'delivery' if pending == 1 else 'deliveries'} waiting" if pending else ""
    if circuit == "open":
        if next_retry_at is not None and next_retry_at > now:
            return f"failing, paused until {_at(next_retry_at)}{waiting}"
        return f"failing, paused until the next probe (due now){waiting}"
    if circuit == "half_open":
        return f"probing: one delivery is testing whether the consumer is back{waiting}"
    if pending:
        return f"healthy, catching up{waiting}"
    return "healthy"

"""API trials (checks before saving, test endpoints) run in a worker process of their own, one at a time
with a short queue, and a trial that runs past its deadline is stopped by killing that worker."""

from __future__ import annotations

import asyncio
import time

import pytest

from registry.js_store import TrialBusy, TrialRunner
from registry.store import RegistryError

GOOD = "function decodeUplink(input) { return { data: { temperature: input.bytes[0] } }; }"
UNINTERRUPTIBLE = "function decodeUplink(i) { return { data: { n: new Array(4000000000).join('').length } }; }"
LOOPING = "function decodeUplink(input) { while (true) {} }"
EXAMPLE = {"description": "one", "input": {"fPort": 1, "bytes": [1]}, "output": {"data": {"temperature": 1}}}


async def test_a_check_past_its_deadline_is_stopped_and_the_next_trial_gets_a_fresh_worker() -> None:
    runner = TrialRunner(deadline_s=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(RegistryError, match="took longer than 1 s and was stopped"):
            await runner.check(UNINTERRUPTIBLE, None, 100, [EXAMPLE])
        assert time.monotonic() - started < 3
        tried = await runner.try_codec(UNINTERRUPTIBLE, None, 100, b"\x01", 1, {})
        assert tried["errors"] == ["the trial took longer than 1 s and was stopped"]
        checked = await runner.check(GOOD, None, 100, [EXAMPLE])
        assert (checked.dialect, checked.passed, checked.failures) == ("ttn", 1, ())
        with pytest.raises(RegistryError, match="does not compile"):
            await runner.check("function decodeUplink( {", None, 100, [])
    finally:
        runner.close()


async def test_trials_run_one_at_a_time_and_a_full_queue_is_refused_at_once() -> None:
    runner = TrialRunner(max_waiting=1, deadline_s=5.0)
    try:
        first = asyncio.create_task(runner.try_codec(LOOPING, None, 400, b"", 1, {}))
        second = asyncio.create_task(runner.try_codec(LOOPING, None, 400, b"", 1, {}))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(TrialBusy):
            await runner.try_codec(GOOD, None, 100, b"\x01", 1, {})
        assert time.monotonic() - started < 0.1
        for done in await asyncio.gather(first, second):
            assert done["errors"] == ["timed out after 400 ms"]
        assert (await runner.try_codec(GOOD, None, 100, b"\x02", 1, {}))["data"] == {"temperature": 2}
    finally:
        runner.close()

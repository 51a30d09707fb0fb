"""The words of start-up failures and the broker's retry schedule, as tables (``distributor.startup``)."""

from __future__ import annotations

import errno
import socket

import pytest
from pydantic import ValidationError

from distributor.settings import Settings
from distributor.startup import broker_problem, broker_retry_delay, http_problem, probe_port, settings_problem


def test_the_broker_is_retried_after_1_2_4_s_up_to_30_s() -> None:
    assert [broker_retry_delay(n) for n in (1, 2, 3, 4, 5, 6, 7, 50)] == [1, 2, 4, 8, 16, 30, 30, 30]


@pytest.mark.parametrize(("code", "words"), [
    (errno.EADDRINUSE, "already in use"),
    (errno.EACCES, "above 1023"),
    (errno.EADDRNOTAVAIL, "not an address of this machine"),
])
def test_listening_problems_name_the_setting_to_change(code: int, words: str) -> None:
    line = http_problem(OSError(code, "x"), "10.1.2.3", 80)
    assert words in line and "IOTD_HTTP" in line and "\n" not in line


def test_a_busy_port_is_found_by_the_probe() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(OSError) as caught:
            probe_port("127.0.0.1", sock.getsockname()[1])
    assert caught.value.errno == errno.EADDRINUSE
    probe_port("127.0.0.1", 0)   # port 0 is always free


def test_broker_problems_are_one_bounded_line() -> None:
    assert "connection refused" in broker_problem(ConnectionRefusedError(111, "refused"), "h", 1883)
    line = broker_problem(RuntimeError("x" * 5000 + "\nsecond line"), "h", 1883)
    assert "\n" not in line and len(line) < 500


@pytest.mark.parametrize(("variable", "value"), [("log_level", "LOUD"), ("log_format", "text")])
def test_log_settings_outside_the_allowed_values_are_refused(variable: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({variable: value})
    assert "must be one of" in settings_problem(caught.value)
    assert Settings(log_level="WARNING", log_format="Console").log_level == "warning"

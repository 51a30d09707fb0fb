"""The bound on decode-failure log lines: a table over a fake clock."""

from __future__ import annotations

from distributor.log_budget import LogBudget


def test_lines_beyond_the_budget_are_counted_and_reported_in_the_next_window() -> None:
    now = [0.0]
    budget = LogBudget(per_window=3, window_s=10, clock=lambda: now[0])
    assert [budget.allow("decoder-a") for _ in range(5)] == [(True, 0)] * 3 + [(False, 0)] * 2
    assert budget.allow("decoder-b") == (True, 0)          # another tenant's decoder has its own budget
    now[0] = 10.0
    assert budget.allow("decoder-a") == (True, 2)          # the first line of the next window says how many
    assert budget.allow("decoder-a") == (True, 0)

"""PhaseTimer: free when off, totals per phase when on, nested phases, shares of a total."""

from __future__ import annotations

import time

import pytest

from ngp_sdk.core.profiling import PhaseTimer


def test_disabled_timer_records_nothing():
    t = PhaseTimer()
    with t.phase("a"):
        time.sleep(0.001)
    t.count_step()
    assert t.totals == {} and t.steps == 0 and t.summary() == {}


def test_enabled_timer_accumulates_nested_phases_and_shares():
    t = PhaseTimer(enabled=True)
    for _ in range(3):
        with t.phase("step"):
            with t.phase("step/a"):
                time.sleep(0.004)
            with t.phase("step/b"):
                time.sleep(0.002)
        t.count_step()
    s = t.summary("step")
    assert list(s) == ["step", "step/a", "step/b"]  # sorted by time
    assert s["step"]["share"] == pytest.approx(1.0)
    assert s["step"]["calls_per_step"] == 1.0
    assert s["step/a"]["ms_per_step"] >= 4.0 and s["step/b"]["ms_per_step"] >= 2.0
    assert s["step/a"]["share"] + s["step/b"]["share"] <= 1.0
    assert s["step/a"]["share"] > s["step/b"]["share"]
    t.reset()
    assert t.summary() == {}


def test_a_phase_that_raises_is_still_counted():
    t = PhaseTimer(enabled=True)
    with pytest.raises(ValueError), t.phase("x"):
        raise ValueError("boom")
    assert t.counts == {"x": 1}

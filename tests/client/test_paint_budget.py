"""The viewer's per-second paint budget (rdesk/client/painter.py): a token bucket in screens."""

from __future__ import annotations

import pytest

from rdesk.client.painter import PaintBudget


def test_work_within_the_burst_waits_not() -> None:
    budget = PaintBudget(0.0, rate=10.0, burst=6.0)
    assert budget.charge(3.0, 0.0) == 0.0
    assert budget.charge(3.0, 0.0) == 0.0


def test_work_beyond_it_waits_for_its_debt_and_the_debt_carries() -> None:
    budget = PaintBudget(0.0, rate=10.0, burst=6.0)
    budget.charge(6.0, 0.0)
    assert budget.charge(3.0, 0.0) == pytest.approx(0.3)
    assert budget.charge(3.0, 0.0) == pytest.approx(0.6)  # charged while waiting: longer
    assert budget.charge(0.0, 0.6) == 0.0  # paid off at the rate


def test_the_bucket_refills_to_the_burst_only() -> None:
    budget = PaintBudget(0.0, rate=10.0, burst=6.0)
    budget.charge(6.0, 0.0)
    assert budget.charge(6.0, 100.0) == 0.0  # a long idle time fills it, up to the burst
    assert budget.charge(1.0, 100.0) == pytest.approx(0.1)
    assert budget.charge(0.0, 99.0) > 0.0  # a clock going backwards refills nothing


def test_a_budget_must_allow_some_work() -> None:
    with pytest.raises(ValueError):
        PaintBudget(0.0, rate=0.0)

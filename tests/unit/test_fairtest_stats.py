"""experiments/issue16/fairtest.py's statistics: t-test p-values and Holm's correction.

Issue 25's pre-registered hypotheses (docs/results.md §7c) are one-sided paired
t-tests over 5 seeds, Holm-corrected as one family.
"""

from __future__ import annotations

import math

import pytest

from tests.unit.scripts import load

fairtest = load("experiments/issue16/fairtest.py", "fairtest16")


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        (0.0, 4, 0.5),
        (2.776445105, 4, 0.025),  # the 97.5 % quantile of t(4) used for the intervals
        (12.706204736, 1, 0.025),
        (1.0, 1, 0.25),  # Cauchy: 1/2 - atan(1)/pi
        (2.0, 2, 0.5 - 1 / math.sqrt(6)),  # t(2): 1/2 - t / (2 sqrt(t^2 + 2))
        (-2.0, 2, 0.5 + 1 / math.sqrt(6)),
    ],
)
def test_t_sf_matches_closed_forms_and_tables(t: float, df: int, p: float) -> None:
    assert abs(fairtest.t_sf(t, df) - p) < 1e-9


def test_t_sf_is_a_decreasing_tail_probability() -> None:
    values = [fairtest.t_sf(t / 4, 4) for t in range(-40, 41)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert fairtest.t_sf(math.inf, 4) == 0.0 and fairtest.t_sf(-math.inf, 4) == 1.0
    with pytest.raises(ValueError):
        fairtest.t_sf(1.0, 0)


def test_paired_p_is_the_one_sided_t_test() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]  # mean 3, sd sqrt(2.5), t = 3 / sqrt(0.5)
    assert abs(fairtest.paired_p(values) - fairtest.t_sf(3 / math.sqrt(0.5), 4)) < 1e-15
    assert fairtest.paired_p([1.0, 1.0, 1.0]) == 0.0  # no spread, positive mean
    assert fairtest.paired_p([-1.0, -1.0]) == 1.0
    assert math.isnan(fairtest.paired_p([1.0]))


def test_holm_by_hand() -> None:
    # sorted 0.01 (x4), 0.02 (x3), 0.03 (x2), 0.04 (x1) -> 0.04, 0.06, 0.06, 0.06
    got = fairtest.holm({"a": 0.03, "b": 0.01, "c": 0.04, "d": 0.02})
    assert got == pytest.approx({"b": 0.04, "d": 0.06, "a": 0.06, "c": 0.06})
    # monotone: a larger raw p never gets a smaller adjusted p; capped at 1
    got = fairtest.holm({"a": 0.001, "b": 0.2, "c": 0.021})
    assert got == pytest.approx({"a": 0.003, "c": 0.042, "b": 0.2})
    assert fairtest.holm({"a": 0.6, "b": 0.7}) == pytest.approx({"a": 1.0, "b": 1.0})


def test_holm_leaves_untested_hypotheses_out_of_the_family() -> None:
    got = fairtest.holm({"a": 0.02, "b": math.nan, "c": 0.01})
    assert got == pytest.approx({"c": 0.02, "a": 0.02})
    assert fairtest.holm({}) == {}

"""Metrics on toy inputs with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnguard.config import EvaluationConfig
from churnguard.errors import ConfigError
from churnguard.evaluation import (
    Evaluation,
    best_list_size,
    bootstrap_intervals,
    classification_metrics,
    expected_calibration_error,
    lift_and_capture,
    list_profit_curve,
    profit_curve,
    verdict,
)


def test_calibration_error_weights_each_bin_by_its_share():
    # bin 0.1x: p 0.1, 0.1 against 0, 1 → |0.5 − 0.1| = 0.4 on half the rows
    # bin 0.9x: p 0.9, 0.9 against 1, 1 → |1 − 0.9| = 0.1 on the other half
    assert expected_calibration_error([0, 1, 1, 1], [0.1, 0.1, 0.9, 0.9]) == pytest.approx(0.25)


def test_lift_and_capture_at_the_top_of_the_ranking():
    y = [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    p = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    out = lift_and_capture(y, p, fractions=[0.2, 0.5])
    assert out["lift_top_20pct"] == pytest.approx(1.0 / 0.3)  # both of the top 2 churn
    assert out["capture_top_20pct"] == pytest.approx(2 / 3)
    assert out["capture_top_50pct"] == pytest.approx(2 / 3)


def test_profit_curve_peaks_where_the_next_contact_costs_more_than_it_saves():
    curve = profit_curve([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1], cost=10, success_rate=0.5, value=100)
    # gains in rank order: +40, −10, +40, −10
    assert curve["expected_profit"].tolist() == [0, 40, 30, 70, 60]
    assert best_list_size(curve) == (3, 70.0)


def test_the_list_curve_ranks_by_expected_benefit_and_prices_each_row_as_its_intervention():
    pricing = pd.DataFrame(
        {
            "expected_benefit": [5.0, -np.inf, 10.0, 1.0],
            "saving": [100.0, 0.0, 50.0, 20.0],
            "cost": [5.0, 0.0, 10.0, 1.0],
        }
    )
    y = np.array([1, 1, 0, 1])
    curve = list_profit_curve(y, pricing)
    # rows 2, 0, 3 in benefit order (row 1 fits nothing): −10, +95, +19
    assert curve["expected_profit"].tolist() == [0, -10, 85, 104]
    assert curve["list_size"].tolist() == [0, 1, 2, 3]
    campaign = EvaluationConfig()
    priced = Evaluation(y, np.array([0.2, 0.9, 0.1, 0.5]), campaign, pricing=pricing)
    assert priced.profit_basis == "catalogue" and priced.best_list_size == (3, 104.0)
    assert priced.to_json()["profit"]["basis"] == "catalogue"
    nothing = pricing.assign(expected_benefit=-np.inf)
    fallback = Evaluation(y, np.array([0.2, 0.9, 0.1, 0.5]), campaign, pricing=nothing)
    assert fallback.profit_basis == "campaign"
    assert fallback.to_json()["profit"]["success_rate"] == campaign.success_rate


def test_a_perfect_ranking_scores_one_and_bad_input_is_refused():
    metrics = classification_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert metrics["roc_auc_score"] == 1.0 and metrics["pr_auc_score"] == 1.0
    assert metrics["brier_loss"] == pytest.approx(np.mean([0.01, 0.04, 0.04, 0.01]))
    with pytest.raises(ConfigError, match="only 0 and 1"):
        classification_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ConfigError, match="equal-length"):
        classification_metrics([0, 1], [0.1])


def test_the_bootstrap_figures_are_sklearns_on_every_resample():
    """The one-pass weighted figures equal sklearn's with the resample's counts as weights,
    ties included, and without weights its plain figures."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from churnguard.evaluation import _resampled_metrics

    rng = np.random.default_rng(4)
    y = (rng.random(1_000) < 0.2).astype(float)
    p = np.round(np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.2, 1_000), 0, 1), 2)  # ties
    order = np.argsort(-p, kind="stable")
    tie = np.concatenate([[0], np.cumsum(np.diff(p[order]) != 0)])
    for w in (np.ones(1_000), np.bincount(rng.integers(0, 1_000, 1_000), minlength=1_000)):
        got = _resampled_metrics(y, p, order, tie, w.astype(float))
        assert got["roc_auc_score"] == pytest.approx(roc_auc_score(y, p, sample_weight=w))
        assert got["pr_auc_score"] == pytest.approx(average_precision_score(y, p, sample_weight=w))
        rows = np.repeat(np.arange(1_000), w.astype(int))  # the resample itself
        assert got["expected_calibration_error"] == pytest.approx(
            expected_calibration_error(y[rows], p[rows])
        )
    plain = _resampled_metrics(y, p, order, tie, np.ones(1_000))
    assert plain["lift_top_10pct"] == pytest.approx(lift_and_capture(y, p)["lift_top_10pct"])


def test_intervals_hold_the_figure_and_the_verdict_follows_the_paired_difference():
    rng = np.random.default_rng(2)
    y = (rng.random(5_000) < 0.1).astype(int)
    good = (y * 0.3 + rng.random(5_000)) / 1.3
    noise = rng.random(5_000)
    ev = bootstrap_intervals(y, {"model": good, "baseline": noise})
    low, high = ev["model"]["roc_auc_score"]
    assert low < classification_metrics(y, good)["roc_auc_score"] < high
    assert 0.45 < ev["baseline"]["roc_auc_score"][0] < 0.5 < ev["baseline"]["roc_auc_score"][1]
    assert verdict(ev["roc_auc_difference"]["model - baseline"]) == "better"
    swapped = bootstrap_intervals(y, {"model": noise, "baseline": good})
    assert verdict(swapped["roc_auc_difference"]["model - baseline"]) == "worse"
    same = bootstrap_intervals(y, {"model": good, "baseline": good + 1e-9 * noise})
    assert verdict(same["roc_auc_difference"]["model - baseline"]) == "level"


def test_the_best_list_is_a_range_of_sizes_within_five_percent_of_the_best():
    from churnguard.evaluation import plateau

    def curve(profits: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"list_size": range(len(profits)), "expected_profit": profits})

    assert plateau(curve([0, 10, 96, 100, 97, 94, 50])) == (2, 4)  # 94 < 95 % of 100
    assert plateau(curve([0, 50, 96, 100])) == (2, 3)  # the plateau reaches the end
    assert plateau(curve([0, 96, 100, 10, 99])) == (1, 2)  # contiguous around the best only
    assert plateau(curve([0.0, -5.0, -10.0])) == (0, 0)  # no list pays: contact nobody
    rng = np.random.default_rng(1)
    y = (rng.random(4_000) < 0.1).astype(int)
    p = np.clip(y * 0.2 + rng.random(4_000) * 0.8, 0, 1)
    profits = profit_curve(y, p, cost=20, success_rate=0.3, value=600)
    low, high = plateau(profits)
    best, _ = best_list_size(profits)
    assert low <= best <= high and high - low > 10  # one point is not where the best lies

"""Metrics on toy inputs with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from churnguard.errors import ConfigError
from churnguard.evaluation import (
    best_list_size,
    classification_metrics,
    expected_calibration_error,
    lift_and_capture,
    profit_curve,
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


def test_a_perfect_ranking_scores_one_and_bad_input_is_refused():
    metrics = classification_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert metrics["roc_auc_score"] == 1.0 and metrics["pr_auc_score"] == 1.0
    assert metrics["brier_loss"] == pytest.approx(np.mean([0.01, 0.04, 0.04, 0.01]))
    with pytest.raises(ConfigError, match="only 0 and 1"):
        classification_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ConfigError, match="equal-length"):
        classification_metrics([0, 1], [0.1])

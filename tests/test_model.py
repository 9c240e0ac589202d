"""The churn model on generated data: it learns, it is calibrated, and it refuses bad sets."""

from __future__ import annotations

import numpy as np
import pytest

from churnguard.errors import ConfigError
from churnguard.evaluation import classification_metrics
from churnguard.model import fit


def test_the_model_ranks_churners_and_beats_chance_and_the_baseline_is_reported(trained):
    result, valid, _ = trained
    model_metrics = classification_metrics(valid["churned"], result.validation_probability)
    baseline_metrics = classification_metrics(valid["churned"], result.baseline_probability)
    assert model_metrics["roc_auc_score"] > 0.65
    assert baseline_metrics["roc_auc_score"] > 0.55
    assert model_metrics["expected_calibration_error"] < 0.03
    assert set(result.calibration_log_loss) == {"sigmoid", "isotonic"}


def test_probabilities_are_repeatable_and_unknown_categories_are_missing_not_errors(trained):
    result, valid, _ = trained
    first = result.model.churn_probability(valid)
    assert np.array_equal(first, result.model.churn_probability(valid.copy()))
    assert ((first > 0) & (first < 1)).all()
    odd = valid.head(5).assign(plan="platinum")
    assert np.isfinite(result.model.churn_probability(odd)).all()
    with pytest.raises(ConfigError, match="lacks feature columns the model needs"):
        result.model.churn_probability(valid.drop(columns="mrr"))


def test_a_set_with_one_class_is_refused(trained):
    _, valid, _ = trained
    one_class = valid.assign(churned=0)
    with pytest.raises(ConfigError, match="the training set has only one class"):
        fit(one_class, valid, features=trained[0].model.features)

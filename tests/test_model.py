"""The churn model on generated data: it learns, it is calibrated, and it refuses bad sets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.special import expit, logit

import churnguard as cg
from churnguard.config import load_config
from churnguard.errors import ConfigError
from churnguard.evaluation import classification_metrics
from churnguard.model import BLEND_WEIGHTS, Calibrator, blend_weight, fit
from churnguard.registry import load_model
from churnguard.training import train
from conftest import labelled_snapshot


def labelled_frame(data):
    """Every customer's features of an entity table (labelled or not)."""
    dataset = cg.load_dataset(data, definition="labels")
    return cg.build_features(dataset, as_of=["2000-01-01"]).to_pandas()


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


def test_where_churn_is_additive_the_blend_takes_in_the_baseline_and_saves_it(tmp_path):
    # an entity table whose churn is a logistic function of its columns: the trees
    # approximate in steps what the baseline carries exactly
    data = labelled_snapshot(tmp_path / "table", customers=4_000, seed=1)
    cfg = load_config(
        None, {"data.path": data, "model.registry": tmp_path / "m", "churn.definition": "labels"}
    )
    run = train(cfg)
    result = run.result
    weight = result.model.calibrator.baseline_weight
    losses = result.blend_log_loss
    assert weight > 0 and losses[weight] < losses[0.0]  # the baseline helps here, clearly
    assert weight <= min(losses, key=losses.get)  # the least weight near the best
    assert set(result.blend_log_loss) == set(BLEND_WEIGHTS)
    metrics = run.evaluation.metrics
    assert metrics["model"]["roc_auc_score"] >= metrics["baseline"]["roc_auc_score"] - 0.01
    loaded, metadata = load_model(run.folder)
    assert loaded.baseline is not None and metadata["baseline_weight"] == weight
    frame = labelled_frame(data)
    np.testing.assert_array_equal(
        loaded.churn_probability(frame), result.model.churn_probability(frame)
    )
    booster_alone = dataclasses.replace(loaded.calibrator, baseline_weight=0.0)
    assert not np.allclose(
        booster_alone.predict(loaded.raw(frame)), loaded.churn_probability(frame)
    )


@pytest.mark.parametrize("weight", [1.0, -0.1, "nan", "0.5"])
def test_ablend_weight_outside_zero_to_one_is_refused(weight):
    saved = {"method": "sigmoid", "parameters": {"coef": [1.0], "intercept": [0.0]}}
    with pytest.raises(ValueError):
        Calibrator.from_dict({**saved, "baseline_weight": weight})
    assert Calibrator.from_dict(saved).baseline_weight == 0.0  # saved before blends: none


def test_the_blend_takes_the_baseline_in_only_where_it_clearly_helps():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.05, 0.6, 4_000)
    y = (rng.uniform(size=truth.size) < truth).astype(int)
    identity = Calibrator("sigmoid", {"coef": [1.0], "intercept": [0.0]})
    noisy = expit(logit(truth) + rng.normal(0, 1.0, truth.size))
    helped, losses = blend_weight(identity, noisy, truth, y)  # the baseline is the truth
    assert helped >= 0.5 and losses[helped] < losses[0.0]
    unrelated = rng.uniform(0.05, 0.6, truth.size)
    assert blend_weight(identity, truth, unrelated, y)[0] == 0.0  # it would only add noise

"""Training from a config end to end: other people's data shapes, tuning, purge, backtests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import is_classifier
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

import churnguard as cg
from churnguard import training
from churnguard.cli import app
from churnguard.errors import ConfigError, LeakageError, ModelRegistryError
from churnguard.training import evaluate, train
from conftest import labelled_snapshot, retailer_export


def _config(data, registry, **overrides):
    return cg.load_config(None, {"data.path": data, "model.registry": registry, **overrides})


def _monthly(data, registry, **overrides):
    """Subscription churn on the generated data, snapshots every 28 days, validation last."""
    return _config(
        data,
        registry,
        **{
            "churn.definition": "subscription",
            "train.start": "2024-04-01",
            "train.end": "2024-12-20",
            "train.every_days": 28,
            **overrides,
        },
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated")
    cg.generate(folder, customers=3_000, days=420, seed=21)
    return folder


@pytest.fixture(scope="module")
def generated_run(generated, tmp_path_factory):
    """One model trained out of time on generated data: (TrainingRun, config)."""
    cfg = _monthly(generated, tmp_path_factory.mktemp("registry"))
    return train(cfg), cfg


def test_a_purchase_log_alone_trains_under_inactivity_churn(tmp_path):
    data = retailer_export(tmp_path / "retailer")
    cfg = _config(
        data,
        tmp_path / "models",
        **{
            "churn.definition": "inactivity",
            "churn.horizon_days": 60,
            "train.start": "2024-03-01",
            "train.end": "2024-11-01",
        },
    )
    run = train(cfg)
    names = [s.name for s in run.result.model.features]
    assert "purchase_value_mean_30d" in names and "store" in names
    assert not any(n.startswith("subscription") or n == "mrr" for n in names)
    assert run.split.validation[-1].date().isoformat() == "2024-10-27"
    assert run.split.train[-1].date().isoformat() == "2024-08-28"  # purged: 2024-08-28 + 60d
    model = run.evaluation.metrics["model"]
    assert model["roc_auc_score"] > 0.7
    assert "true_hazard" not in run.evaluation.metrics  # no truth table in a real export
    assert (run.folder / "report.html").exists()


def test_labels_mode_trains_on_labelled_customers_with_a_stratified_hold_out(tmp_path):
    data = labelled_snapshot(tmp_path / "snapshot")
    labelled = pd.read_csv(data / "labels.csv")
    run = train(_config(data, tmp_path / "models", **{"churn.definition": "labels"}))
    assert run.split is None
    assert run.train_rows + run.validation_rows == len(labelled)
    assert run.validation_rows == pytest.approx(0.2 * len(labelled), abs=1)
    assert run.evaluation.metrics["model"]["churn_rate"] == pytest.approx(
        labelled["churned"].mean(), abs=0.01
    )
    assert run.evaluation.metrics["model"]["roc_auc_score"] > 0.7
    top = set(run.evaluation.importance["feature"].head(4))
    assert top == {"contract", "monthly_charges", "support_calls", "late_payments"}
    meta = json.loads((run.folder / "metadata.json").read_text())
    assert meta["validation_snapshots"] == [] and meta["rows"]["validation"] == run.validation_rows


def test_the_search_never_sees_the_validation_rows(generated, tmp_path, monkeypatch):
    seen = []
    real_tune = training.tune

    def spy(inner_fit, inner_valid, **kwargs):
        seen.extend([inner_fit, inner_valid])
        return real_tune(inner_fit, inner_valid, **kwargs)

    monkeypatch.setattr(training, "tune", spy)
    cfg = _monthly(generated, tmp_path, **{"train.tune_trials": 3})
    run = train(cfg, tune_params=True)
    validation = pd.Timestamp(run.split.validation[0])
    last_train = pd.Timestamp(run.split.train[-1])
    assert all((frame["as_of"] < validation).all() for frame in seen)
    assert (seen[1]["as_of"] == last_train).all()  # inner validation: the last training date
    assert seen[0]["as_of"].max() <= last_train - pd.Timedelta(days=30)  # purged like the outer
    assert run.tuning.trials == 3 and run.tuning.best_log_loss <= run.tuning.default_log_loss
    assert json.loads((run.folder / "metadata.json").read_text())["tuning"]["trials"] == 3


def test_a_purge_shorter_than_the_horizon_is_flagged_in_the_report(generated, tmp_path):
    cfg = _monthly(generated, tmp_path, **{"train.purge_days": 0})
    run = train(cfg)
    assert run.split.train[-1].date().isoformat() == "2024-11-11"  # 28 days before validation
    assert len(run.warnings) == 1 and "shorter than the 30-day horizon" in run.warnings[0]
    assert "may be optimistic" in run.report.read_text()


def test_the_saved_report_has_every_chart_and_the_true_hazard_ceiling(generated_run):
    run, _ = generated_run
    html = run.report.read_text()
    for heading in (
        "ROC",
        "Precision and recall",
        "Calibration",
        "Gains and lift",
        "Profit curve",
        "Baseline comparison",
        "Feature importance",
    ):
        assert f"<h2>{heading}</h2><img" in html
    assert "ROC-AUC of the true hazard (ceiling)" in html
    assert 'class="warn"' not in html  # the default purge needs no warning
    manifest = json.loads((run.folder / "manifest.json").read_text())["files"]
    assert "report.html" in manifest


def test_a_backtest_on_a_later_date_scores_what_happened(generated_run, generated, tmp_path):
    run, _ = generated_run
    backtest = evaluate(run.folder, generated, as_of="2025-01-17", out=tmp_path / "bt")
    metrics = backtest.evaluation.metrics
    assert backtest.rows == backtest.evaluation.y_true.size > 1000
    assert metrics["model"]["roc_auc_score"] > 0.6
    assert 0.5 < metrics["true_hazard"]["roc_auc_score"] < 1
    saved = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    assert saved["model"]["roc_auc_score"] == metrics["model"]["roc_auc_score"]
    assert (tmp_path / "bt" / "report.html").exists()
    with pytest.raises(LeakageError, match="label window runs past the end of the data"):
        evaluate(run.folder, generated, as_of="2025-02-20")


def test_a_model_is_refused_on_data_without_its_features(generated_run, generated, tmp_path):
    run, _ = generated_run
    events = pd.read_parquet(generated / "events.parquet")
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    for table in ("customers", "subscriptions"):
        pd.read_parquet(generated / f"{table}.parquet").to_parquet(stripped / f"{table}.parquet")
    events[events["event_type"] != "nps"].to_parquet(stripped / "events.parquet")
    with pytest.raises(ModelRegistryError, match="lacks .* feature.*last_nps_score"):
        evaluate(run.folder, stripped, as_of="2025-01-17")


def test_events_after_a_snapshot_never_change_its_training_rows(generated, tmp_path):
    """Rewriting everything at or after a snapshot leaves that snapshot's feature rows as they
    were, labels aside (they are meant to look ahead)."""
    churn = cg.config.ChurnConfig(definition="subscription")
    dates = ["2024-06-01", "2024-08-01", "2024-10-01"]
    original = cg.load_dataset(generated)
    plan = cg.plan_features(original)  # the schema a model trained on this data would pin
    before = cg.build_training_set(original, as_of=dates, churn=churn, plan=plan)
    events = pd.read_parquet(generated / "events.parquet")
    cut = pd.Timestamp("2024-08-01", tz=events["timestamp"].dt.tz)
    rng = np.random.default_rng(0)
    later = events[events["timestamp"] >= cut].sample(frac=0.5, random_state=1)
    later = later.assign(event_type=rng.choice(["login", "complaint"], len(later)))
    changed = pd.concat([events[events["timestamp"] < cut], later])
    folder = tmp_path / "changed"
    folder.mkdir()
    for table in ("customers", "subscriptions"):
        pd.read_parquet(generated / f"{table}.parquet").to_parquet(folder / f"{table}.parquet")
    changed.to_parquet(folder / "events.parquet")
    after = cg.build_training_set(cg.load_dataset(folder), as_of=dates, churn=churn, plan=plan)
    keep = before["as_of"] <= pd.Timestamp("2024-08-01")
    pd.testing.assert_frame_equal(
        before[keep].drop(columns="churned").reset_index(drop=True),
        after[after["as_of"] <= pd.Timestamp("2024-08-01")]
        .drop(columns="churned")
        .reset_index(drop=True),
    )


def test_attribute_names_with_spaces_and_quotes_train_and_load(tmp_path):
    """LightGBM writes a space in a feature name as ``_``; the bundle still loads and scores."""
    data = labelled_snapshot(tmp_path / "snapshot", customers=800)
    customers = pd.read_csv(data / "customers.csv")
    renamed = {"payment_method": "payment method", "monthly_charges": "monthly charges (€)"}
    customers.rename(columns=renamed).to_csv(data / "customers.csv", index=False)
    run = train(_config(data, tmp_path / "models", **{"churn.definition": "labels"}))
    model, _ = cg.load_model(run.folder)
    assert {"payment method", "monthly charges (€)"} <= {s.name for s in model.features}


def test_a_loaded_model_is_a_scikit_learn_classifier_giving_its_reported_figure(generated_run):
    """Load the bundle, call it on features: scikit-learn's metric on the validation rows
    equals the ROC-AUC the model's metadata reports."""
    run, cfg = generated_run
    model, metadata = cg.load_model(run.folder)
    assert is_classifier(model) and list(model.classes_) == [0, 1]
    dataset = cg.load_dataset(cfg.data, definition=cfg.churn.definition)
    _, valid, _ = cg.training_frames(
        dataset, train=cfg.train, churn=cfg.churn, features=cfg.features
    )
    proba = model.predict_proba(valid)
    assert proba.shape == (len(valid), 2) and np.allclose(proba.sum(axis=1), 1.0)
    reported = metadata["metrics"]["model"]["roc_auc_score"]
    assert roc_auc_score(valid["churned"], proba[:, 1]) == pytest.approx(reported, abs=1e-12)
    assert list(model.feature_names_in_) == [s.name for s in model.features]
    np.testing.assert_array_equal(model.predict(valid), (proba[:, 1] > 0.5).astype(int))
    # an array in the order of feature_names_in_ is the same customers
    array = valid[list(model.feature_names_in_)].to_numpy()
    np.testing.assert_allclose(model.predict_proba(array), proba)
    with pytest.raises(ConfigError, match="feature columns"):
        model.predict_proba(np.zeros((2, 3)))


def test_the_metadata_gives_intervals_and_a_verdict_against_the_baseline(generated_run):
    run, _ = generated_run
    metrics = json.loads((run.folder / "metadata.json").read_text())["metrics"]
    for who in ("model", "baseline"):
        for metric in ("roc_auc_score", "pr_auc_score", "lift_top_10pct"):
            low, high = metrics["intervals"][who][metric]
            assert low <= metrics[who][metric] <= high, (who, metric)
    low, high = metrics["intervals"]["roc_auc_difference"]["model - baseline"]
    expected = "better" if low > 0 else "worse" if high < 0 else "level"
    assert metrics["against_baseline"] == expected
    report = (run.folder / "report.html").read_text()
    assert f"{expected}: " in report


def test_an_entity_table_with_a_monthly_charge_gets_a_list_without_an_as_of(tmp_path):
    data = labelled_snapshot(tmp_path / "snapshot", customers=800)
    train(_config(data, tmp_path / "models", **{"churn.definition": "labels"}))
    config = tmp_path / "telecom.toml"
    config.write_text(
        f'[data]\npath = "{data}"\n[model]\nregistry = "{tmp_path / "models"}"\n'
        f'[value]\ncolumn = "monthly_charges"\nperiod = "month"\n'
        f'[score]\nout = "{tmp_path / "scores"}/{{as_of}}"\n'
        '[[interventions]]\nname = "retention call"\nanswers = ["*"]\ncost = 10.0\n'
        "success_rate = 0.15\n"
    )
    result = CliRunner().invoke(app, ["score", "-c", str(config), "-q"])
    assert result.exit_code == 0, result.output
    (night,) = (p for p in (tmp_path / "scores").iterdir() if p.is_dir())
    listed = pd.read_csv(night / "interventions.csv")
    assert len(listed) > 0
    manifest = json.loads((night / "manifest.json").read_text())
    months = pd.read_parquet(night / "scores.parquet").set_index("customer_id")["lifetime_months"]
    charges = pd.read_csv(data / "customers.csv").set_index("customer_id")["monthly_charges"]
    ids = listed["customer_id"]
    expected = (charges.loc[ids] * months.loc[ids]).to_numpy()
    rounding = charges.loc[ids].to_numpy() * 0.005 + 0.005  # months and value to 2 decimals
    assert (np.abs(listed["customer_value"].to_numpy() - expected) <= rounding).all()
    assert "monthly_charges per month" in manifest["value"]["formula"]
    dated = config.read_text().replace('column = "monthly_charges"', 'column = "contract"')
    config.write_text(dated)
    refused = CliRunner().invoke(app, ["score", "-c", str(config), "-q"])
    assert refused.exit_code == 2 and "value.column 'contract' is not a numeric feature" in (
        refused.output
    )


def test_a_dated_model_still_needs_an_as_of(generated, tmp_path):
    cfg = _monthly(generated, tmp_path / "models")
    train(cfg)
    with pytest.raises(ConfigError, match="--as-of is needed: the model predicts subscription"):
        cg.score(cfg, out=tmp_path / "out")

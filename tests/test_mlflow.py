"""MLflow, optional: train --mlflow logs the run and registers a pyfunc that scores a features
DataFrame exactly as churnguard does, from code and the bundle's text files (no pickle)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import churnguard as cg
from churnguard.cli import app

runner = CliRunner()


def _config(tmp_path, **model: str) -> str:
    data = tmp_path / "data"
    if not data.exists():
        cg.generate(data, customers=1_500, days=400, seed=5)
    extra = "".join(f'{k} = "{v}"\n' for k, v in model.items())
    config = tmp_path / "c.toml"
    config.write_text(
        f'[data]\npath = "{data}"\n[churn]\ndefinition = "subscription"\n'
        '[train]\nstart = "2024-04-01"\nend = "latest"\nevery_days = 30\n'
        f'[model]\nregistry = "{tmp_path / "models"}"\n{extra}'
    )
    return str(config)


def test_without_mlflow_installed_train_mlflow_stops_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    result = runner.invoke(app, ["train", "-c", _config(tmp_path), "--mlflow", "-q"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: [model] mlflow (or train --mlflow) needs MLflow: pip install 'churnguard[mlflow]'"
    )
    assert not (tmp_path / "models").exists()  # refused before any training


def test_the_registered_pyfunc_scores_as_churnguard_does(tmp_path, monkeypatch):
    mlflow = pytest.importorskip(
        "mlflow", reason="MLflow is not installed (pip install 'churnguard[mlflow]')"
    )
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local file store, no server
    store = f"file://{tmp_path / 'mlruns'}"
    config = _config(tmp_path, tracking_uri=store)
    result = runner.invoke(app, ["train", "-c", config, "--mlflow", "--log-format", "json"])
    assert result.exit_code == 0, result.output
    assert "models:/churn/1" in result.stdout
    (folder,) = (tmp_path / "models" / "churn").glob("2*")
    model, metadata = cg.load_model(folder)

    mlflow.set_tracking_uri(store)
    pyfunc = mlflow.pyfunc.load_model("models:/churn/1")
    validation = metadata["validation_snapshots"]
    features = cg.build_features(cg.load_dataset(tmp_path / "data"), as_of=validation).to_pandas()
    np.testing.assert_array_equal(
        np.asarray(pyfunc.predict(features)), model.churn_probability(features)
    )
    client = mlflow.MlflowClient()
    run = client.get_run(client.get_model_version("churn", "1").run_id)
    assert run.data.metrics["model.roc_auc_score"] == pytest.approx(
        metadata["metrics"]["model"]["roc_auc_score"]
    )
    assert run.data.params["churn.definition"] == "subscription"
    assert run.data.tags["churnguard.model_version"] == folder.name
    assert "report.html" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert not [p for p in (tmp_path / "mlruns").rglob("*") if p.suffix in (".pkl", ".pickle")]

"""The registry: a model saved in one run scores the same in another; tampering is refused."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from churnguard.errors import ModelRegistryError
from churnguard.registry import list_versions, load_model, resolve, save_model


def test_a_saved_model_loads_and_scores_the_same_rows_identically(tmp_path, trained):
    result, valid, split = trained
    folder = save_model(
        result,
        registry=tmp_path,
        name="churn",
        metadata={"snapshots": [d.isoformat() for d in split.train]},
    )
    model, metadata = load_model(resolve(tmp_path, "churn"))
    np.testing.assert_array_equal(model.predict_proba(valid), result.model.predict_proba(valid))
    assert metadata["version"] == folder.name and metadata["calibration"] in {
        "sigmoid",
        "isotonic",
    }
    assert {f["name"] for f in metadata["features"]} >= {"login_count_30d", "plan"}
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    assert sorted(manifest) == [
        "baseline.joblib",
        "booster.txt",
        "calibrator.joblib",
        "metadata.json",
    ]


def test_latest_follows_the_newest_version(tmp_path, trained):
    result = trained[0]
    first = save_model(
        result,
        registry=tmp_path,
        name="m",
        metadata={},
        now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    second = save_model(
        result,
        registry=tmp_path,
        name="m",
        metadata={},
        now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    assert second.name == f"{first.name}-2"
    assert resolve(tmp_path, "m") == second
    assert list_versions(tmp_path, "m") == [first.name, second.name]


def test_a_tampered_or_missing_model_is_refused(tmp_path, trained):
    folder = save_model(trained[0], registry=tmp_path, name="churn", metadata={})
    booster = folder / "booster.txt"
    booster.write_text(booster.read_text().replace("learning_rate", "learning_rate ", 1))
    with pytest.raises(ModelRegistryError, match="sha256 differs from the one recorded"):
        load_model(folder)
    with pytest.raises(ModelRegistryError, match="no model saved yet"):
        resolve(tmp_path, "other")
    with pytest.raises(ModelRegistryError, match="no such model version"):
        resolve(tmp_path, "churn", "20200101T000000Z")

"""Promotion: a new model serves only when it is better, on the same rows, beyond the interval;
nightly scoring uses the champion, a pin, or latest, and refuses a damaged champion."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import churnguard as cg
from churnguard.cli import app
from churnguard.config import EvaluationConfig, load_config
from churnguard.evaluation import Evaluation
from churnguard.promotion import Champion, decide
from churnguard.registry import champion

runner = CliRunner()
AS_OF = "2025-01-20"
TRAIN = {
    "churn.definition": "subscription",
    "train.start": "2024-04-01",
    "train.end": "2024-12-20",
    "train.every_days": 28,
}


def _evaluation(model: np.ndarray, baseline: np.ndarray, champ: np.ndarray, y: np.ndarray):
    return Evaluation(
        y_true=y,
        probability=model,
        baseline_probability=baseline,
        champion_probability=champ,
        campaign=EvaluationConfig(),
    )


@pytest.fixture(scope="module")
def scores():
    """Outcomes, an informative score and two uninformative ones on 4,000 rows."""
    rng = np.random.default_rng(2)
    risk = rng.uniform(size=4_000)
    y = (rng.uniform(size=risk.size) < risk).astype(int)
    return y, risk, rng.uniform(size=risk.size), rng.uniform(size=risk.size)


def test_a_model_worse_than_the_baseline_is_not_promoted(scores):
    y, good, noise, other = scores
    ev = _evaluation(noise, good, other, y)
    decision = decide(ev, Champion("V1", other), auto=True)
    assert decision.status == "challenger" and not decision.promote
    assert "against the baseline, worse" in decision.reason


def test_a_model_better_than_champion_and_baseline_is_promoted_only_when_auto(scores):
    y, good, noise, other = scores
    ev = _evaluation(good, noise, other, y)
    decision = decide(ev, Champion("V1", other), auto=True)
    assert decision.promote and "against champion V1, better" in decision.reason
    held = decide(ev, Champion("V1", other), auto=False)
    assert held.status == "challenger" and "auto_promote is off" in held.reason
    assert decide(ev, Champion(None), auto=False).status == "first"
    apart = decide(ev, Champion("V1", note="it was trained for another [churn]"), auto=True)
    assert apart.status == "challenger" and "not compared with champion V1" in apart.reason


def test_level_with_the_champion_is_not_enough(scores):
    y, good, noise, _ = scores
    ev = _evaluation(good, noise, good, y)  # a retrain that changed nothing
    decision = decide(ev, Champion("V1", good), auto=True)
    assert decision.status == "challenger" and "against champion V1, level" in decision.reason


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Generated data and a first model: (data folder, registry folder)."""
    root = tmp_path_factory.mktemp("promotion")
    cg.generate(root / "data", customers=2_500, days=420, seed=31)
    cg.train(
        load_config(None, {**TRAIN, "data.path": root / "data", "model.registry": root / "m"})
    )
    return root / "data", root / "m"


def _served(config, tmp_path, name: str) -> tuple[int, str, str]:
    out = tmp_path / name
    result = runner.invoke(
        app, ["score", "-c", str(config), "--as-of", AS_OF, "--out", str(out), "-q"]
    )
    version = (
        json.loads((out / "manifest.json").read_text())["model"]["version"]
        if (result.exit_code == 0)
        else ""
    )
    return result.exit_code, version, result.output


def test_nightly_scoring_serves_the_champion_until_a_better_model_is_promoted(registry, tmp_path):
    data, original = registry
    models = tmp_path / "models"
    shutil.copytree(original, models)
    first = champion(models, "churn")
    retrained = cg.train(
        load_config(
            None,
            {**TRAIN, "data.path": data, "model.registry": models, "model.auto_promote": True},
        )
    )
    # the same data and seed give the same model: level, so it waits as a challenger
    assert retrained.promotion.status == "challenger", retrained.promotion.reason
    assert retrained.evaluation.against["champion"] == "level"
    new = retrained.folder.name
    assert champion(models, "churn") == first and new != first
    meta = json.loads((retrained.folder / "metadata.json").read_text())
    assert meta["promotion"]["champion_before"] == first
    assert meta["metrics"]["against_champion"] == "level"

    config = tmp_path / "nightly.toml"
    config.write_text(f'[data]\npath = "{data}"\n[model]\nregistry = "{models}"\n')
    assert _served(config, tmp_path, "night1")[:2] == (0, first)
    listed = runner.invoke(app, ["models", "list", "-c", str(config)])
    assert "champion" in listed.output and "challenger" in listed.output

    promoted = runner.invoke(
        app, ["models", "promote", new, "-c", str(config), "--reason", "new season"]
    )
    assert promoted.exit_code == 0 and f"champion: {new}" in promoted.output
    assert _served(config, tmp_path, "night2")[:2] == (0, new)

    pinned = tmp_path / "pinned.toml"
    pinned.write_text(config.read_text() + f'version = "{first}"\n')
    assert _served(pinned, tmp_path, "night3")[:2] == (0, first)

    back = runner.invoke(app, ["models", "rollback", "-c", str(config)])
    assert back.exit_code == 0 and f"champion: {first}" in back.output
    history = runner.invoke(app, ["models", "history", "-c", str(config)])
    assert all(word in history.output for word in ("first", "promoted", "new season", "rollback"))

    (models / "churn" / first / "booster.txt").write_text("tree\n")
    code, _, output = _served(config, tmp_path, "night4")
    assert code == 3 and "booster.txt: sha256 differs" in output
    assert not (tmp_path / "night4").exists()

"""The registry: a model saved in one run scores the same in another; tampering is refused."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnguard.cli import app
from churnguard.config import ModelConfig
from churnguard.errors import ModelRegistryError
from churnguard.io import sha256_file
from churnguard.registry import (
    SIGNATURE,
    SIGNING_KEY,
    champion,
    find_model,
    list_versions,
    load_baseline,
    load_model,
    promote,
    promotions,
    resolve,
    rollback,
    save_model,
)

runner = CliRunner()


def test_a_saved_model_loads_and_scores_the_same_rows_identically(tmp_path, trained):
    result, valid, split = trained
    folder = save_model(
        result,
        registry=tmp_path,
        name="churn",
        metadata={"snapshots": [d.isoformat() for d in split.train]},
    )
    model, metadata = load_model(resolve(tmp_path, "churn"))
    np.testing.assert_array_equal(
        model.churn_probability(valid), result.model.churn_probability(valid)
    )
    assert metadata["version"] == folder.name and metadata["calibration"] in {
        "sigmoid",
        "isotonic",
    }
    assert {f["name"] for f in metadata["features"]} >= {"login_count_30d", "plan"}
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    assert sorted(manifest) == [
        "baseline.json",
        "booster.txt",
        "calibrator.json",
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


def _rehash(folder: Path) -> None:
    """Rewrite the manifest to match the files: what a tamperer without the key can do."""
    files = sorted(p.name for p in folder.iterdir() if p.name not in ("manifest.json", SIGNATURE))
    manifest = {"files": {f: sha256_file(folder / f) for f in files}}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _models_show(registry: Path, tmp_path: Path, env: dict[str, str]) -> tuple[int, str]:
    config = tmp_path / "registry.toml"
    config.write_text(f'[model]\nregistry = "{registry}"\nname = "churn"\n')
    result = runner.invoke(app, ["models", "show", "-q", "--config", str(config)], env=env)
    return result.exit_code, result.output.strip()


def test_loading_a_bundle_never_unpickles(tmp_path, trained, monkeypatch):
    folder = save_model(trained[0], registry=tmp_path, name="churn", metadata={})

    def refuse(*args, **kwargs):
        raise AssertionError("a bundle was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    model, _ = load_model(folder)
    baseline = load_baseline(folder)
    valid = trained[1]
    assert 0.0 < model.churn_probability(valid).mean() < 1.0
    np.testing.assert_allclose(
        baseline.churn_probability(valid), trained[0].baseline.churn_probability(valid)
    )
    for path in folder.iterdir():  # every file is text a person can read
        path.read_text("utf-8")


def test_a_bundle_with_pickled_files_is_refused_even_when_rehashed(tmp_path, trained):
    folder = save_model(trained[0], registry=tmp_path, name="churn", metadata={})
    (folder / "calibrator.joblib").write_bytes(pickle.dumps({"x": 1}))
    _rehash(folder)
    with pytest.raises(ModelRegistryError, match="pickled files .*calibrator.joblib.* never"):
        load_model(folder)


def test_a_signed_bundle_loads_and_a_rehashed_tampered_one_is_refused(
    tmp_path, trained, monkeypatch
):
    monkeypatch.setenv(SIGNING_KEY, "s3cret")
    folder = save_model(trained[0], registry=tmp_path, name="churn", metadata={})
    assert (folder / SIGNATURE).is_file()
    model, _ = load_model(folder)
    env = {SIGNING_KEY: "s3cret"}
    assert _models_show(tmp_path, tmp_path, env)[0] == 0

    calibrator = json.loads((folder / "calibrator.json").read_text())
    first = next(iter(calibrator["parameters"]))
    calibrator["parameters"][first][0] += 3.0
    (folder / "calibrator.json").write_text(json.dumps(calibrator))
    _rehash(folder)
    code, output = _models_show(tmp_path, tmp_path, env)
    assert code == 3
    assert output.endswith(
        "manifest.sig: does not match manifest.json under CHURNGUARD_SIGNING_KEY: the bundle "
        "was changed or signed with another key; refusing to load it"
    )
    assert _models_show(tmp_path, tmp_path, {SIGNING_KEY: "another"})[0] == 3

    # Without a key the hashes only catch accidents: a rewritten manifest is believed.
    monkeypatch.delenv(SIGNING_KEY)
    tampered, _ = load_model(folder)
    assert tampered.calibrator.parameters != model.calibrator.parameters
    booster = folder / "booster.txt"
    booster.write_text(booster.read_text().replace("shrinkage=", "shrinkage=1", 1))
    with pytest.raises(ModelRegistryError, match="sha256 differs"):
        load_model(folder)


def test_an_unsigned_bundle_is_refused_when_a_key_is_set(tmp_path, trained):
    save_model(trained[0], registry=tmp_path, name="churn", metadata={})
    code, output = _models_show(tmp_path, tmp_path, {SIGNING_KEY: "s3cret"})
    assert code == 3
    assert "no manifest.sig, and CHURNGUARD_SIGNING_KEY is set" in output


def _edit_booster(text: str, case: str) -> str:
    lines = text.splitlines(keepends=True)
    first_tree = next(i for i, line in enumerate(lines) if line.startswith("Tree=0"))
    leaf = next(i for i, line in enumerate(lines) if line.startswith("leaf_value="))
    split = next(i for i, line in enumerate(lines) if line.startswith("split_feature="))
    child = next(i for i, line in enumerate(lines) if line.startswith("left_child="))
    edits = {
        "garbage": lambda: ["hello\n"],
        "a leaf value too many": lambda: _with(lines, leaf, lines[leaf].rstrip() + " 1.5\n"),
        "a split on a feature the model lacks": lambda: _with(
            lines, split, "split_feature=" + " ".join(["999"] * len(lines[split].split())) + "\n"
        ),
        "a child outside the tree": lambda: _with(
            lines, child, "left_child=" + " ".join(["9999"] * len(lines[child].split())) + "\n"
        ),
        "a tree cut off": lambda: lines[: first_tree + 3],
        "a tree size changed": lambda: [
            line.replace("tree_sizes=", "tree_sizes=1", 1) for line in lines
        ],
    }
    return "".join(edits[case]())


def _with(lines: list[str], index: int, line: str) -> list[str]:
    return [*lines[:index], line, *lines[index + 1 :]]


@pytest.mark.parametrize(
    "case",
    [
        "garbage",
        "a leaf value too many",
        "a split on a feature the model lacks",
        "a child outside the tree",
        "a tree cut off",
        "a tree size changed",
    ],
)
def test_a_damaged_booster_is_one_line_and_exit_3_never_an_abort(tmp_path, trained, case):
    folder = save_model(trained[0], registry=tmp_path, name="churn", metadata={})
    booster = folder / "booster.txt"
    booster.write_text(_edit_booster(booster.read_text(), case))
    _rehash(folder)
    with pytest.raises(ModelRegistryError, match="booster.txt: damaged, cannot be read"):
        load_model(folder)


_FUZZ = """
import random, sys
import numpy as np
from churnguard.registry import read_booster
text, names = open(sys.argv[1]).read(), sys.argv[2].split(",")
rng = random.Random(int(sys.argv[3]))
rows = np.random.default_rng(0).normal(size=(50, len(names)))
rows[:, 1] = np.arange(50) % 5  # category codes, one never seen in training
loaded = refused = 0
for _ in range(int(sys.argv[4])):
    lines = text.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    tokens = lines[i].split(" ")
    j = rng.randrange(len(tokens))
    tokens[j] = rng.choice(["-1", "0", "7", "99999", "1e308", "nan", "x", "", "=", tokens[j] * 2])
    lines[i] = " ".join(tokens)
    if rng.random() < 0.2:
        del lines[rng.randrange(len(lines))]
    if rng.random() < 0.2:
        k = rng.randrange(len(lines))
        lines.insert(rng.randrange(len(lines)), lines[k])
    try:
        booster = read_booster("".join(lines), names)
    except Exception:
        refused += 1
        continue
    booster.predict(rows)
    booster.predict(rows, pred_contrib=True)
    loaded += 1
print(loaded, refused)
"""


def test_random_damage_to_a_booster_never_crashes_the_process(tmp_path):
    rng = np.random.default_rng(2)
    names = ["a", "b", "c"]
    frame = pd.DataFrame(rng.normal(size=(3000, 3)), columns=names)
    frame["b"] = pd.Categorical(rng.choice(list("wxyz"), 3000))
    label = ((frame["a"] > 0) ^ (frame["b"] == "x")).astype(int)
    params = {"objective": "binary", "verbose": -1, "max_cat_to_onehot": 2, "num_leaves": 7}
    params |= {"deterministic": True, "num_threads": 1, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(frame, label), 10)
    source = tmp_path / "booster.txt"
    booster.save_model(source)
    script = tmp_path / "fuzz.py"
    script.write_text(_FUZZ)
    done = subprocess.run(
        [sys.executable, str(script), str(source), ",".join(names), "5", "400"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded, refused = map(int, done.stdout.split())
    assert loaded + refused == 400 and refused > 100


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


#: What is done to a saved bundle, and the words of the one-line refusal.
TAMPERING = {
    "booster changed": (lambda f: _append(f / "booster.txt", "\n"), "booster.txt: sha256 differs"),
    "calibrator changed": (
        lambda f: (f / "calibrator.json").write_text('{"method": "sigmoid"}'),
        "calibrator.json: sha256 differs",
    ),
    "baseline changed": (
        lambda f: _append(f / "baseline.json", " "),
        "baseline.json: sha256 differs",
    ),
    "metadata changed": (
        lambda f: (f / "metadata.json").write_text(
            (f / "metadata.json").read_text().replace('"churn"', '"other"', 1)
        ),
        "metadata.json: sha256 differs",
    ),
    "manifest changed": (
        lambda f: (f / "manifest.json").write_text('{"files": {"booster.txt": "0"}}'),
        "do not match the manifest",
    ),
    "manifest unreadable": (
        lambda f: (f / "manifest.json").write_text("{not json"),
        "missing or unreadable manifest.json",
    ),
    "extra file": (lambda f: (f / "notes.txt").write_text("hi"), "do not match the manifest"),
    "missing file": (lambda f: (f / "baseline.json").unlink(), "do not match the manifest"),
    "dangling champion": (
        lambda f: (f.parent / "champion").write_text("20000101T000000Z"),
        "no such model version (named by",
    ),
    "champion naming a path": (
        lambda f: (f.parent / "champion").write_text("../../etc"),
        "expected one version name",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_every_kind_of_tampering_is_refused_in_one_line_with_exit_3(tmp_path, trained, case):
    registry = tmp_path / "registry"
    folder = save_model(trained[0], registry=registry, name="churn", metadata={})
    damage, words = TAMPERING[case]
    damage(folder)
    with pytest.raises(ModelRegistryError, match=re.escape(words)):
        load_model(resolve(registry, "churn", "champion"))
    if "champion" not in case:  # the bundle itself is damaged, not the pointer to it
        with pytest.raises(ModelRegistryError, match=re.escape(words)):
            load_baseline(folder)
    code, output = _models_show(registry, tmp_path, env={})
    assert code == 3 and words in output and len(output.splitlines()) == 1


def test_the_first_model_serves_later_ones_wait_and_rollback_walks_back(tmp_path, trained):
    times = [dt.datetime(2026, 1, d, tzinfo=dt.UTC) for d in (1, 2, 3)]
    first, second, third = (
        save_model(trained[0], registry=tmp_path, name="churn", metadata={}, now=t).name
        for t in times
    )
    settings = ModelConfig(registry=tmp_path)
    assert champion(tmp_path, "churn") == first
    assert find_model(None, settings).name == first
    assert find_model(None, replace(settings, version="latest")).name == third
    assert find_model(None, replace(settings, version=second)).name == second  # a pin
    assert promote(tmp_path, "churn", third, reason="better on March").previous == first
    assert promote(tmp_path, "churn", third, reason="again") is None  # already serving
    promote(tmp_path, "churn", second, reason="a hunch")
    assert rollback(tmp_path, "churn", reason="bad night").version == third
    assert rollback(tmp_path, "churn", reason="worse").version == first
    with pytest.raises(ModelRegistryError, match="no earlier champion"):
        rollback(tmp_path, "churn", reason="")
    log = promotions(tmp_path, "churn")
    assert [(p.action, p.version, p.previous) for p in log] == [
        ("first", first, None),
        ("promoted", third, first),
        ("promoted", second, third),
        ("rollback", third, second),
        ("rollback", first, third),
    ]
    assert log[1].reason == "better on March" and "@" in log[1].by


def test_a_damaged_version_is_never_promoted_and_a_damaged_champion_exits_3(tmp_path, trained):
    first = save_model(trained[0], registry=tmp_path, name="churn", metadata={})
    second = save_model(trained[0], registry=tmp_path, name="churn", metadata={})
    (second / "booster.txt").write_text("tree\n")
    config = tmp_path / "c.toml"
    config.write_text(f'[model]\nregistry = "{tmp_path}"\n')
    result = runner.invoke(app, ["models", "promote", second.name, "-c", str(config)])
    assert result.exit_code == 3 and "sha256 differs" in result.output
    assert champion(tmp_path, "churn") == first.name
    (first / "calibrator.json").write_text("{}")
    shown = runner.invoke(app, ["models", "show", "-c", str(config)])
    assert shown.exit_code == 3 and f"{first.name}/calibrator.json: sha256" in shown.output
    listed = runner.invoke(app, ["models", "list", "-c", str(config)])
    assert listed.exit_code == 0 and listed.output.count("damaged") == 2
    assert "champion" in listed.output and "challenger" in listed.output
    (tmp_path / "churn" / "promotions.jsonl").write_text("not json\n")
    history = runner.invoke(app, ["models", "history", "-c", str(config)])
    assert history.exit_code == 3 and "promotions.jsonl, line 1: not a promotion" in (
        history.output
    )


def test_a_registry_saved_before_promotion_keeps_serving_its_latest(tmp_path, trained):
    old = save_model(trained[0], registry=tmp_path, name="churn", metadata={})
    for name in ("champion", "promotions.jsonl"):
        (tmp_path / "churn" / name).unlink()
    assert champion(tmp_path, "churn") == old.name  # what served before promotion existed
    new = save_model(trained[0], registry=tmp_path, name="churn", metadata={})
    assert champion(tmp_path, "churn") == old.name and new.name != old.name
    assert [p.action for p in promotions(tmp_path, "churn")] == ["adopted"]

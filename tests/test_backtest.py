"""Rolling-origin backtests, the evaluate overlap warning, and the reports in a real browser."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from typer.testing import CliRunner

import churnguard as cg
from churnguard.backtest import backtest
from churnguard.cli import app
from churnguard.registry import find_model
from churnguard.retail import generate_purchases
from conftest import browser_dom, file_tree

runner = CliRunner()
#: Days from 2024-01-01: start 154 (2024-06-03), every 28 days; the world holds 600 days.
CONFIG = """
[data]
path = "{data}"
[churn]
definition = "inactivity"
horizon_days = 90
[features]
survey_events = []
[train]
start = "2024-06-03"
end = "2025-03-10"
every_days = 28
[model]
registry = "{registry}"
"""
ORIGINS = ["--from", "2025-01-13", "--to", "2025-05-19", "--every-days", "63"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """A 3,000-customer purchase log and its config."""
    root = tmp_path_factory.mktemp("shop")
    generate_purchases(root / "data", customers=3_000, days=600, seed=5, horizon_days=90)
    config = root / "shop.toml"
    config.write_text(CONFIG.format(data=root / "data", registry=root / "models"))
    return config


@pytest.fixture(scope="module")
def backtested(shop, tmp_path_factory) -> tuple[cg.PipelineConfig, object, Path]:
    out = tmp_path_factory.mktemp("bt") / "out"
    cfg = cg.load_config(shop)
    return cfg, backtest(cfg, start="2025-01-13", end="2025-05-19", every_days=63, out=out), out


def test_each_origin_retrains_on_what_was_known_then(backtested):
    cfg, run, _ = backtested
    assert [o.as_of.date().isoformat() for o in run.origins] == [
        "2025-01-13",
        "2025-03-17",
        "2025-05-19",
    ]
    for origin in run.origins:
        # purged: no training label window [d, d + 90) reaches the origin
        assert max(origin.train_snapshots) <= origin.as_of - pd.Timedelta(days=90)
        assert min(origin.train_snapshots).date().isoformat() == "2024-06-03"
    assert len(run.origins[2].train_snapshots) > len(run.origins[0].train_snapshots)
    # the origin's model is the one train fits on the same snapshots (same seed, same rows)
    last = run.origins[1]
    dates = [d.date().isoformat() for d in (*last.train_snapshots, last.as_of)]
    trained = cg.train(
        cg.load_config(None, {**_overrides(cfg), "train.as_of": dates}),
    )
    assert trained.evaluation.metrics["model"]["roc_auc_score"] == pytest.approx(
        last.evaluation.metrics["model"]["roc_auc_score"], abs=1e-12
    )


def _overrides(cfg: cg.PipelineConfig) -> dict[str, object]:
    return {
        "data.path": cfg.data.path,
        "churn.definition": "inactivity",
        "churn.horizon_days": 90,
        "features.survey_events": [],
        "train.every_days": 28,
        "model.registry": cfg.model.registry.parent / "again",
    }


def test_every_origin_and_the_pool_report_figures_inside_their_intervals(backtested):
    _, run, out = backtested
    for ev in [o.evaluation for o in run.origins] + [run.overall]:
        for who in ("model", "baseline", "bgnbd"):
            for key in ("roc_auc_score", "pr_auc_score", "expected_calibration_error"):
                low, high = ev.intervals[who][key]
                assert low <= ev.metrics[who][key] <= high, (who, key)
        assert ev.against["baseline"] in ("better", "level", "worse")
    assert run.overall.y_true.size == sum(o.evaluation.y_true.size for o in run.origins)
    saved = json.loads((out / "backtest.json").read_text())
    assert [o["as_of"] for o in saved["origins"]] == ["2025-01-13", "2025-03-17", "2025-05-19"]
    first = saved["origins"][0]
    assert first["rows"] == run.origins[0].evaluation.y_true.size
    assert (
        first["model"]["roc_auc_score"]["interval"][0] <= first["model"]["roc_auc_score"]["value"]
    )
    assert saved["overall"]["rows"] == run.overall.y_true.size
    assert "rolling-origin backtest" in (out / "report.html").read_text()


def test_the_cli_backtest_prints_each_origin_and_writes_nothing_on_bad_dates(shop, tmp_path):
    result = runner.invoke(app, ["backtest", "-c", str(shop), *ORIGINS])
    assert result.exit_code == 0, result.output
    for origin in ("2025-01-13", "2025-03-17", "2025-05-19", "overall"):
        assert origin in result.output
    before = file_tree(shop.parent)
    for bad, message in [
        (["--from", "2025-13-01"], "is not a date"),
        (["--to", "2025-08-04"], "runs past the end of the data"),
        (["--from", "2024-07-01"], "no [train] snapshot"),
    ]:
        argv = [*ORIGINS]
        argv[argv.index(bad[0]) + 1] = bad[1]
        refused = runner.invoke(
            app, ["backtest", "-c", str(shop), *argv, "--out", str(tmp_path / "o"), "-q"]
        )
        assert refused.exit_code == 2, refused.output
        assert message in refused.output and len(refused.output.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()
    assert file_tree(shop.parent) == before


def test_evaluate_warns_when_its_outcomes_overlap_the_training_labels(shop, tmp_path):
    trained = runner.invoke(app, ["train", "-c", str(shop), "-q"])
    assert trained.exit_code == 0, trained.output
    # the last training snapshot is 2024-11-18 (before the 2025-03-10 validation, purged)
    near = runner.invoke(app, ["evaluate", "-c", str(shop), "--as-of", "2024-12-16"])
    assert near.exit_code == 0, near.output
    assert "overlaps that of training snapshot" in " ".join(near.output.split())
    far = runner.invoke(
        app,
        ["evaluate", "-c", str(shop), "--as-of", "2025-05-19", "--out", str(tmp_path / "e")],
    )
    assert far.exit_code == 0, far.output
    assert "overlaps" not in far.output


@pytest.mark.skipif(
    not shutil.which("chromium") and not os.environ.get("CHURNGUARD_REQUIRE_BROWSER"),
    reason="needs Debian's chromium",
)
def test_the_train_evaluate_and_backtest_reports_render_in_a_headless_browser(
    shop, backtested, tmp_path
):
    runner.invoke(app, ["train", "-c", str(shop), "-q"])
    runner.invoke(
        app, ["evaluate", "-c", str(shop), "--as-of", "2025-05-19", "-o", str(tmp_path / "e")]
    )
    cfg = cg.load_config(shop)
    pages = {
        "train": find_model("latest", cfg.model) / "report.html",
        "evaluate": tmp_path / "e" / "report.html",
        "backtest": backtested[2] / "report.html",
    }
    for name, page in pages.items():
        dom, console = browser_dom(page, tmp_path / f"profile-{name}")
        assert "<h1>" in dom, name
        assert "Uncaught" not in console, (name, console)
        images = dom.split("data:image/png;base64,")[1:]
        assert images and dom.count("<img") == len(images), name
        for encoded in images:
            png = base64.b64decode(encoded.split('"', 1)[0])
            image = matplotlib.image.imread(io.BytesIO(png), format="png")
            assert image.shape[0] > 100 and image.shape[1] > 100, name

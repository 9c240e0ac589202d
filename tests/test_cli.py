"""The command line end to end on generated data shaped like a real CSV export."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pandas as pd
import typer
from typer.testing import CliRunner

from churnguard.cli import app
from churnguard.demo import run_demo
from churnguard.feature_files import feature_metadata

runner = CliRunner()


def test_generate_csv_validate_and_features_through_the_cli(tmp_path):
    data = tmp_path / "export"
    result = runner.invoke(
        app,
        [
            "generate",
            "--out",
            str(data),
            "--customers",
            "300",
            "--days",
            "200",
            "--seed",
            "5",
            "--format",
            "csv",
        ],
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in data.iterdir()} == {
        "customers.csv",
        "events.csv",
        "subscriptions.csv",
        "labels.csv",
        "truth.csv",
    }

    result = runner.invoke(app, ["validate", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "login" in result.output

    out = tmp_path / "features.parquet"
    result = runner.invoke(
        app,
        [
            "features",
            "--config",
            "pipelines/demo.toml",
            "--data",
            str(data),
            "--as-of",
            "2024-06-01",
            "--as-of",
            "2024-07-01",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert sorted(frame["as_of"].dt.strftime("%Y-%m-%d").unique()) == ["2024-06-01", "2024-07-01"]
    assert not frame.duplicated(["customer_id", "as_of"]).any()
    described = {item["name"]: item["description"] for item in feature_metadata(out)}
    assert set(described) == set(frame.columns) - {"customer_id", "as_of"}
    assert described["days_since_last_login"] == "days since the last login event"


def test_demo_runs_end_to_end_into_its_out_folder(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--customers", "1500"])
    assert result.exit_code == 0, result.output
    for step in (
        "1. data",
        "2. validate",
        "3. train",
        "4. evaluate",
        "5. score",
        "6. outcomes",
        "7. uplift",
        "8. KPIs",
    ):
        assert step in result.output
    (model,) = (out / "models" / "churn").glob("2*")
    assert (model / "report.html").exists() and (out / "evaluation" / "report.html").exists()
    (scores,) = (p for p in (out / "scores").iterdir() if not p.name.startswith("."))
    assert scores.name == "2025-12-31"  # the first day after the simulated two years
    listed = pd.read_csv(scores / "interventions.csv")
    assert 0 < len(listed) <= 500
    assert (out / "kpis" / "kpis.json").exists()
    assert (out / "treatment_log.parquet").exists() and (out / "effects" / "report.html").exists()


def test_the_demo_is_a_library_call_whose_next_command_works(tmp_path):
    steps: list[str] = []
    demo = run_demo(
        tmp_path / "elsewhere", customers=800, seed=3, step=lambda n, name, *_: steps.append(name)
    )
    assert steps == [
        "data",
        "validate",
        "train",
        "evaluate",
        "score",
        "outcomes",
        "uplift",
        "KPIs",
    ]
    assert demo.scored.out.is_dir() and demo.trained.folder.is_dir()
    command = shlex.split(demo.next_command)
    assert command[:2] == ["churnguard", "score"]
    tonight = runner.invoke(app, [*command[1:], "--out", str(tmp_path / "tonight")])
    assert tonight.exit_code == 0, tonight.output
    assert (tmp_path / "tonight" / "interventions.csv").read_bytes() == (
        demo.scored.files["interventions.csv"].read_bytes()
    )


def test_a_time_of_day_as_of_is_refused(tmp_path):
    result = runner.invoke(
        app,
        [
            "features",
            "--data",
            str(tmp_path),
            "--as-of",
            "2025-01-01T12:00:00",
            "--out",
            str(tmp_path / "f.parquet"),
        ],
    )
    assert result.exit_code == 2
    assert "has a time of day; as-of values are dates" in result.output


def test_kpis_through_the_cli_writes_tables_and_charts(tmp_path):
    data = tmp_path / "d"
    runner.invoke(app, ["generate", "--out", str(data), "--customers", "300", "--days", "200"])
    out = tmp_path / "kpis"
    result = runner.invoke(
        app,
        [
            "kpis",
            "--config",
            "pipelines/demo.toml",
            "--data",
            str(data),
            "--from",
            "2024-03-01",
            "--to",
            "2024-06-01",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "churn %" in result.output and "2024-04" in result.output
    assert {p.name for p in out.iterdir()} == {
        "kpis.csv",
        "kpis.json",
        "cohorts.csv",
        "cohort_retention.png",
        "retention_curve.png",
    }
    bad = runner.invoke(
        app, ["kpis", "--data", str(data), "--from", "2024-06-01", "--to", "2024-03-01"]
    )
    assert bad.exit_code == 2
    assert "needs an end after its start" in bad.output


def test_train_saves_a_model_that_models_list_and_show_find_and_tampering_exits_3(tmp_path):
    data = tmp_path / "d"
    runner.invoke(app, ["generate", "--out", str(data), "--customers", "2500", "--days", "400"])
    config = tmp_path / "c.toml"
    config.write_text(
        f'[data]\npath = "{data}"\n[churn]\ndefinition = "subscription"\n'
        '[train]\nstart = "2024-05-01"\nend = "2024-12-20"\nevery_days = 28\ntune_trials = 2\n'
        f'[model]\nname = "t"\nregistry = "{tmp_path / "models"}"\n'
    )
    result = runner.invoke(app, ["train", "--config", str(config), "--tune"])
    assert result.exit_code == 0, result.output
    for line in ("model ROC-AUC / ECE", "baseline ROC-AUC / ECE", "true-hazard", "tuning"):
        assert line in result.output
    assert "report.html" in result.output
    backtest = runner.invoke(
        app, ["evaluate", "--config", str(config), "--as-of", "2025-01-01", "--out", str(tmp_path)]
    )
    assert backtest.exit_code == 0, backtest.output
    assert "model ROC-AUC / ECE" in backtest.output and (tmp_path / "report.html").exists()
    late = runner.invoke(app, ["evaluate", "--config", str(config), "--as-of", "2025-06-01"])
    assert late.exit_code == 2 and "label window runs past the end" in late.output
    listed = runner.invoke(app, ["models", "list", "--config", str(config)])
    assert listed.exit_code == 0 and "*" in listed.output
    shown = runner.invoke(app, ["models", "show", "--config", str(config)])
    assert shown.exit_code == 0 and '"calibration"' in shown.output
    (booster,) = (tmp_path / "models" / "t").glob("*/booster.txt")
    booster.write_text(booster.read_text() + "\n")
    refused = runner.invoke(app, ["models", "show", "--config", str(config)])
    assert refused.exit_code == 3
    assert "sha256 differs from the one recorded at save time" in refused.output
    listed = runner.invoke(app, ["models", "list", "--config", str(config)])
    assert listed.exit_code == 0 and "damaged" in listed.output  # the others are still listed


def _one_line_error(args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, [*args, "-q"])
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_generate_refuses_a_folder_that_is_not_empty_unless_forced(tmp_path):
    out = tmp_path / "d"
    args = ["generate", "--out", str(out), "--customers", "100", "--format", "csv"]
    assert runner.invoke(app, args).exit_code == 0
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    _one_line_error(
        ["generate", "--out", str(out), "--customers", "100"], 2, "is not empty (customers.csv"
    )
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    forced = runner.invoke(app, ["generate", "--out", str(out), "--customers", "100", "--force"])
    assert forced.exit_code == 0, forced.output
    assert not list(out.glob("*.csv")) and (out / "events.parquet").exists()
    assert (out / "notes.txt").read_text() == "mine"


def test_dates_seeds_and_paths_out_of_range_get_one_line(tmp_path):
    data = tmp_path / "d"
    runner.invoke(app, ["generate", "--out", str(data), "--customers", "100"])
    outside = "is outside 1900-01-01 to 2200-01-01"
    _one_line_error(
        ["kpis", "--data", str(data), "--from", "0001-01-01", "--to", "2025-01-01"], 2, outside
    )
    _one_line_error(
        ["generate", "--out", str(tmp_path / "g"), "--start", "9999-12-01"], 2, outside
    )
    _one_line_error(["generate", "--out", str(tmp_path / "g"), "--seed", "-1"], 2, "seed must be")
    _one_line_error(
        ["generate", "--out", str(tmp_path / "g"), "--seed", str(2**32)], 2, "seed must be"
    )
    _one_line_error(
        ["features", "--data", str(data), "--as-of", "0001-01-01", "--out", str(tmp_path / "f")],
        2,
        outside,
    )
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _one_line_error(
        ["features", "--data", str(data), "--as-of", "2025-01-01", "--out", f"{blocker}/f.pq"],
        1,
        "a-file",
    )
    assert not list(tmp_path.glob("g*"))


def test_the_command_line_starts_without_the_heavy_libraries():
    """--help must answer at once: the engine and model libraries load with the commands that
    use them."""
    probe = (
        "import sys, churnguard, churnguard.cli; "
        "print(sorted(m for m in ('duckdb', 'ibis', 'lightgbm', 'sklearn', 'pandas', 'pyarrow') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_every_command_takes_q_and_then_prints_nothing_but_warnings(tmp_path):
    root = tmp_path / "demo"
    ran: set[str] = set()

    def quietly(*args: str) -> None:
        result = runner.invoke(app, [*args, "-q"])
        assert result.exit_code == 0, result.output
        assert result.stdout == "", result.stdout
        assert all(" WARNING " in line for line in result.stderr.splitlines()), result.stderr
        ran.add(" ".join(args[:2]) if args[0] == "models" else args[0])

    quietly("demo", "--out", str(root), "--customers", "800", "--seed", "3")
    config = tmp_path / "c.toml"
    config.write_text(
        f'[data]\npath = "{root / "data"}"\n[churn]\ndefinition = "subscription"\n'
        '[train]\nstart = "2024-04-01"\nend = "2025-06-01"\nevery_days = 60\n'
        f'[model]\nregistry = "{root / "models"}"\n'
    )
    c = ("-c", str(config))
    quietly("generate", "--out", str(tmp_path / "g"), "--customers", "200", "--days", "100")
    quietly("validate", *c)
    quietly("features", *c, "--as-of", "2025-06-01", "--out", str(tmp_path / "f.parquet"))
    quietly("kpis", *c, "--from", "2025-01-01", "--to", "2025-07-01")
    quietly("train", *c)
    quietly("evaluate", *c, "--as-of", "2025-09-01")
    quietly("backtest", *c, "--from", "2025-04-01", "--to", "2025-06-01", "--every-days", "60")
    quietly("score", *c, "--as-of", "2025-12-31", "--out", str(tmp_path / "s"))
    quietly("outcomes", *c, "--out", str(tmp_path / "log.parquet"))
    quietly("uplift", *c, "--log", str(tmp_path / "log.parquet"), "--out", str(tmp_path / "u"))
    newest = (root / "models" / "churn" / "latest").read_text().strip()
    for command in (["list"], ["show"], ["promote", newest], ["rollback"], ["history"]):
        quietly("models", command[0], *c, *command[1:])
    group = typer.main.get_command(app)
    commands = {n for n in group.commands if n != "models"} | {
        f"models {n}" for n in group.commands["models"].commands
    }
    assert ran == commands

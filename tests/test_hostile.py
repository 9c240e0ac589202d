"""Hostile input through the command line: one line, the right exit code, and no file created
or changed anywhere, whatever the data, the config or the options hold."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import churnguard as cg
from churnguard.cli import app
from churnguard.config import load_config
from conftest import HOSTILE_NAMES, file_tree

runner = CliRunner()
AS_OF = "2025-01-20"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A folder holding generated data (``data``), a registry with one model (``models``) and
    a nightly config (``nightly.toml``)."""
    root = tmp_path_factory.mktemp("hostile")
    cg.generate(root / "data", customers=1_500, days=420, seed=8)
    settings_ = {
        "data.path": root / "data",
        "model.registry": root / "models",
        "churn.definition": "subscription",
        "train.start": "2024-04-01",
        "train.end": "2024-12-20",
        "train.every_days": 28,
    }
    cg.train(load_config(None, settings_))
    (root / "nightly.toml").write_text(
        f'[data]\npath = "{root / "data"}"\n[model]\nregistry = "{root / "models"}"\n'
        "[score]\ntop_n = 50\n"
    )
    args = ["score", "-c", str(root / "nightly.toml"), "--as-of", AS_OF]
    assert runner.invoke(app, [*args, "--out", str(root / "baseline")]).exit_code == 0
    return root


def _config(root: Path, text: str) -> Path:
    path = root / "case.toml"
    path.write_text(root.joinpath("nightly.toml").read_text() + text)
    return path


def _with_section(root: Path, section: str, text: str) -> Path:
    """The nightly config with ``text`` added at the top of ``[section]``."""
    path = root / "case.toml"
    base = root.joinpath("nightly.toml").read_text()
    if f"[{section}]\n" in base:
        path.write_text(base.replace(f"[{section}]\n", f"[{section}]\n{text}"))
    else:
        path.write_text(base + f"[{section}]\n{text}")
    return path


# Each case: the command line (built in a copy of the world), exit code, part of the line.
Case = Callable[[Path], list[str]]
CASES: dict[str, tuple[Case, int, str]] = {
    "score with a model path climbing out": (
        lambda w: ["score", "-c", str(w / "nightly.toml"), "--as-of", AS_OF, "-m", "../../x"],
        3,
        "../../x: no such model folder",
    ),
    "score with a model name climbing out": (
        lambda w: [
            "score",
            "-c",
            str(_with_section(w, "model", 'name = "../../x"\n')),
            "--as-of",
            AS_OF,
        ],
        2,
        "model.name '../../x': expected one folder name",
    ),
    "score at the year 1": (
        lambda w: ["score", "-c", str(w / "nightly.toml"), "--as-of", "0001-01-01"],
        2,
        "date 0001-01-01 is outside 1900-01-01 to 2200-01-01",
    ),
    "score with a budget of nan": (
        lambda w: [
            "score",
            "-c",
            str(_with_section(w, "score", "budget = nan\n")),
            "--as-of",
            AS_OF,
        ],
        2,
        "score.budget must be a finite number, got nan",
    ),
    "score with a negative lock timeout": (
        lambda w: [
            "score",
            "-c",
            str(_with_section(w, "score", "lock_timeout = -1\n")),
            "--as-of",
            AS_OF,
        ],
        2,
        "score.lock_timeout must be >= 0 seconds",
    ),
    "score with a features file that is not there": (
        lambda w: [
            "score",
            "-c",
            str(w / "nightly.toml"),
            "--as-of",
            AS_OF,
            "--features",
            str(w / "none.parquet"),
        ],
        2,
        "none.parquet: features file not found",
    ),
    "score with a misspelt condition": (
        lambda w: [
            "score",
            "-c",
            str(
                _config(
                    w,
                    '[[interventions]]\nname = "x"\ncost = 1\nsuccess_rate = 0.5\n'
                    'when = ["tenure_day < 9"]\n',
                )
            ),
            "--as-of",
            AS_OF,
        ],
        2,
        "condition 'tenure_day < 9' is on 'tenure_day', which is not a feature",
    ),
    "train with a seed beyond LightGBM's": (
        lambda w: ["train", "-c", str(_with_section(w, "train", f"seed = {2**32}\n"))],
        2,
        "train.seed must be between 0 and 2147483647",
    ),
    "validate with minus three threads": (
        lambda w: ["validate", "-c", str(_with_section(w, "engine", "threads = -3\n"))],
        2,
        "engine.threads must be >= 0",
    ),
    "kpis from the year 1": (
        lambda w: ["kpis", "-c", str(w / "nightly.toml"), "--from", "0001-01-01", "--to", AS_OF],
        2,
        "date 0001-01-01 is outside 1900-01-01 to 2200-01-01",
    ),
    "generate into a dataset": (
        lambda w: ["generate", "--out", str(w / "data"), "--customers", "100"],
        2,
        "is not empty (customers.parquet, events.parquet, labels.parquet, …)",
    ),
    "generate from the year 9999": (
        lambda w: ["generate", "--out", str(w / "new"), "--start", "9999-12-01"],
        2,
        "date 9999-12-01 is outside 1900-01-01 to 2200-01-01",
    ),
    "generate with seed -1": (
        lambda w: ["generate", "--out", str(w / "new"), "--seed", "-1"],
        2,
        "seed must be between 0 and 2147483647, got -1",
    ),
    "features into a file's child": (
        lambda w: [
            "features",
            "-c",
            str(w / "nightly.toml"),
            "--as-of",
            AS_OF,
            "--out",
            str(w / "nightly.toml" / "f.parquet"),
        ],
        1,
        "nightly.toml",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_hostile_options_get_one_line_and_leave_every_file_as_it_was(world, tmp_path, case):
    build, code, message = CASES[case]
    here = tmp_path / "w"
    shutil.copytree(world, here)
    args = build(here)  # may write the case's config, which then counts as there before
    before = file_tree(tmp_path)
    result = runner.invoke(app, [*args, "-q"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert file_tree(tmp_path) == before


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(attribute=HOSTILE_NAMES, event_type=st.one_of(HOSTILE_NAMES, st.just("login")))
def test_any_name_in_the_data_is_scored_or_refused_in_one_line(
    world, tmp_path_factory, attribute, event_type
):
    """A column named anything and an extra event type named anything: score either refuses
    in one line (exit 2) or lists the same customers as without them; nothing appears outside
    the out folder, and no raw control character reaches the terminal."""
    root = tmp_path_factory.mktemp("names")
    data = root / "data"
    shutil.copytree(world / "data", data)
    customers = pd.read_parquet(data / "customers.parquet")
    if attribute not in customers.columns:
        customers[attribute] = "x"
        customers.to_parquet(data / "customers.parquet")
    events = pd.read_parquet(data / "events.parquet")
    extra = events.iloc[:3].assign(event_type=event_type, value=None)
    pd.concat([events, extra], ignore_index=True).to_parquet(data / "events.parquet")
    before = file_tree(root)
    args = ["score", "-c", str(world / "nightly.toml"), "--as-of", AS_OF, "--data", str(data)]
    result = runner.invoke(app, [*args, "--out", str(root / "out"), "-q"])
    assert "\x1b" not in result.output
    if result.exit_code == 2:
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert file_tree(root) == before
        return
    assert result.exit_code == 0, result.output
    new = set(file_tree(root)) - set(before)
    assert all(n.startswith(("out", ".out.")) for n in new), new
    listed = pd.read_csv(root / "out" / "interventions.csv", dtype={"customer_id": str})
    baseline = pd.read_csv(world / "baseline" / "interventions.csv", dtype={"customer_id": str})
    assert list(listed["customer_id"]) == list(baseline["customer_id"])


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB file system (tmpfs), where the platform lets this process mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_leaves_the_previous_run_whole(world, small_disk):
    out = small_disk / "out"
    args = ["score", "-c", str(world / "nightly.toml"), "--as-of", AS_OF, "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    first = file_tree(out)
    free = shutil.disk_usage(small_disk).free
    (small_disk / "filler").write_bytes(b"\0" * (free - 8 * 1024))  # leave 8 KiB
    result = runner.invoke(app, [*args, "-q"])
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1 and "No space left" in result.output
    assert file_tree(out) == first
    leftovers = sorted(p.name for p in small_disk.iterdir())
    assert leftovers == [".out.churnguard-score.lock", "filler", "out"]  # the lock is reused

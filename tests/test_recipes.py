"""The job recipes in pipelines/ and the Dockerfile: every churnguard command in them is one
the command line accepts, and the Airflow DAG parses where Airflow is installed."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from churnguard.cli import app
from churnguard.config import load_config

ROOT = Path(__file__).resolve().parent.parent
TONIGHT = "2025-12-31"


def _crontab() -> list[list[str]]:
    """The churnguard command of each cron line (the date command filled in)."""
    commands = []
    for line in (ROOT / "pipelines" / "crontab").read_text().splitlines():
        found = re.search(r"&& (churnguard .*?) 2>>", line)
        if found and not line.startswith("#"):
            commands.append(shlex.split(found[1].replace('"$(date -u +\\%F)"', TONIGHT)))
    return commands


def _dag() -> list[list[str]]:
    """The command templates of the Airflow DAG (module-level strings), date filled in."""
    tree = ast.parse((ROOT / "pipelines" / "airflow_dag.py").read_text())
    texts = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
    ]
    return [
        shlex.split(t.format(as_of=TONIGHT))
        for t in texts
        if isinstance(t, str) and t.startswith("churnguard ")
    ]


def _databricks() -> list[list[str]]:
    job = json.loads((ROOT / "pipelines" / "databricks_job.json").read_text())
    return [
        [
            "churnguard",
            *(re.sub(r"\{\{.*?\}\}", TONIGHT, p) for p in t["python_wheel_task"]["parameters"]),
        ]
        for t in job["tasks"]
    ]


def _dockerfile() -> list[list[str]]:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    entry, cmd = (
        json.loads(next(x for x in lines if x.startswith(word)).removeprefix(word))
        for word in ("ENTRYPOINT ", "CMD ")
    )
    return [[*entry, *cmd]]


RECIPES = {"crontab": _crontab, "airflow": _dag, "databricks": _databricks, "docker": _dockerfile}


def _parse(argv: list[str]) -> Any:
    """Parse ``argv`` as the command line would, down to the command, without running it (the
    click context of the command; a usage error for a bad option or a missing one)."""
    assert argv[0] == "churnguard", argv
    command = typer.main.get_command(app)
    name, args, ctx = "churnguard", argv[1:], None
    while True:
        ctx = command.make_context(name, list(args), parent=ctx)
        if not hasattr(command, "resolve_command"):  # a command, not a group of them
            return ctx
        name, command, args = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_command_in_a_recipe_is_a_valid_churnguard_invocation(recipe):
    commands = RECIPES[recipe]()
    assert commands, f"no churnguard command found in the {recipe} recipe"
    for argv in commands:
        ctx = _parse(argv)
        assert ctx.info_name in {"score", "train", "demo"}, argv
    with pytest.raises(Exception, match="No such option") as refused:  # the check can fail
        _parse([*commands[0], "--no-such-option"])
    assert refused.value.exit_code == 2


def test_the_configs_the_recipes_name_load():
    for name in ("nightly.toml", "train.toml", "telecom.toml", "purchases.toml"):
        load_config(ROOT / "pipelines" / name)


@pytest.mark.skipif(
    importlib.util.find_spec("airflow") is None,
    reason="Airflow is not installed (pip install apache-airflow to check the DAG)",
)
def test_the_airflow_dag_parses_and_retries_only_what_a_retry_can_fix(tmp_path, monkeypatch):
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(ROOT / "pipelines" / "airflow_dag.py"))
    assert not bag.import_errors, bag.import_errors
    assert set(bag.dag_ids) == {"churnguard_train", "churnguard_score"}
    spec = importlib.util.spec_from_file_location("dag", ROOT / "pipelines" / "airflow_dag.py")
    dag = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dag)
    monkeypatch.setattr(dag, "HOME", str(tmp_path))
    with pytest.raises(dag.AirflowFailException, match="exit 2"):  # bad input: not retried
        dag.run(f"churnguard validate --data {tmp_path / 'missing'}")
    (tmp_path / "out").write_text("a file where the out folder should be")
    with pytest.raises(dag.AirflowException, match="exit 1, retried") as retried:
        dag.run(f"churnguard generate --customers 50 --days 60 --out {tmp_path / 'out' / 'x'}")
    assert not isinstance(retried.value, dag.AirflowFailException)

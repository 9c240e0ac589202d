"""Airflow: retrain churnguard weekly and score nightly, exit codes mapped to retries.

Copy into the DAGs folder of an Airflow 2.7+ or 3 installation where ``churnguard`` is installed
and ``HOME`` holds the pipelines. churnguard's exit codes decide what Airflow does with a
failure: 2 (bad input) and 3 (a model problem: hashes, schema) fail the task at once, since a
retry would meet the same data or model; 1 (anything else: a full disk, a lost mount) is
retried. The JSON log lines of each run go to the task log with the run id the scores carry.
"""

from __future__ import annotations

import datetime as dt
import shlex
import subprocess

try:  # Airflow 3
    from airflow.sdk import dag, task
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 2.7+
    from airflow.decorators import dag, task
    from airflow.exceptions import AirflowException, AirflowFailException

HOME = "/opt/churnguard"
TRAIN = "churnguard train --config pipelines/train.toml --log-format json"
SCORE = "churnguard score --config pipelines/nightly.toml --as-of {as_of} --log-format json"
#: Exit codes a retry cannot fix.
FINAL = {2: "bad input", 3: "a model problem"}
RETRIES = {"retries": 2, "retry_delay": dt.timedelta(minutes=15)}


def run(command: str) -> None:
    """Run a churnguard command in ``HOME``; fail for good on 2 and 3, retry on anything else."""
    code = subprocess.run(shlex.split(command), cwd=HOME, check=False).returncode
    if code in FINAL:
        raise AirflowFailException(f"{command}: exit {code} ({FINAL[code]}), not retried")
    if code:
        raise AirflowException(f"{command}: exit {code}, retried")


@dag(
    schedule="0 1 * * 0",
    start_date=dt.datetime(2026, 1, 4, tzinfo=dt.UTC),
    catchup=False,
    default_args=RETRIES,
    tags=["churnguard"],
)
def churnguard_train() -> None:
    """Sundays: retrain; the new model serves only if auto_promote finds it better."""

    @task
    def train() -> None:
        run(TRAIN)

    train()


@dag(
    schedule="30 2 * * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=RETRIES,
    tags=["churnguard"],
)
def churnguard_score() -> None:
    """Nightly: score the customers as of the end of the run's data interval (today)."""

    @task
    def score(data_interval_end: dt.datetime | None = None) -> None:
        assert data_interval_end is not None  # Airflow passes it from the task's context
        run(SCORE.format(as_of=data_interval_end.date().isoformat()))

    score()


churnguard_train()
churnguard_score()

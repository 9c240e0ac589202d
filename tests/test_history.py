"""Earlier runs: a night reads only the runs its answers depend on, and answers as if it had
read them all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from churnguard.history import History, Run

TONIGHT = dt.date(2025, 6, 30)
CUSTOMERS = list("abcdef")


def _world(lists: list[set[str]], gaps: list[int]) -> tuple[list[Run], dict[Path, set[str]]]:
    """Runs newest first, each ``gaps`` days before the next, with ``lists`` as their lists."""
    runs, day = [], TONIGHT
    for gap in gaps:
        day -= dt.timedelta(days=gap)
        runs.append(Run(day, Path(f"runs/{day}/assignments.csv")))
    return runs, {r.assignments: on for r, on in zip(runs, lists, strict=True)}


def _loader(lists: dict[Path, set[str]], read: list[Run]):
    def load(batch: Sequence[Run]) -> pd.DataFrame:
        read.extend(batch)
        rows = [(c, r.as_of, k) for k, r in enumerate(batch) for c in sorted(lists[r.assignments])]
        return pd.DataFrame(rows, columns=["customer_id", "as_of", "run"])

    return load


def _answers(history: History, cooldown_days: int) -> tuple:
    ids = pd.Series(CUSTOMERS)
    first, new = history.streaks(ids, TONIGHT)
    return first, list(new), history.contacted_since(TONIGHT - dt.timedelta(days=cooldown_days))


@settings(max_examples=200, deadline=None)
@given(
    nights=st.lists(
        st.tuples(st.sets(st.sampled_from(CUSTOMERS)), st.integers(1, 3)), max_size=12
    ),
    cooldown_days=st.integers(0, 10),
)
def test_reading_newest_first_answers_as_reading_every_run(nights, cooldown_days):
    runs, lists = _world([n[0] for n in nights], [n[1] for n in nights])
    read: list[Run] = []
    bounded = History.read(runs, _loader(lists, read), TONIGHT, cooldown_days)
    every_day = sum(n[1] for n in nights) + 1
    everything = History.read(runs, _loader(lists, []), TONIGHT, every_day)
    assert len(everything.runs) == len(runs)
    assert _answers(bounded, cooldown_days) == _answers(everything, cooldown_days)
    assert read == list(bounded.runs) == runs[: len(read)]  # each run read once, newest first
    # it stops within a batch of the last run an answer needs
    streak, needed = set(CUSTOMERS), 0
    for k, run in enumerate(runs):
        streak &= lists[run.assignments]
        if not streak and run.as_of < TONIGHT - dt.timedelta(days=cooldown_days):
            break
        needed = k + 1
    assert len(read) <= min(len(runs), 2 * needed + 1)


def test_a_year_of_runs_costs_what_the_longest_streak_costs():
    # 365 nightly runs; customer "a" has been on the last 20 lists, nobody for longer
    lists = [{"a", "b"} if k < 20 else {"c"} if k % 2 else {"d"} for k in range(365)]
    runs, by_path = _world(lists, [1] * 365)
    read: list[Run] = []
    history = History.read(runs, _loader(by_path, read), TONIGHT, cooldown_days=0)
    assert 21 <= len(read) <= 31  # batches of 1, 2, 4, 8, 16: the 21st run ends the streak
    first, new = history.streaks(pd.Series(["a", "c", "z"]), TONIGHT)
    assert first == [runs[19].as_of.isoformat(), TONIGHT.isoformat(), TONIGHT.isoformat()]
    assert list(new) == [False, True, True]
    cooled = History.read(runs, _loader(by_path, read := []), TONIGHT, cooldown_days=60)
    assert 60 <= len(read) <= 63 and cooled.contacted_since(TONIGHT - dt.timedelta(60)) == {
        "a",
        "b",
        "c",
        "d",
    }

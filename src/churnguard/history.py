"""Earlier nightly runs beside tonight's: who was on each list, and who was contacted.

A run is a folder next to the out folder (``[score] out = "scores/{as_of}"`` keeps one per
night) holding an ``assignments.csv``; hidden folders (a run being written or replaced) are
not runs. Only runs dated before tonight count, so a re-run of a night reads the same history
and writes the same bytes. The files are read through the data contract like the
``treatments`` table (:func:`~churnguard.contract.load_decisions`).

A night needs only the runs its answers depend on: the streaks on the lists go back only as
far as some customer of the latest list stayed on every list, and the cooldown only as far as
its days. So runs are read newest first, in batches that double, and reading stops there: a
year of nightly runs costs about what the longest streak costs. A file still as its run wrote
it (its SHA-256 is the one in that run's manifest) is read as it is; any other goes through the
contract, about 0.2 s a file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from churnguard.contract import Dataset, load_decisions
from churnguard.io import restore, sha256_file

ASSIGNMENTS = "assignments.csv"


@dataclass(frozen=True, order=True)
class Run:
    """An earlier run: the as-of date its manifest records and its decisions file."""

    as_of: dt.date
    assignments: Path
    #: The file's SHA-256, and the one the run's manifest recorded when it wrote the file.
    sha256: str = field(default="", compare=False)
    written: str | None = field(default=None, compare=False)

    @property
    def as_written(self) -> bool:
        """Whether the file is byte for byte the one its run wrote."""
        return self.sha256 == self.written


#: Reads the treated decisions of some runs: ``customer_id``, ``as_of`` (a date) and ``run``,
#: the index of the row's run in the sequence given.
Loader = Callable[[Sequence[Run]], pd.DataFrame]


def earlier_runs(out: Path, today: dt.date) -> list[Run]:
    """Every run beside ``out`` whose manifest dates it before ``today``, newest first (a
    folder without a readable manifest is not a run)."""
    parent = out.resolve().parent
    if not parent.is_dir():
        return []
    runs = []
    for folder in parent.iterdir():
        if (
            folder.is_dir()
            and not folder.name.startswith(".")
            and (folder / ASSIGNMENTS).is_file()
        ):
            as_of, written = _manifest(folder)
            if as_of < today:  # only these are hashed: tonight's past
                files = folder / ASSIGNMENTS
                runs.append(Run(as_of, files, sha256_file(files), written))
    return sorted(runs, reverse=True)


def _manifest(folder: Path) -> tuple[dt.date, str | None]:
    """The as-of date a run's manifest records (the far future when there is none to read: no
    run of tonight's past) and the SHA-256 it recorded for the run's decisions."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
        return (
            dt.date.fromisoformat(manifest["as_of"]),
            manifest.get("outputs", {}).get(ASSIGNMENTS),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return dt.date.max, None


def digest(runs: Sequence[Run]) -> str:
    """SHA-256 over the runs' folder names and decisions: part of the run id, since the
    history decides who is new and who cools down."""
    h = hashlib.sha256()
    for run in sorted(runs):
        h.update(f"{run.assignments.parent.name}:{run.sha256};".encode())
    return h.hexdigest()


def contract_loader(dataset: Dataset, interventions: list[str]) -> Loader:
    """A :data:`Loader` that reads a file as its run wrote it directly and checks any other
    against the data contract (one-line errors naming file, line and column)."""

    def load(runs: Sequence[Run]) -> pd.DataFrame:
        own = [k for k, r in enumerate(runs) if r.as_written]
        other = [k for k, r in enumerate(runs) if not r.as_written]
        frames = [_as_written(runs[k].assignments).assign(run=k) for k in own]
        if other:
            table = load_decisions(dataset, [runs[k].assignments for k in other], interventions)
            checked = (
                table.filter(table.group == "treated")
                .select("customer_id", "as_of", "source")
                .to_pandas()
            )
            checked["as_of"] = pd.to_datetime(checked["as_of"]).dt.date
            frames.append(checked.assign(run=np.asarray(other)[checked.pop("source").to_numpy()]))
        return pd.concat(frames, ignore_index=True)

    return load


def _as_written(path: Path) -> pd.DataFrame:
    """The treated decisions of an ``assignments.csv`` as a run wrote it (dates as
    ``YYYY-MM-DD``, texts a spreadsheet would run neutralised)."""
    frame = pd.read_csv(
        path, dtype=str, keep_default_na=False, usecols=["customer_id", "as_of", "group"]
    )
    frame = frame[frame["group"] == "treated"]
    return pd.DataFrame(
        {
            "customer_id": [restore(c) for c in frame["customer_id"]],
            "as_of": [dt.date.fromisoformat(d) for d in frame["as_of"]],
        }
    )


@dataclass(frozen=True)
class History:
    """The lists of the runs before tonight that tonight's answers depend on."""

    #: ``customer_id`` and ``as_of`` (a date) of every treated decision read.
    treated: pd.DataFrame
    #: The runs read, newest first, and the customers on each one's list.
    runs: tuple[Run, ...]
    lists: tuple[frozenset[str], ...]

    @classmethod
    def read(
        cls, runs: Sequence[Run], load: Loader, today: dt.date, cooldown_days: int
    ) -> History:
        """The lists of ``runs`` (newest first) back to where every streak of the latest list
        has ended and beyond the cooldown's first day, read in doubling batches."""
        since = today - dt.timedelta(days=cooldown_days)
        frames: list[pd.DataFrame] = []
        lists: list[frozenset[str]] = []
        streak: frozenset[str] | None = None
        size = 1
        while len(lists) < len(runs) and (
            streak is None or streak or runs[len(lists)].as_of >= since
        ):
            batch = runs[len(lists) : len(lists) + size]
            frame = load(batch)
            frame = frame[frame["as_of"] < today]
            frames.append(frame[["customer_id", "as_of"]])
            for k in range(len(batch)):
                on = frozenset(frame.loc[frame["run"] == k, "customer_id"])
                lists.append(on)
                streak = on if streak is None else streak & on
            size *= 2
        treated = (
            pd.concat(frames).drop_duplicates().reset_index(drop=True)
            if frames
            else pd.DataFrame({"customer_id": [], "as_of": []})
        )
        return cls(treated, tuple(runs[: len(lists)]), tuple(lists))

    def streaks(self, ids: pd.Series, today: dt.date) -> tuple[list[str], np.ndarray]:
        """Per customer: the first as-of date of their unbroken streak on the lists up to
        ``today`` (consecutive runs, not days), and whether they were not on the last list."""
        first, new = [], []
        for customer in ids:
            since = today
            for run, on in zip(self.runs, self.lists, strict=True):
                if customer not in on:
                    break
                since = run.as_of
            first.append(since.isoformat())
            new.append(since == today)
        return first, np.array(new, dtype=bool)

    def contacted_since(self, day: dt.date) -> set[str]:
        """Customers treated on a list dated ``day`` or later."""
        return set(self.treated.loc[self.treated["as_of"] >= day, "customer_id"])

"""Earlier nightly runs beside tonight's: who was on each list, and who was contacted.

A run is a folder next to the out folder (``[score] out = "scores/{as_of}"`` keeps one per
night) holding an ``assignments.csv``; hidden folders (a run being written or replaced) are
not runs. Only decisions dated before tonight count, so a re-run of a night reads the same
history and writes the same bytes. The files are read through the data contract like the
``treatments`` table (:func:`~churnguard.contract.load_decisions`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from churnguard.contract import Dataset, load_decisions
from churnguard.io import sha256_file

ASSIGNMENTS = "assignments.csv"


def earlier_runs(out: Path, today: dt.date) -> list[Path]:
    """The ``assignments.csv`` of every run beside ``out`` whose manifest dates it before
    ``today`` (a folder without a readable manifest is not a run)."""
    parent = out.resolve().parent
    if not parent.is_dir():
        return []
    return sorted(
        folder / ASSIGNMENTS
        for folder in parent.iterdir()
        if folder.is_dir()
        and not folder.name.startswith(".")
        and (folder / ASSIGNMENTS).is_file()
        and _dated(folder / "manifest.json") < today
    )


def _dated(manifest: Path) -> dt.date:
    """The as-of date a run's manifest records; the far future when there is none to read."""
    try:
        return dt.date.fromisoformat(json.loads(manifest.read_text("utf-8"))["as_of"])
    except (OSError, ValueError, KeyError, TypeError):
        return dt.date.max


def digest(files: list[Path]) -> str:
    """SHA-256 over the files' names and contents: part of the run id, since the history
    decides who is new and who cools down."""
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.parent.name}:{sha256_file(path)};".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class History:
    """Treated decisions (the customers on each list) of the runs before tonight."""

    #: ``customer_id`` and ``as_of`` (a date) of every treated decision before tonight.
    treated: pd.DataFrame

    @classmethod
    def read(
        cls, dataset: Dataset, files: list[Path], names: list[str], today: dt.date
    ) -> History:
        """The treated decisions of ``files`` dated before ``today``; one-line errors (file,
        line, column) for a file that breaks the contract."""
        if not files:
            return cls(pd.DataFrame({"customer_id": [], "as_of": []}))
        frame = load_decisions(dataset, files, names).to_pandas()
        frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
        frame = frame[(frame["group"] == "treated") & (frame["as_of"] < today)]
        return cls(frame[["customer_id", "as_of"]].drop_duplicates().reset_index(drop=True))

    def streaks(self, ids: pd.Series, today: dt.date) -> tuple[list[str], np.ndarray]:
        """Per customer: the first as-of date of their unbroken streak on the lists up to
        ``today`` (consecutive runs, not days), and whether they were not on the last list."""
        dates = sorted(self.treated["as_of"].unique(), reverse=True)
        on = {d: set(self.treated.loc[self.treated["as_of"] == d, "customer_id"]) for d in dates}
        first, new = [], []
        for customer in ids:
            since = today
            for date in dates:
                if customer not in on[date]:
                    break
                since = date
            first.append(since.isoformat())
            new.append(since == today)
        return first, np.array(new, dtype=bool)

    def contacted_since(self, day: dt.date) -> set[str]:
        """Customers treated on a list dated ``day`` or later."""
        return set(self.treated.loc[self.treated["as_of"] >= day, "customer_id"])

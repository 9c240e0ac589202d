"""What a night pays to read the earlier runs beside it, after a year of nightly runs.

A year (365 nights) of earlier runs is written beside tonight's out folder, each with a
manifest and an ``assignments.csv`` of 500 decisions (450 treated, 50 held out) over 20,000
simulated customers. From one night to the next each listed customer stays on the list with
probability ``--stay`` (0.93: the issue that asked for the columns saw 466 of 500 stay) or,
with ``--cooldown-days``, the customers just contacted make way, as ``[score] cooldown_days``
does.

Tonight's history is read three ways in the same run: as scoring reads it (newest first,
stopping where every streak of the latest list has ended and the cooldown is covered; files
still as their run wrote them read directly), the same with every file checked through the
data contract (as when the files were edited since), and every run checked through the
contract, as it was read before. All give the same ``first_listed``, ``new`` and cooled
customers, which the script checks.

    python benchmarks/history.py [--nights 365] [--stay 0.93] [--cooldown-days 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import churnguard as cg
from churnguard.history import History, contract_loader, earlier_runs
from churnguard.io import sha256_file

TONIGHT = dt.date(2025, 12, 31)
LISTED, HELD = 450, 50


def write_runs(root: Path, ids: np.ndarray, args: argparse.Namespace) -> None:
    """``args.nights`` runs before tonight, oldest first, each list following the last."""
    rng = np.random.default_rng(0)
    listed = rng.choice(ids, LISTED, replace=False)
    recent: list[np.ndarray] = []
    for night in range(args.nights, 0, -1):
        day = TONIGHT - dt.timedelta(days=night)
        keep = listed[rng.random(LISTED) < args.stay]
        if args.cooldown_days:
            keep = keep[:0]  # everyone listed last night was contacted: they cool down
        barred = set(np.concatenate(recent)) if recent else set()
        barred |= set(keep)
        pool = np.array([c for c in ids if c not in barred])
        fresh = rng.choice(pool, LISTED - len(keep) + HELD, replace=False)
        listed = np.concatenate([keep, fresh[: LISTED - len(keep)]])
        held = fresh[LISTED - len(keep) :]
        recent = (recent + [listed])[-args.cooldown_days :] if args.cooldown_days else []
        folder = root / day.isoformat()
        folder.mkdir(parents=True)
        decisions = folder / "assignments.csv"
        pd.DataFrame(
            {
                "customer_id": np.concatenate([listed, held]),
                "as_of": day.isoformat(),
                "intervention": "billing follow-up",
                "group": ["treated"] * LISTED + ["holdout"] * HELD,
                "cost": 5.0,
                "churn_probability": 0.2,
                "customer_value": 500.0,
                "expected_benefit": 35.0,
                "run_id": f"run{night}",
            }
        ).to_csv(decisions, index=False)
        manifest = {"as_of": day.isoformat(), "outputs": {decisions.name: sha256_file(decisions)}}
        (folder / "manifest.json").write_text(json.dumps(manifest))


def answers(history: History, ids: pd.Series, cooldown_days: int) -> tuple:
    first, new = history.streaks(ids, TONIGHT)
    cooled = history.contacted_since(TONIGHT - dt.timedelta(days=cooldown_days))
    return tuple(first), tuple(new), tuple(sorted(cooled)) if cooldown_days else ()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=365)
    parser.add_argument("--stay", type=float, default=0.93)
    parser.add_argument("--cooldown-days", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        cg.generate(data, customers=20_000, days=730, seed=1)
        ids = pd.read_parquet(data / "customers.parquet")["customer_id"].to_numpy()
        write_runs(Path(tmp) / "scores", ids, args)
        dataset = cg.load_dataset(data)
        began = time.perf_counter()
        runs = earlier_runs(Path(tmp) / "scores" / TONIGHT.isoformat(), TONIGHT)
        listing_s = time.perf_counter() - began
        load = contract_loader(dataset, ["billing follow-up"])
        foreign = [dataclasses.replace(r, written=None) for r in runs]  # edited since written
        every_day = (TONIGHT - runs[-1].as_of).days  # a cooldown reaching the first run
        ways = {
            "bounded, files as written": (runs, args.cooldown_days),
            "bounded, every file checked": (foreign, args.cooldown_days),
            "every run, every file checked (before)": (foreign, every_day),
        }
        timed = {}
        for name, (given, cooldown) in ways.items():
            began = time.perf_counter()
            timed[name] = History.read(given, load, TONIGHT, cooldown), time.perf_counter() - began
    bounded = timed["bounded, files as written"][0]
    tonight = pd.Series(np.concatenate([sorted(bounded.lists[0]), ids[:100]]))
    same = {answers(h, tonight, args.cooldown_days) for h, _ in timed.values()}
    longest = min(bounded.streaks(tonight, TONIGHT)[0])
    print(
        f"{len(runs)} earlier runs; stay {args.stay}, cooldown {args.cooldown_days} days; "
        f"longest streak tonight from {longest}; same answers every way: "
        f"{'yes' if len(same) == 1 else 'NO'}"
    )
    print(
        f"listing the runs and hashing their files (every night, for the run id): {listing_s:.2f}s"
    )
    reference = timed["every run, every file checked (before)"][1]
    for name, (history, seconds) in timed.items():
        print(
            f"{name:<40} {len(history.runs):>4} runs read in {seconds:6.2f}s "
            f"({reference / seconds:5.1f}x faster than before)"
        )


if __name__ == "__main__":
    main()

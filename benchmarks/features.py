"""Benchmark: the feature engine against a straightforward pandas implementation.

Generates (and caches under ``data/bench/``) 10M events / 200k customers and 50M events / 1M
customers, then, each in a fresh process so peak memory is its own:

* the engine (DuckDB) for one as-of date and for six monthly as-of dates in one pass,
* the pandas reference (``benchmarks/reference_pandas.py``) for the same single date,

checks that both give the same values, and prints seconds, events per second, peak RSS and the
ratios. Each run is repeated (``--repeat``, interleaved with the others) and reported at its
fastest, since a shared machine's speed drifts by a quarter or more within an hour. Run from
the repository root::

    python benchmarks/features.py                      # both sizes
    python benchmarks/features.py --customers 200000   # the smaller one only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
LAST_DATE = dt.datetime(2025, 12, 1)


def dates(k: int) -> list[dt.datetime]:
    return sorted(LAST_DATE - dt.timedelta(days=30 * i) for i in range(k))


def dataset(customers: int, seed: int) -> Path:
    """The cached generated dataset for this size, generated on first use."""
    from churnguard.synth import generate

    folder = ROOT / "data" / "bench" / f"c{customers}-s{seed}"
    if not (folder / "events.parquet").exists():
        print(f"generating {customers:,} customers into {folder} ...", flush=True)
        generate(folder, customers=customers, days=730, seed=seed)
    return folder


def child(mode: str, folder: Path, k: int, out: Path) -> dict[str, float]:
    """Run one measurement in this process and report its timings and peak RSS."""
    began = time.perf_counter()
    timings: dict[str, float] = {}
    if mode == "engine":
        import churnguard as cg
        from churnguard.feature_files import write_features

        data = cg.load_dataset(folder)  # validation: counted in total_s only
        start = time.perf_counter()
        plan = cg.plan_features(data)
        write_features(data, out, as_of=dates(k), plan=plan)
        timings["features_s"] = time.perf_counter() - start
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        from reference_pandas import reference_features

        reference_features(folder, dates(k)).to_parquet(out, index=False)
        timings["features_s"] = time.perf_counter() - began
    timings["total_s"] = time.perf_counter() - began
    timings["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return timings


def measure(mode: str, folder: Path, k: int, out: Path) -> dict[str, float]:
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--data",
            str(folder),
            "--dates",
            str(k),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def fastest(runs: tuple[dict[str, float], ...]) -> dict[str, float]:
    """The least disturbed of repeated runs (as :mod:`timeit` advises): each timing's minimum,
    and the highest peak RSS."""
    best = {key: min(run[key] for run in runs) for key in runs[0]}
    best["peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs)
    return best


def same_values(engine_file: Path, reference_file: Path) -> str:
    """'yes', or the first column whose values differ."""
    engine = pd.read_parquet(engine_file)
    reference = pd.read_parquet(reference_file)[engine.columns]
    reference = reference.sort_values(["customer_id", "as_of"]).reset_index(drop=True)
    if len(engine) != len(reference):
        return f"no: {len(engine)} rows against {len(reference)}"
    for column in engine.columns:
        a, b = engine[column], reference[column]
        if a.dtype.kind in "fiu" or b.dtype.kind in "fiu":
            a, b = a.astype(float).to_numpy(), b.astype(float).to_numpy()
            equal = np.isclose(a, b, rtol=1e-9, atol=1e-9) | (np.isnan(a) & np.isnan(b))
        else:
            equal = (a.astype(object) == b.astype(object)) | (a.isna() & b.isna())
        if not np.all(equal):
            return f"no: column {column}"
    return "yes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="*", default=[200_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of the three runs, interleaved; each is reported at its fastest",
    )
    parser.add_argument("--child", choices=["engine", "pandas"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--dates", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data, args.dates, args.out)))
        return

    work = ROOT / "data" / "bench" / "out"
    work.mkdir(parents=True, exist_ok=True)
    for customers in args.customers:
        folder = dataset(customers, args.seed)
        import pyarrow.parquet as pq

        events = pq.read_metadata(folder / "events.parquet").num_rows
        rounds = [
            (
                measure("engine", folder, 1, work / "engine-1.parquet"),
                measure("engine", folder, 6, work / "engine-6.parquet"),
                measure("pandas", folder, 1, work / "pandas-1.parquet"),
            )
            for _ in range(args.repeat)
        ]
        one, six, ref = (fastest(runs) for runs in zip(*rounds, strict=True))
        equal = same_values(work / "engine-1.parquet", work / "pandas-1.parquet")
        print(
            f"\n{customers:,} customers, {events:,} events, as-of {LAST_DATE.date()}, "
            f"fastest of {args.repeat}"
        )
        print(f"{'run':<34}{'seconds':>9}{'events/s':>14}{'peak RSS':>12}")
        rows = [
            ("engine, 1 date (features)", one["features_s"], one["peak_rss_mib"]),
            ("engine, 1 date (+ validation)", one["total_s"], one["peak_rss_mib"]),
            ("engine, 6 dates in one pass", six["features_s"], six["peak_rss_mib"]),
            ("pandas reference, 1 date", ref["features_s"], ref["peak_rss_mib"]),
        ]
        for name, seconds, rss in rows:
            print(f"{name:<34}{seconds:>9.1f}{events / seconds:>14,.0f}{rss:>9,.0f} MiB")
        print(f"same values as the reference: {equal}")
        print(
            f"speed-up over pandas: {ref['features_s'] / one['features_s']:.2f}x "
            f"({ref['features_s'] / one['total_s']:.2f}x "
            "with validation)"
        )
        print(f"6 dates / 1 date: {six['features_s'] / one['features_s']:.2f}x")


if __name__ == "__main__":
    main()

"""Benchmark: features and nightly scoring on Spark (local mode) beside DuckDB, at growing sizes.

For each dataset size (generated once and cached under ``data/bench``; 200,000 customers over
two years make about 10M events) and each engine, in a fresh process:

* ``features``: ``churnguard features`` for one as-of date (write the feature table);
* ``score``: ``churnguard score`` with ``pipelines/nightly.toml`` (top 500, budget 10,000) from
  raw events: validation, features, scores and the intervention list.

Spark runs ``local[2]`` with 8 GB of driver memory; its session start is timed apart and left
out of the step times. The model is trained with DuckDB on the 20,000-customer dataset of
``benchmarks/model_quality.py``. Prints seconds per step, Spark / DuckDB ratios, and how each
engine's time grows when the data doubles. Run from the repository root::

    python benchmarks/spark.py [--customers 50000 100000 200000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2025-12-01"
SPARK = {"master": "local[2]", "conf": {"spark.driver.memory": "8g"}}


def child(engine: str, step: str, data: Path, model: Path, work: Path) -> dict[str, float]:
    import churnguard as cg
    from churnguard.feature_files import write_features

    overrides: dict[str, object] = {"data.path": data, "engine.name": engine}
    out: dict[str, float] = {"session_s": 0.0}
    if engine == "spark":
        from churnguard.config import SparkConfig
        from churnguard.engine.spark import session

        overrides["engine.spark"] = SPARK
        began = time.perf_counter()
        session(SparkConfig(**SPARK))
        out["session_s"] = time.perf_counter() - began
    cfg = cg.load_config(ROOT / "pipelines" / "nightly.toml", overrides)
    began = time.perf_counter()
    if step == "features":
        dataset = cg.load_dataset(cfg.data, definition="subscription", engine=cfg.engine)
        plan = cg.plan_features(dataset, config=cfg.features)
        out["rows"] = write_features(
            dataset, work / f"features-{engine}.parquet", as_of=[AS_OF], plan=plan
        )
    else:
        run = cg.score(cfg, as_of=AS_OF, out=work / f"score-{engine}", model=model)
        out["rows"] = run.manifest["rows"]["scored"]
        out["listed"] = run.manifest["rows"]["listed"]
    out["seconds"] = time.perf_counter() - began
    return out


def run(engine: str, step: str, data: Path, model: Path, work: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", engine, step, "--data", str(data)]
    command += ["--model", str(model), "--work", str(work)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def dataset(customers: int) -> Path:
    import churnguard as cg

    data = ROOT / "data" / "bench" / f"c{customers}-s42"
    if not (data / "events.parquet").exists():
        print(f"generating {customers:,} customers into {data} ...", flush=True)
        cg.generate(data, customers=customers, days=730, seed=42)
    return data


def model(work: Path) -> Path:
    import churnguard as cg

    train_data = ROOT / "data" / "bench" / "c20000-d730-s1"
    if not (train_data / "events.parquet").exists():
        cg.generate(train_data, customers=20_000, days=730, seed=1)
    cfg = cg.load_config(
        ROOT / "pipelines" / "demo.toml", {"data.path": train_data, "model.registry": work}
    )
    return cg.train(cfg).folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    parser.add_argument("--child", nargs=2)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.data, args.model, args.work)))
        return
    import pyarrow.parquet as pq

    (ROOT / "data" / "bench").mkdir(parents=True, exist_ok=True)
    results: dict[tuple[int, str, str], dict[str, float]] = {}
    events: dict[int, int] = {}
    with tempfile.TemporaryDirectory(dir=ROOT / "data" / "bench") as tmp:
        work = Path(tmp)
        trained = model(work)
        for customers in args.customers:
            data = dataset(customers)
            events[customers] = pq.read_metadata(data / "events.parquet").num_rows
            for engine in ("duckdb", "spark"):
                for step in ("features", "score"):
                    results[customers, engine, step] = run(engine, step, data, trained, work)
                    r = results[customers, engine, step]
                    print(
                        f"{customers:>9,} customers {events[customers]:>11,} events  "
                        f"{engine:<6} {step:<8} {r['seconds']:7.1f}s"
                        + (f"  (session start {r['session_s']:.1f}s)" if r["session_s"] else ""),
                        flush=True,
                    )
    print("\nSpark / DuckDB")
    for customers in args.customers:
        ratios = [
            results[customers, "spark", s]["seconds"] / results[customers, "duckdb", s]["seconds"]
            for s in ("features", "score")
        ]
        print(
            f"{events[customers]:>11,} events  features {ratios[0]:.1f}x  score {ratios[1]:.1f}x"
        )
    print("\ngrowth from the smallest size (time ratio / events ratio)")
    first = args.customers[0]
    for customers in args.customers[1:]:
        grown = events[customers] / events[first]
        cells = []
        for engine in ("duckdb", "spark"):
            for step in ("features", "score"):
                now, then = results[customers, engine, step], results[first, engine, step]
                cells.append(f"{engine} {step} {now['seconds'] / then['seconds']:.2f}x")
        print(f"{grown:.2f}x events: " + ", ".join(cells))


if __name__ == "__main__":
    main()

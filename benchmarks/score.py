"""Benchmark: nightly scoring of 1M customers, from raw events and from precomputed features.

Uses the cached 1M-customer / 50M-event dataset of ``benchmarks/features.py`` (generated on first
use) and a model trained on the 20,000-customer dataset of ``benchmarks/model_quality.py`` (same
simulator, same feature schema). Then, each in a fresh process so peak memory is its own:

* ``features``: ``churnguard features`` for the as-of date alone (the reference: the cost of the
  feature build that scoring from raw events includes);
* ``raw``: ``churnguard score`` with ``pipelines/nightly.toml`` (top 500, budget 10,000) from
  raw events, features included;
* ``precomputed``: ``churnguard score --features`` on the file the first step wrote.

It prints seconds and peak RSS of each, and the ratios. Run from the repository root::

    python benchmarks/score.py [--customers 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2025-12-01"


def child(mode: str, data: Path, model: Path, work: Path) -> dict[str, float]:
    import churnguard as cg
    from churnguard.feature_files import write_features
    from churnguard.scoring import score

    cfg = cg.load_config(ROOT / "pipelines" / "nightly.toml", {"data.path": data})
    began = time.perf_counter()
    out: dict[str, float] = {}
    if mode == "features":
        dataset = cg.load_dataset(cfg.data, definition="subscription", engine=cfg.engine)
        plan = cg.plan_features(dataset, config=cfg.features)
        out["rows"] = write_features(dataset, work / "features.parquet", as_of=[AS_OF], plan=plan)
    else:
        features = work / "features.parquet" if mode == "precomputed" else None
        run = score(cfg, as_of=AS_OF, out=work / mode, model=model, features=features)
        out["rows"] = run.manifest["rows"]["scored"]
        out["listed"] = run.manifest["rows"]["listed"]
        out.update({k: v for k, v in run.manifest["timings"].items() if k.endswith("_s")})
    out["seconds"] = time.perf_counter() - began
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run(mode: str, data: Path, model: Path, work: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", mode, "--data", str(data)]
    command += ["--model", str(model), "--work", str(work)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(customers: int, work: Path) -> tuple[Path, Path]:
    """The cached scoring dataset and a freshly trained model (in ``work``)."""
    import churnguard as cg

    data = ROOT / "data" / "bench" / f"c{customers}-s42"
    if not (data / "events.parquet").exists():
        print(f"generating {customers:,} customers into {data} ...", flush=True)
        cg.generate(data, customers=customers, days=730, seed=42)
    train_data = ROOT / "data" / "bench" / "c20000-d730-s1"
    if not (train_data / "events.parquet").exists():
        cg.generate(train_data, customers=20_000, days=730, seed=1)
    cfg = cg.load_config(
        ROOT / "pipelines" / "demo.toml", {"data.path": train_data, "model.registry": work}
    )
    return data, cg.train(cfg).folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--child")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data, args.model, args.work)))
        return
    with tempfile.TemporaryDirectory(dir=ROOT / "data" / "bench") as tmp:
        work = Path(tmp)
        data, model = prepare(args.customers, work)
        results = {
            mode: run(mode, data, model, work) for mode in ("features", "raw", "precomputed")
        }
    raw, pre, feat = results["raw"], results["precomputed"], results["features"]
    print(f"{args.customers:,} customers, as of {AS_OF}; {raw['rows']:,.0f} in the population")
    for name, r in (
        ("features only", feat),
        ("score, raw events", raw),
        ("score, precomputed", pre),
    ):
        print(f"{name:<20} {r['seconds']:6.1f}s  peak {r['peak_rss_mib']:,.0f} MiB")
    steps = (
        "load_data_s",
        "features_and_scores_s",
        "scores_file_s",
        "drift_s",
        "interventions_s",
        "write_s",
    )
    print("raw-events steps     " + ", ".join(f"{k[:-2]} {raw[k]:.1f}s" for k in steps))
    print(
        f"ratios               raw / precomputed {raw['seconds'] / pre['seconds']:.2f}x; "
        f"raw / features only {raw['seconds'] / feat['seconds']:.2f}x; "
        f"{raw['listed']:,.0f} customers listed"
    )


if __name__ == "__main__":
    main()

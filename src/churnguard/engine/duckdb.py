"""Running Ibis expressions on the embedded DuckDB engine and writing their results atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow.parquet as pq

from churnguard.features import FeaturePlan


def write_parquet(
    expr: ir.Table, backend: ibis.BaseBackend, path: Path, *, plan: FeaturePlan | None = None
) -> int:
    """Write ``expr`` to ``path`` as Parquet, streamed by DuckDB; the file appears when complete.

    The feature descriptions of ``plan`` travel in the file's key-value metadata under
    ``churnguard.features``, so a feature file explains itself. Returns the number of rows.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    options: dict[str, object] = {"compression": "zstd"}
    if plan is not None:
        specs = [
            {"name": s.name, "description": s.description, "stat": s.stat, "kind": s.kind}
            for s in plan.specs
        ]
        options["kv_metadata"] = {"churnguard.features": json.dumps(specs)}
    try:
        backend.to_parquet(expr, tmp, **options)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return pq.read_metadata(path).num_rows


def feature_metadata(path: Path) -> list[dict[str, str]]:
    """The feature descriptions stored in a feature file written by :func:`write_parquet`."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(b"churnguard.features")
    return json.loads(raw) if raw else []

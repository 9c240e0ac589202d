"""Query engines: DuckDB embedded (the default) and Spark (``[engine] name = "spark"``).

Both run the same Ibis feature definitions; this module picks the writer for a dataset's engine
and reads back what a feature file says about its columns.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from churnguard.config import EngineConfig
from churnguard.contract import Dataset
from churnguard.features import FeaturePlan, normalize_as_of

#: Key of the feature descriptions in a feature file's Parquet metadata ...
FEATURES_KEY = "churnguard.features"
#: ... and the file holding them inside a feature folder written by Spark.
FEATURES_SIDECAR = "_churnguard_features.json"


def write_features(
    dataset: Dataset,
    path: Path,
    *,
    as_of: Sequence[dt.date | dt.datetime | str],
    plan: FeaturePlan,
    engine: EngineConfig = EngineConfig(),
) -> int:
    """Build the features of ``plan`` at each as-of date and write them to ``path``.

    DuckDB writes one Parquet file, Spark a folder of Parquet parts (both read as one table by
    pandas, pyarrow, DuckDB and Spark). Rows are ordered by customer_id, then as-of date.
    Returns the number of rows.
    """
    dates = normalize_as_of(as_of)
    if dataset.engine == "spark":
        from churnguard.engine import spark

        return spark.write_features(dataset, path, dates, plan)
    from churnguard.engine import duckdb

    return duckdb.write_features(dataset, path, dates, plan, engine)


def feature_metadata(path: Path) -> list[dict[str, str]]:
    """The feature descriptions stored with a feature file or folder written by churnguard."""
    if path.is_dir():
        sidecar = path / FEATURES_SIDECAR
        return json.loads(sidecar.read_text("utf-8")) if sidecar.exists() else []
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(FEATURES_KEY.encode())
    return json.loads(raw) if raw else []

"""Feature files: the features of a plan at some as-of dates, written for other tools to read.

A feature file explains itself: the name, description, statistic and kind of each feature
travel with it (inside the Parquet file, or beside the parts of a folder written by Spark).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from churnguard.asof import AsOf, normalize_as_of
from churnguard.contract import Dataset
from churnguard.engine import sidecar_name
from churnguard.features import FeaturePlan, feature_pieces

#: Key of the feature descriptions in a feature file's metadata.
FEATURES_KEY = "churnguard.features"


def write_features(
    dataset: Dataset, path: Path, *, as_of: Sequence[AsOf], plan: FeaturePlan
) -> int:
    """Build the features of ``plan`` at each as-of date and write them to ``path``.

    DuckDB writes one Parquet file, Spark a folder of Parquet parts (both read as one table by
    pandas, pyarrow, DuckDB and Spark). Rows are ordered by customer_id, then as-of date. A
    build too large for the engine's memory runs in ranges of customer_id, one at a time.
    Returns the number of rows.
    """
    pieces = feature_pieces(dataset, normalize_as_of(as_of), plan)
    return dataset.engine.write_parquet(pieces, path, {FEATURES_KEY: plan.to_json()})


def feature_metadata(path: Path) -> list[dict[str, str]]:
    """The feature descriptions stored with a feature file or folder written by churnguard."""
    if path.is_dir():
        sidecar = path / sidecar_name(FEATURES_KEY)
        return json.loads(sidecar.read_text("utf-8")) if sidecar.exists() else []
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(FEATURES_KEY.encode())
    return json.loads(raw) if raw else []

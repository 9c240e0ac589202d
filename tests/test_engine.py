"""The DuckDB runner: partitioned builds give the same file as one pass, written atomically."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

import churnguard as cg
from churnguard.config import EngineConfig
from churnguard.engine import feature_metadata, write_features
from churnguard.engine.duckdb import partitions_needed
from churnguard.errors import ConfigError
from conftest import write_dataset


def test_a_build_split_into_customer_ranges_equals_one_pass(tmp_path):
    cg.generate(tmp_path / "data", customers=400, days=200, seed=2)
    dataset = cg.load_dataset(tmp_path / "data")
    plan = cg.plan_features(dataset)
    dates = [dt.date(2024, 5, 1), dt.date(2024, 6, 1)]
    small = EngineConfig(memory_limit="200KB")
    assert partitions_needed(800, len(plan.specs) + 2, small) > 1

    whole = write_features(dataset, tmp_path / "whole.parquet", as_of=dates, plan=plan)
    split = write_features(
        dataset, tmp_path / "split.parquet", as_of=dates, plan=plan, engine=small
    )
    assert whole == split > 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "whole.parquet"), pd.read_parquet(tmp_path / "split.parquet")
    )
    assert feature_metadata(tmp_path / "split.parquet") == feature_metadata(
        tmp_path / "whole.parquet"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "split.parquet", "whole.parquet"]


def test_a_failed_build_leaves_no_file(tmp_path, shop, monkeypatch):
    dataset = cg.load_dataset(write_dataset(tmp_path / "d", **shop))
    plan = cg.plan_features(dataset)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(dataset.backend, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        write_features(dataset, tmp_path / "f.parquet", as_of=["2025-03-01"], plan=plan)
    assert not any(p.name.startswith((".f.parquet", "f.parquet")) for p in tmp_path.iterdir())


def test_memory_limits_are_read_in_bytes_and_nonsense_is_refused():
    assert EngineConfig(memory_limit="2GB").memory_limit_bytes() == 2_000_000_000
    assert EngineConfig(memory_limit="1.5GiB").memory_limit_bytes() == 1_610_612_736
    with pytest.raises(ConfigError, match="engine.memory_limit must be a size like 1500MB"):
        EngineConfig(memory_limit="lots")

"""The DuckDB runner: partitioned builds give the same file as one pass, written atomically."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from importlib import metadata

import duckdb
import pandas as pd
import pytest

import churnguard as cg
from churnguard.config import DataConfig, EngineConfig, SparkConfig, load_config
from churnguard.engine import duckdb as duckdb_engine
from churnguard.engine.duckdb import partitions_needed
from churnguard.errors import ConfigError, EngineError
from churnguard.feature_files import feature_metadata, write_features
from churnguard.io import atomic_path
from conftest import write_dataset


def test_a_build_split_into_customer_ranges_equals_one_pass(tmp_path):
    cg.generate(tmp_path / "data", customers=400, days=200, seed=2)
    dataset = cg.load_dataset(tmp_path / "data")
    plan = cg.plan_features(dataset)
    dates = [dt.date(2024, 5, 1), dt.date(2024, 6, 1)]
    small = EngineConfig(memory_limit="200KB")
    assert partitions_needed(800, len(plan.specs) + 2, small) > 1

    whole = write_features(dataset, tmp_path / "whole.parquet", as_of=dates, plan=plan)
    dataset.engine.pieces = lambda rows, columns: 3  # as a tight memory limit would ask
    split = write_features(dataset, tmp_path / "split.parquet", as_of=dates, plan=plan)
    assert whole == split > 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "whole.parquet"), pd.read_parquet(tmp_path / "split.parquet")
    )
    assert feature_metadata(tmp_path / "split.parquet") == feature_metadata(
        tmp_path / "whole.parquet"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "split.parquet", "whole.parquet"]


def test_ranges_bound_hostile_ids_as_values_and_leave_no_view_behind(tmp_path, shop):
    """Each range's bounds are customer ids from the data, set as bound parameters: quotes and
    SQL in them split the build like any id, and nothing of the ranges stays in DuckDB."""
    ids = {"A": "A'); DROP VIEW events; --", "B": 'B" OR 1=1 --', "C": "C getvariable('x')"}
    hostile = {name: table.replace({"customer_id": ids}) for name, table in shop.items()}
    dataset = cg.load_dataset(write_dataset(tmp_path / "d", **hostile))
    plan = cg.plan_features(dataset)
    dates = ["2025-02-01", "2025-03-01"]
    write_features(dataset, tmp_path / "whole.parquet", as_of=dates, plan=plan)
    dataset.engine.pieces = lambda rows, columns: 3  # one range a customer
    write_features(dataset, tmp_path / "split.parquet", as_of=dates, plan=plan)

    split = pd.read_parquet(tmp_path / "split.parquet")
    assert set(split["customer_id"]) == {ids["A"], ids["B"]}  # C signs up after both dates
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "whole.parquet"), split)
    assert not _left_behind(dataset.engine.con)


def test_a_failed_build_leaves_no_file(tmp_path, shop, monkeypatch):
    dataset = cg.load_dataset(write_dataset(tmp_path / "d", **shop))
    plan = cg.plan_features(dataset)

    def broken(self, table, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(duckdb_engine.pq.ParquetWriter, "write_batch", broken)
    dataset.engine.pieces = lambda rows, columns: 2
    with pytest.raises(OSError, match="disk full"):
        write_features(dataset, tmp_path / "f.parquet", as_of=["2025-03-01"], plan=plan)
    assert not any(p.name.startswith((".f.parquet", "f.parquet")) for p in tmp_path.iterdir())
    assert not _left_behind(dataset.engine.con)


def _left_behind(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """The views and variables a build made in DuckDB and did not drop."""
    views = "SELECT view_name FROM duckdb_views() WHERE starts_with(view_name, '_churnguard')"
    return con.sql(views).fetchall() + con.sql("SELECT name FROM duckdb_variables()").fetchall()


@pytest.mark.parametrize("sort_fits", [True, False])
def test_duplicate_rows_are_counted_when_the_sorted_count_runs_out_of_memory(
    tmp_path, shop, monkeypatch, sort_fits
):
    # one event three times and another twice: three rows repeat an earlier one
    events = shop["events"]
    folder = write_dataset(
        tmp_path / "d", **(shop | {"events": pd.concat([events, events.iloc[[0, 0, 1]]])})
    )
    if not sort_fits:
        run = duckdb_engine.execute_one

        def short_of_memory(con, sql, params=None):
            if "lag(" in sql:
                raise duckdb.OutOfMemoryException("failed to allocate data of size 256.0 MiB")
            return run(con, sql, params)

        monkeypatch.setattr(duckdb_engine, "execute_one", short_of_memory)
    dataset = cg.load_dataset(DataConfig(path=folder, duplicates="drop"))
    assert dataset.dropped["events"] == 3
    assert dataset.table("events").count().execute() == len(events)


def test_memory_limits_are_read_in_bytes_and_nonsense_is_refused():
    assert EngineConfig(memory_limit="2GB").memory_limit_bytes() == 2_000_000_000
    assert EngineConfig(memory_limit="1.5GiB").memory_limit_bytes() == 1_610_612_736
    with pytest.raises(ConfigError, match="engine.memory_limit must be a size like 1500MB"):
        EngineConfig(memory_limit="lots")


def test_the_spark_engine_without_pyspark_or_java_says_what_to_install(monkeypatch, tmp_path):
    from churnguard.engine import spark

    monkeypatch.setitem(sys.modules, "pyspark.sql", None)  # as if the extra were not installed
    with pytest.raises(EngineError, match=r"needs PySpark: pip install 'churnguard\[spark\]'"):
        spark.session(SparkConfig(master="local[1]"))
    monkeypatch.delitem(sys.modules, "pyspark.sql")

    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(EngineError, match="needs Java 17 or later and none was found: install"):
        spark.check_java()
    old = tmp_path / "jdk8" / "bin"
    old.mkdir(parents=True)
    (old / "java").write_text("#!/bin/sh\necho 'openjdk version \"1.8.0_392\"' >&2\n")
    (old / "java").chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(old.parent))
    with pytest.raises(EngineError, match="needs Java 17 or later, .* is 'openjdk version"):
        spark.check_java()


def test_the_core_install_does_not_pull_pyspark():
    needs = [r for r in metadata.requires("churnguard") if "spark" in r]
    assert needs and all(r.replace('"', "'").endswith("extra == 'spark'") for r in needs)


def test_the_engine_is_chosen_in_config_or_on_the_command_line(tmp_path):
    config = tmp_path / "p.toml"
    config.write_text('[engine]\nname = "spark"\n[engine.spark]\nconf = { "a.b" = 4 }\n')
    loaded = load_config(config)
    assert loaded.engine.name == "spark" and loaded.engine.spark.conf == {"a.b": "4"}
    assert load_config(config, {"engine.name": "duckdb"}).engine.name == "duckdb"
    config.write_text('[engine]\nname = "presto"\n')
    with pytest.raises(ConfigError, match="engine.name must be one of duckdb | spark"):
        load_config(config)


def test_threads_are_bounded_by_the_machine_and_negative_ones_refused():
    cores = os.cpu_count() or 1
    assert EngineConfig(threads=100_000).thread_count() == cores
    assert EngineConfig().thread_count() == cores
    assert EngineConfig(threads=1).thread_count() == 1
    with pytest.raises(ConfigError, match="engine.threads must be >= 0"):
        EngineConfig(threads=-3)


def test_a_killed_run_s_temporary_files_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "features.parquet"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    stale = [
        tmp_path / f".features.parquet.{pid}.tmp",
        tmp_path / f".features.parquet.{pid}.part0",
    ]
    for path in stale:
        path.write_text("left by a killed run")
    live = tmp_path / f".features.parquet.{os.getpid()}.part9"
    live.write_text("being written")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert not any(p.exists() for p in stale) and live.exists()

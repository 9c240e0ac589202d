"""The Spark engine in local mode gives what the DuckDB engine gives: same features, same
training rows, same scores, the same intervention list byte for byte, the same error messages.

Skipped, with the reason, without PySpark (``pip install -e '.[dev,spark]'``) or Java 17+;
CI sets CHURNGUARD_REQUIRE_SPARK=1 so that there a missing Spark fails instead.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
from typer.testing import CliRunner

import churnguard as cg
from churnguard.cli import app
from churnguard.config import EngineConfig, SparkConfig, load_config
from churnguard.errors import EngineError
from churnguard.feature_files import feature_metadata
from conftest import write_dataset, write_learned_effects
from test_contract import CASES, broken_dataset, expect_error, with_treatments

try:
    import pyspark  # noqa: F401

    from churnguard.engine.spark import check_java

    check_java()
except (ImportError, EngineError) as exc:
    reason = f"Spark engine unavailable: {exc}"
    if os.environ.get("CHURNGUARD_REQUIRE_SPARK"):
        raise RuntimeError(reason) from None
    pytest.skip(reason, allow_module_level=True)

runner = CliRunner()
SPARK = EngineConfig(name="spark", spark=SparkConfig(master="local[2]"))
AS_OF = "2025-01-20"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Generated data and a model trained on it with DuckDB: (data folder, registry)."""
    root = tmp_path_factory.mktemp("spark")
    folder = root / "data"
    cg.generate(folder, customers=1_500, days=420, seed=5)
    registry = root / "models"
    cg.train(_config(folder, registry, "duckdb"))
    return folder, registry


def _config(folder, registry, engine: str, **extra):
    return load_config(
        None,
        {
            "data.path": folder,
            "model.registry": registry,
            "churn.definition": "subscription",
            "train.start": "2024-04-01",
            "train.end": "2024-12-20",
            "train.every_days": 28,
            "engine.name": engine,
            "engine.spark": {"master": "local[2]"},
            **extra,
        },
    )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["customer_id", "as_of"]).reset_index(drop=True)


def test_spark_features_equal_duckdb_features(data, tmp_path):
    folder, _ = data
    duck = cg.load_dataset(folder, definition="subscription")
    spark = cg.load_dataset(folder, definition="subscription", engine=SPARK)
    assert spark.attributes == duck.attributes
    assert spark.summary() == duck.summary()
    plan = cg.plan_features(spark)
    assert plan == cg.plan_features(duck)

    dates = ["2024-09-01", "2024-12-01"]
    expected = _sorted(cg.build_features(duck, as_of=dates, plan=plan).to_pandas())
    got = _sorted(cg.build_features(spark, as_of=dates, plan=plan).to_pandas())
    assert len(got) > 1_000
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-9)

    out = tmp_path / "features.parquet"
    args = ["features", "--data", str(folder), "--out", str(out), "--engine", "spark"]
    result = runner.invoke(app, [*args, *(a for d in dates for a in ("--as-of", d))])
    assert result.exit_code == 0, result.output
    assert out.is_dir()  # Spark writes a folder of parts, read as one table
    written = pd.read_parquet(out)
    assert written["customer_id"].is_monotonic_increasing
    pd.testing.assert_frame_equal(
        _sorted(written), expected, check_dtype=False, check_categorical=False, rtol=1e-9
    )
    assert [f["name"] for f in feature_metadata(out)] == plan.names


def test_spark_training_rows_and_their_sample_equal_duckdb(data):
    folder, registry = data
    frames = {}
    for engine in ("duckdb", "spark"):
        config = _config(folder, registry, engine, **{"train.sample_fraction": 0.5})
        dataset = cg.load_dataset(config.data, definition="subscription", engine=config.engine)
        frames[engine] = cg.training_frames(dataset, train=config.train, churn=config.churn)
    (fit_d, valid_d, _), (fit_s, valid_s, _) = frames["duckdb"], frames["spark"]
    pd.testing.assert_frame_equal(_sorted(fit_s), _sorted(fit_d), check_dtype=False, rtol=1e-9)
    pd.testing.assert_frame_equal(_sorted(valid_s), _sorted(valid_d), check_dtype=False, rtol=1e-9)
    # half the customers' training rows, every validation row
    full = _config(folder, registry, "duckdb")
    everyone, all_valid, _ = cg.training_frames(
        cg.load_dataset(folder, definition="subscription"), train=full.train, churn=full.churn
    )
    share = fit_d["customer_id"].nunique() / everyone["customer_id"].nunique()
    assert 0.4 < share < 0.6
    assert set(fit_d["customer_id"]) < set(everyone["customer_id"])
    pd.testing.assert_frame_equal(valid_d, all_valid)


@pytest.mark.parametrize(
    "limits",
    [{"score.top_n": 40}, {"score.budget": 800.0}, {}, {"score.effects": "learned"}],
)
def test_spark_scoring_writes_the_same_list_and_scores(data, tmp_path, limits):
    folder, registry = data
    if "score.effects" in limits:
        write_learned_effects(tmp_path / "effects.json", promote=True)
        limits = {**limits, "score.effects_path": tmp_path / "effects.json"}
    runs = {}
    for engine in ("duckdb", "spark"):
        config = _config(folder, registry, engine, **limits)
        runs[engine] = cg.score(config, as_of=AS_OF, out=tmp_path / engine)
    duck, spark = runs["duckdb"], runs["spark"]
    assert (tmp_path / "spark" / "interventions.csv").read_bytes() == (
        tmp_path / "duckdb" / "interventions.csv"
    ).read_bytes()
    assert len(spark.interventions) > 0
    pd.testing.assert_frame_equal(spark.scores, duck.scores)
    decisions = [pd.read_csv(tmp_path / e / "assignments.csv") for e in ("duckdb", "spark")]
    pd.testing.assert_frame_equal(*(d.drop(columns="run_id") for d in decisions))
    for key in ("rows", "risk_tiers", "value_at_risk_total", "expected_benefit_total"):
        assert spark.manifest[key] == duck.manifest[key]
    assert spark.manifest["engine"] == "spark"
    assert spark.manifest["drift"]["score"] == pytest.approx(duck.manifest["drift"]["score"])


def test_a_feature_folder_written_by_spark_scores_on_duckdb(data, tmp_path):
    folder, registry = data
    features = tmp_path / "features.parquet"
    args = ["features", "--data", str(folder), "--as-of", AS_OF, "--out", str(features)]
    assert runner.invoke(app, [*args, "--engine", "spark"]).exit_code == 0
    config = _config(folder, registry, "duckdb", **{"score.top_n": 40})
    from_folder = cg.score(config, as_of=AS_OF, out=tmp_path / "a", features=features)
    from_events = cg.score(config, as_of=AS_OF, out=tmp_path / "b")
    pd.testing.assert_frame_equal(from_folder.interventions, from_events.interventions)


def test_spark_scoring_through_the_cli(data, tmp_path):
    folder, registry = data
    config = tmp_path / "nightly.toml"
    config.write_text(
        f'[data]\npath = "{folder}"\n[model]\nregistry = "{registry}"\n'
        f'[score]\nout = "{tmp_path}/out/{{as_of}}"\ntop_n = 25\n'
        '[engine]\nname = "spark"\n[engine.spark]\nmaster = "local[2]"\n'
    )
    result = runner.invoke(app, ["score", "--config", str(config), "--as-of", AS_OF, "-q"])
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(tmp_path / "out" / AS_OF / "interventions.csv")
    decisions = pd.read_csv(tmp_path / "out" / AS_OF / "assignments.csv")
    assert len(decisions) == 25  # top_n cuts the decisions; the holdout is not contacted
    assert list(listed["rank"]) == list(range(1, (decisions["group"] == "treated").sum() + 1))


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_spark_refuses_bad_input_with_the_duckdb_message(tmp_path, shop, case):
    folder, message = broken_dataset(tmp_path, shop, case)
    expect_error(folder, tmp_path, message, "--engine", "spark")


def test_spark_refuses_a_path_it_would_read_as_a_pattern(tmp_path, shop):
    folder = write_dataset(tmp_path / "dset[1]", **shop)
    expect_error(
        folder,
        tmp_path,
        f"{folder}/customers.csv: holds glob characters ([ ] * ? {{ }}), which Spark reads as a "
        "pattern; rename the file or folder",
        "--engine",
        "spark",
    )


def test_spark_never_replaces_a_folder_it_did_not_write(data, tmp_path):
    folder, _ = data
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    args = ["features", "--data", str(folder), "--as-of", AS_OF, "--out", str(mine)]
    result = runner.invoke(app, [*args, "--engine", "spark"])
    assert result.exit_code == 2, result.output
    assert "holding files Spark did not write (notes.txt)" in result.output
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_spark_reads_and_checks_treatments_as_duckdb_does(tmp_path, shop):
    tables = with_treatments(shop)
    folder = write_dataset(tmp_path / "ok", **tables)
    names = ("support escalation", "re-engagement e-mail", "feedback survey")
    read = {
        engine: cg.load_dataset(folder, engine=config, interventions=names)
        .table("treatments")
        .order_by(["customer_id", "as_of"])
        .to_pandas()
        for engine, config in (("duckdb", EngineConfig()), ("spark", SPARK))
    }
    pd.testing.assert_frame_equal(read["duckdb"], read["spark"], check_dtype=False)
    for column, value in (("group", "control"), ("as_of", "2025-03-01"), ("intervention", "x")):
        bad = with_treatments(shop)
        bad["treatments"] = bad["treatments"].astype(object)
        bad["treatments"].loc[2, column] = value
        where = write_dataset(tmp_path / column, **bad)
        said = []
        for config in (EngineConfig(), SPARK):
            with pytest.raises(cg.DataContractError) as caught:
                cg.load_dataset(where, engine=config, interventions=names)
            said.append(str(caught.value))
        assert said[0] == said[1]

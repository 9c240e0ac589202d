"""Pipeline config: defaults, file, overrides, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnguard.config import load_config
from churnguard.errors import ConfigError


def test_the_demo_config_loads_and_cli_overrides_win():
    cfg = load_config(
        Path("pipelines/demo.toml"), {"data.path": "elsewhere", "churn.horizon_days": None}
    )
    assert cfg.data.path == Path("elsewhere")
    assert cfg.churn.definition == "subscription" and cfg.churn.horizon_days == 30
    assert cfg.features.windows == (7, 30, 90)


def test_equal_configs_have_equal_fingerprints():
    assert load_config().fingerprint() == load_config().fingerprint()
    assert (
        load_config().fingerprint() != load_config(None, {"churn.horizon_days": 60}).fingerprint()
    )


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "[churn]\ndefinition = 'silence'\n",
            "churn.definition must be one of inactivity | subscription | labels, got 'silence'",
        ),
        ("[churn]\nhorizon_days = '30'\n", "churn.horizon_days must be a whole number, got '30'"),
        ("[churn]\nhorizon_days = 0\n", "churn.horizon_days must be at least 1, got 0"),
        ("[features]\nwindows = [30, 30]\n", "features.windows has repeats: [30, 30]"),
        ("[models]\nname = 'x'\n", "unknown key 'models' in top level"),
        ("[churn\n", "is not valid TOML"),
    ],
)
def test_bad_configs_are_refused_with_the_key_named(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("|", r"\|")):
        load_config(path)


def test_the_spark_pipeline_switches_only_the_engine():
    spark, nightly = load_config("pipelines/spark.toml"), load_config("pipelines/nightly.toml")
    assert spark.engine.name == "spark" and spark.engine.spark.master == "local[2]"
    assert spark.engine.spark.conf["spark.driver.memory"] == "4g"
    assert (spark.data, spark.model) == (nightly.data, nightly.model)
    assert (spark.score.top_n, spark.score.budget) == (nightly.score.top_n, nightly.score.budget)

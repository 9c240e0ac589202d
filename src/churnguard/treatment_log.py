"""Outcomes written back: what happened to every customer a list decided about.

:func:`outcomes` gathers the decisions (the dataset's ``treatments`` table, or every
``assignments.csv`` of past nightly runs), keeps those whose horizon has ended, labels each
under the model's churn definition at its own as-of date and writes the treatment log: one
row per decision with ``churned``. From the log it measures, per intervention, the churn the
treated group saved against its randomised holdout (see :mod:`churnguard.measure`), and per
past list whether the risk it predicted came true (on the holdout, whom nothing changed).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnguard.config import ChurnConfig, PipelineConfig, config_from_dict, run_catalogue
from churnguard.contract import Dataset, load_dataset, load_decisions
from churnguard.errors import ConfigError, DataContractError, ModelRegistryError
from churnguard.io import atomic_path
from churnguard.labels import build_labels, data_end
from churnguard.logs import Stages
from churnguard.measure import effects_by_intervention
from churnguard.registry import find_model, read_metadata

#: The columns of the treatment log, in order.
LOG_COLUMNS = (
    "customer_id",
    "as_of",
    "intervention",
    "group",
    "cost",
    "propensity",
    "run_id",
    "churn_probability",
    "customer_value",
    "expected_benefit",
    "churned",
)
#: Key of the log's Parquet metadata: the churn definition its labels follow.
LOG_KEY = b"churnguard.treatment_log"


@dataclass(frozen=True)
class Outcomes:
    """A treatment log and what it measures."""

    path: Path
    log: pd.DataFrame
    #: Per intervention: treated, holdout, churn in each, saving and its 95 % interval.
    effects: pd.DataFrame
    #: Per list date and risk tier (holdout rows with a score): predicted and realised churn.
    calibration: pd.DataFrame
    churn: ChurnConfig
    #: Where the churn definition came from: a model folder, or the config.
    churn_source: str
    #: Decisions whose horizon has not ended by ``until``.
    pending: int
    #: Decisions about customers outside the churn population at their date (already gone).
    unlabelled: int
    until: dt.date


def outcomes(
    config: PipelineConfig,
    *,
    out: Path | str,
    scores: Path | str | None = None,
    until: dt.date | None = None,
    model: str | Path | None = None,
) -> Outcomes:
    """Label past decisions and write the treatment log to ``out`` (Parquet).

    Parameters
    ----------
    scores : a folder of nightly runs: every ``assignments.csv`` under it is read; default:
        the dataset's ``treatments`` table.
    until : count a decision only if its horizon has ended by this date; default (and at
        most) where the data ends.
    model : the model whose churn definition labels the decisions; default ``[model]
        version`` (the champion), or the config's ``[churn]`` when no model has been saved.

    Raises
    ------
    DataContractError
        A decisions file or table breaks the contract, two runs decided differently about the
        same customer and date, or there are no decisions.
    """
    say = Stages()
    say("loading the decisions and the data")
    churn, source = _churn(config, model)
    names = [i.name for i in run_catalogue(config)]
    dataset = load_dataset(
        config.data, definition=churn.definition, engine=config.engine, interventions=names
    )
    decisions = _decisions(dataset, Path(scores) if scores is not None else None, names)
    end, _ = data_end(dataset, churn=churn)
    last = end.date() if end is not None else dt.date.max
    until = min(until, last) if until is not None else last
    horizon = dt.timedelta(days=churn.horizon_days)
    ready = (
        decisions
        if churn.definition == "labels"
        else decisions[decisions["as_of"] + horizon <= pd.Timestamp(until)]
    )
    say.rows = len(decisions)
    say("labelling the decisions whose horizon has ended")
    log = _labelled(dataset, ready, churn)
    say.rows = len(log)
    log_table = pa.Table.from_pandas(log, preserve_index=False)
    meta = {"definition": churn.definition, "horizon_days": churn.horizon_days, "from": source}
    log_table = log_table.replace_schema_metadata({LOG_KEY: json.dumps(meta).encode()})
    out = Path(out)
    with atomic_path(out) as tmp:
        pq.write_table(log_table, tmp, compression="zstd")
    say.done()
    return Outcomes(
        path=out,
        log=log,
        effects=effects_by_intervention(log),
        calibration=calibration(log, config),
        churn=churn,
        churn_source=source,
        pending=len(decisions) - len(ready),
        unlabelled=len(ready) - len(log),
        until=until,
    )


def calibration(log: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """Per list date and risk tier, the holdout's mean predicted churn against its realised
    churn: the holdout is who the list picked, left alone, so it shows whether the risk the
    list predicted came true."""
    kept = log[(log["group"] == "holdout") & log["churn_probability"].notna()]
    columns = ["as_of", "risk_tier", "customers", "predicted", "realised"]
    if kept.empty:
        return pd.DataFrame(columns=columns)
    tier = config.score.risk_tiers(kept["churn_probability"].to_numpy(float))
    grouped = kept.assign(risk_tier=tier).groupby(["as_of", "risk_tier"], sort=True)
    return grouped.agg(
        customers=("churned", "size"),
        predicted=("churn_probability", "mean"),
        realised=("churned", "mean"),
    ).reset_index()[columns]


def _churn(config: PipelineConfig, model: str | Path | None) -> tuple[ChurnConfig, str]:
    """The churn definition of the model (the config's own when none is saved yet)."""
    try:
        folder = find_model(model, config.model)
    except ModelRegistryError:
        if model is not None:
            raise
        return config.churn, "config"
    trained = config_from_dict(read_metadata(folder)["config"], source=f"{folder}/metadata.json")
    return trained.churn, str(folder)


def _decisions(dataset: Dataset, scores: Path | None, names: list[str]) -> pd.DataFrame:
    """Every decision, from the runs under ``scores`` or the ``treatments`` table; propensity
    filled from a run's manifest (its holdout share) where the file has none."""
    if scores is None:
        if not dataset.has("treatments"):
            raise ConfigError(
                f"{dataset.tables['customers'].path.parent}: no treatments table; give the "
                "decisions as a treatments table or pass --scores with a folder of nightly runs"
            )
        frame = dataset.table("treatments").to_pandas()
    else:
        if not scores.is_dir():
            raise ConfigError(f"{scores}: not a folder of scoring runs")
        files = sorted(scores.rglob("assignments.csv"))
        if not files:
            raise DataContractError(f"{scores}: no assignments.csv in any run under it")
        frame = load_decisions(dataset, files, names).to_pandas()
        frame["propensity"] = _propensities(frame, files)
        key = ["customer_id", "as_of"]
        frame = frame.drop_duplicates([*key, "run_id"])  # re-runs of one night write the same
        clash = frame[frame.duplicated(key, keep=False)]
        if not clash.empty:
            first = clash.iloc[0]
            where = sorted(
                {str(files[int(k)]) for k in clash.loc[clash[key[0]] == first[key[0]], "source"]}
            )
            raise DataContractError(
                f"{where[0]}: customer {first['customer_id']!r} has decisions of two runs for "
                f"{first['as_of'].date()} (also in {where[-1]}); keep one run per night"
            )
        frame = frame.drop(columns="source")
    if frame.empty:
        raise DataContractError("no decisions to label")
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.tz_localize(None).dt.normalize()
    return frame.sort_values(["as_of", "customer_id"], kind="stable").reset_index(drop=True)


def _propensities(frame: pd.DataFrame, files: list[Path]) -> np.ndarray:
    """Each decision's chance of its group: the file's own, else from its run's manifest."""
    shares = {k: _holdout_share(path.parent / "manifest.json") for k, path in enumerate(files)}
    share = frame["source"].map(shares).to_numpy(float)
    own = frame["propensity"].to_numpy(float)
    filled = np.where(frame["group"] == "holdout", share, 1 - share)
    return np.where(np.isnan(own), filled, own)


def _holdout_share(manifest: Path) -> float:
    """A run's holdout share from its manifest (NaN when it has none to give)."""
    try:
        share = json.loads(manifest.read_text("utf-8")).get("holdout")
    except (OSError, ValueError, AttributeError):
        return math.nan
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
        return math.nan
    return float(share)


def _labelled(dataset: Dataset, decisions: pd.DataFrame, churn: ChurnConfig) -> pd.DataFrame:
    """The decisions with ``churned`` at their own as-of date; customers outside the
    population at that date (gone before the list) drop out."""
    if decisions.empty:
        return pd.DataFrame({c: [] for c in LOG_COLUMNS})
    dates = sorted(decisions["as_of"].unique())
    labels = build_labels(
        dataset, as_of=[pd.Timestamp(d).to_pydatetime() for d in dates], churn=churn
    )
    labels = labels.to_pandas()
    labels["as_of"] = pd.to_datetime(labels["as_of"]).dt.tz_localize(None)
    labels["customer_id"] = labels["customer_id"].astype(str)
    frame = decisions.assign(customer_id=decisions["customer_id"].astype(str))
    log = frame.merge(labels, on=["customer_id", "as_of"], how="inner")
    log["as_of"] = log["as_of"].dt.date
    log["churned"] = log["churned"].astype("int8")
    return log[list(LOG_COLUMNS)]

"""Nightly batch scoring: every customer in the population, ranked interventions, a manifest.

:func:`score` loads a saved model (hashes checked), builds its features for the population at
the as-of date (or reads precomputed ones), and writes to the out folder:

* ``scores.parquet``: every scored customer, ``customer_id, churn_probability, risk_tier,
  customer_value, value_at_risk, lifetime_months, as_of, model_version``, ordered by
  customer_id (with the Spark engine a folder of Parquet parts, written in the cluster);
* ``interventions.csv``: the customers to contact, ranked by expected benefit, with three
  reasons and the intervention chosen (columns: :data:`LIST_COLUMNS`);
* ``assignments.csv``: every decision of the list, ``treated`` (on ``interventions.csv``) or
  ``holdout`` (kept back at random, ``[score] holdout``, to measure the interventions by; see
  :mod:`churnguard.assignment`);
* ``manifest.json``: as-of date, run id, model version and hashes, input hashes, row counts,
  drift, warnings and timings.

The run is written into a hidden sibling folder and switched in by renaming, so the out folder
holds one complete run or the previous one, never a mix (a kill between the two renames leaves
it absent, with the previous run beside it). The same as-of date, model and data give the same
bytes in the three data files; only the manifest's timings change. A lock on the resolved path
keeps two runs from writing the same out folder at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from churnguard import drift
from churnguard.asof import one_as_of
from churnguard.assignment import assign
from churnguard.config import (
    ChurnConfig,
    DriftConfig,
    InterventionConfig,
    PipelineConfig,
    ScoreConfig,
    ValueConfig,
    config_from_dict,
    run_catalogue,
)
from churnguard.contract import Dataset, load_dataset, table_paths
from churnguard.engine import Ranges
from churnguard.errors import ChurnguardError, ConfigError, DataContractError
from churnguard.features import FeaturePlan, feature_pieces, plan_features, sampled
from churnguard.history import History, contract_loader, digest, earlier_runs
from churnguard.interventions import (
    BEST_CASE,
    LIST_COLUMNS,
    best_cases,
    build_list,
    check_conditions,
    condition_columns,
)
from churnguard.io import (
    atomic_folder,
    data_files,
    listing_sha256,
    sha256_file,
    sha256_path,
)
from churnguard.labels import data_end, far_rows_warning, population
from churnguard.logs import Stages, set_run
from churnguard.model import ChurnModel
from churnguard.policy import Effects
from churnguard.registry import check_schema, find_model, load_model, read_metadata
from churnguard.spreadsheet import write_csv, write_xlsx
from churnguard.value import (
    MAX_MONTHS,
    charged,
    customer_value,
    expected_lifetime_months,
    purchase_history,
    purchase_prior,
)

log = logging.getLogger("churnguard.scoring")

__all__ = ["LIST_COLUMNS", "SCORE_COLUMNS", "ScoreRun", "score"]

#: What :func:`score_rows` computes per customer.
ROW_COLUMNS = (
    "customer_id",
    "churn_probability",
    "risk_tier",
    "customer_value",
    "value_at_risk",
    "lifetime_months",
)
#: The columns of ``scores.parquet``: the rows, stamped with the run's date and model, so that
#: nightly files stack into a history.
SCORE_COLUMNS = (*ROW_COLUMNS, "as_of", "model_version")
#: Rows of the scored population read to measure drift (PSI) on: a sample by customer_id hash
#: beyond this, the same on every engine.
DRIFT_SAMPLE_ROWS = 200_000
#: What a run writes; an out folder holding anything else is not replaced.
RUN_FILES = ("interventions.csv", "assignments.csv", "scores.parquet", "manifest.json")
#: First characters that make a spreadsheet read a cell as a formula or break its row,
#: full-width forms included.
Progress = Callable[[str], None]


@dataclass
class ScoreRun:
    """What a scoring run wrote and found."""

    out: Path
    interventions: pd.DataFrame
    manifest: dict[str, Any]

    @property
    def scores(self) -> pd.DataFrame:
        """Every scored customer, read from ``scores.parquet`` (a folder of parts with Spark)."""
        return pd.read_parquet(self.files["scores.parquet"])

    @property
    def files(self) -> dict[str, Path]:
        return {name: self.out / name for name in RUN_FILES}


class LockedError(ChurnguardError):
    """Another run holds the out folder."""


def lock_path(out: Path) -> Path:
    """The lock of an out folder: a hidden sibling of its resolved path (so a symlink to it
    shares the lock), and a run that fails before writing leaves no out folder behind."""
    real = Path(out).resolve()
    return real.parent / f".{real.name}.churnguard-score.lock"


def out_folder(template: Path | str, when: dt.datetime) -> Path:
    """The out folder of a run at ``when``: ``{as_of}`` in the template filled with its date."""
    return Path(str(template).replace("{as_of}", when.date().isoformat()))


def _lock(out: Path, timeout: float) -> FileLock:
    """Take the out folder's lock, taken once the inputs are checked: a run refused for its
    input leaves no file behind, and a second run on the folder fails (or waits) here."""
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise LockedError(
            f"{out}: another churnguard score run is writing here (lock {lock.lock_file}); "
            "wait for it or raise score.lock_timeout"
        ) from None
    return lock


def _check_replaceable(out: Path) -> None:
    """Refuse an out path that is a file, or a folder holding more than a scoring run: a run
    replaces the whole folder."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; the out path must be a folder")
    others = (
        sorted(p.name for p in out.iterdir() if p.name not in RUN_FILES) if out.is_dir() else []
    )
    if others:
        raise ConfigError(
            f"{out}: holds {', '.join(others[:3])} besides a scoring run; a run replaces the "
            "whole folder, so give an empty or new one"
        )


def score(
    config: PipelineConfig,
    *,
    as_of: dt.date | dt.datetime | str | None = None,
    out: Path | str | None = None,
    model: str | Path | None = None,
    features: Path | None = None,
    progress: Progress | None = None,
) -> ScoreRun:
    """Score the population at ``as_of`` and write the list, the scores and the manifest.

    Parameters
    ----------
    config : the run's config: data, ``[score]``, ``[[interventions]]``, ``[model]``, engine.
        Churn definition, horizon and features come from the model's own saved config.
    out : the out folder, ``{as_of}`` filled in with the date; default ``[score] out``.
    model : a bundle folder (a :class:`~pathlib.Path` or text with a ``/``), or a version of
        the config's model; default ``[model] version`` (the champion).
    features : a Parquet file from ``churnguard features`` to read instead of building them.

    Raises
    ------
    ModelRegistryError
        The bundle fails its hash or signature check, cannot be read, or its feature schema
        does not match the data.
    DataContractError, ConfigError
        Bad data or config; nothing is written.
    LockedError
        Another run is writing to ``out`` (after waiting ``score.lock_timeout`` seconds).
    """
    say = Stages(progress)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    started = dt.datetime.now(dt.UTC)

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    folder = find_model(model, config.model)
    when = one_as_of(as_of if as_of is not None else _labels_today(folder))
    out = out_folder(out if out is not None else config.score.out, when)
    model_files = {
        "booster_sha256": sha256_file(folder / "booster.txt"),
        "manifest_sha256": sha256_file(folder / "manifest.json"),
    }
    digests = {
        name: _digest(path) for name, path in table_paths(config.data).items() if path.exists()
    }
    past = earlier_runs(out, when.date())
    history_sha256 = digest(past)
    run_id = _run_id(when, model_files, config, digests, features, history_sha256)
    set_run(run_id)  # every log line of the run carries the id its outputs carry
    say("loading the model")
    churn_model, metadata = load_model(folder)
    trained = config_from_dict(metadata["config"], source=f"{folder}/metadata.json")
    lap("load_model_s")
    say("loading and validating data")
    interventions = run_catalogue(config)
    dataset = load_dataset(
        config.data,
        definition=trained.churn.definition,
        engine=config.engine,
        interventions=[i.name for i in interventions],
    )
    say.rows = sum(info.rows for info in dataset.tables.values())
    lap("load_data_s")
    say("building features")
    plan = plan_features(
        dataset,
        config=trained.features,
        activity_events=trained.churn.activity_events,
        horizon_days=trained.churn.horizon_days,
    )
    ranges, notes = _features(dataset, plan, trained, churn_model, when, features)
    notes += dataset.warnings() + _staleness(dataset, trained.churn, when)
    check_conditions(config.interventions, churn_model)
    effects, effect_notes = learned_effects(config.score, interventions)
    notes += effect_notes
    history = History.read(
        past,
        contract_loader(dataset, [i.name for i in interventions]),
        when.date(),
        config.score.cooldown_days,
    )
    run = _Run(
        churn_model,
        metadata,
        dataset,
        plan,
        trained,
        config,
        when,
        interventions,
        features,
        effects,
        _cooled(dataset, history, config.score.cooldown_days, when.date()),
    )
    target = out.resolve()
    _check_replaceable(target)
    lock = _lock(out, config.score.lock_timeout)
    try:
        with atomic_folder(target) as staging:
            staging.mkdir()
            result = _score(run, ranges, staging / "scores.parquet", say, lap)
            say("writing")
            inputs = {
                name: {"path": str(info.path), "rows": info.rows, **digests[name]}
                for name, info in sorted(dataset.tables.items())
                if name in digests  # earlier runs' decisions are the history, below
            }
            contacted, decisions = assign(
                result.listed,
                as_of=when.date(),
                holdout=config.score.holdout,
                salt=config.score.salt,
                run_id=run_id,
            )
            contacted = _to_act_with(contacted, run, history)
            write_csv(
                contacted, staging / "interventions.csv", separator=config.score.csv_separator
            )
            if config.score.xlsx:
                write_xlsx(
                    contacted, staging / "interventions.xlsx", currency=config.score.currency
                )
            write_csv(decisions, staging / "assignments.csv")  # for machines: always commas
            warnings = notes + [
                f"feature {name} drifted: PSI {psi:.3f} against the training data "
                f"(over {result.drift['thresholds'][name]})"
                for name, psi in result.drift["over_threshold"].items()
            ]
            for warning in warnings:
                log.warning(warning)
            manifest = {
                "as_of": when.date().isoformat(),
                "run_id": run_id,
                "status": "warnings" if warnings else "ok",
                "churnguard": package_version("churnguard"),
                "config_path": None if config.source == "defaults" else config.source,
                "model": {
                    "name": metadata["name"],
                    "version": metadata["version"],
                    "folder": str(folder),
                    **model_files,
                },
                "inputs": inputs,
                "history": {
                    "runs_read": [str(r.assignments.parent) for r in history.runs],
                    "runs_beside": len(past),
                    "sha256": history_sha256,
                },
                "features_file": None if features is None else str(features),
                "config_fingerprint": config.fingerprint(),
                "catalogue": "config" if config.interventions else "default",
                "engine": dataset.engine.name,
                "rows": {
                    "scored": result.rows,
                    "listed": len(contacted),
                    "held_out": len(decisions) - len(contacted),
                },
                "holdout": config.score.holdout,
                "effects": {
                    "source": "learned" if effects is not None else "assumed",
                    "path": None
                    if config.score.effects_path is None
                    else str(config.score.effects_path),
                    **({"sha256": sha256_file(config.score.effects_path)} if effects else {}),
                },
                "risk_tiers": result.tiers,
                "value_at_risk_total": round(result.value_at_risk, 2),
                "value": result.value,
                "expected_benefit_total": round(float(contacted["expected_benefit"].sum()), 2),
                "outputs": {
                    name: sha256_path(staging / name)
                    for name in ("interventions.csv", "assignments.csv", "scores.parquet")
                },
                "drift": result.drift,
                "warnings": warnings,
            }
            lap("write_s")
            manifest["timings"] = {"started_at": started.isoformat(), **timings}
            (staging / "manifest.json").write_text(
                json.dumps(manifest, indent=2, default=str, allow_nan=False) + "\n"
            )
    finally:
        lock.release()
    say.rows = len(decisions)
    say.done()
    return ScoreRun(out=out, interventions=contacted, manifest=manifest)


def _features(
    dataset: Dataset,
    plan: FeaturePlan,
    trained: PipelineConfig,
    model: ChurnModel,
    when: dt.datetime,
    precomputed: Path | None,
) -> tuple[Ranges, list[str]]:
    """The model's features for the population at ``when``, ordered by customer_id (one query
    over consecutive ranges of customers, as many as building them within the engine's memory
    takes), and a warning when customers in the population had not signed up by then (they
    have no features at ``when``, so they are not scored).

    Built from the data, or read from ``precomputed`` (then the file must hold every feature).
    """
    if precomputed is None:
        check_schema(model, list(plan.specs), where=str(dataset.tables["customers"].path))
        ranges = feature_pieces(dataset, [when], plan)
    else:
        _check_parquet(precomputed)
        table = dataset.engine.read_parquet(precomputed)
        present = [s for s in model.features if s.name in table.columns]
        check_schema(model, present, where=str(precomputed))
        table = table.filter(table.as_of == when)
        ranges = Ranges.whole(table)
    who = population(dataset, as_of=when, churn=trained.churn)
    customers = dataset.table("customers")
    signed = customers.filter(customers.signup_date.isnull() | (customers.signup_date < when))
    unsigned = int(who.anti_join(signed, "customer_id").count().execute())
    who = who.semi_join(signed, "customer_id")
    notes = (
        [
            f"{unsigned:,} customers in the population at {when.date()} have a signup_date on or "
            "after it and are not scored; check their signup_date"
        ]
        if unsigned
        else []
    )
    if precomputed is not None:
        _check_covers(table, who, precomputed, when)
    names = ["customer_id", *[s.name for s in model.features]]
    return ranges.then(
        lambda p: p.semi_join(who, "customer_id").select(names).order_by("customer_id")
    ), notes


def _staleness(dataset: Dataset, churn: ChurnConfig, when: dt.datetime) -> list[str]:
    """Warnings about where the data ends: rows far beyond it (left out of the end), and
    ``when`` more than a horizon after it, when the population and every recency feature are
    measured against data that stopped long before."""
    ends, beyond = data_end(dataset, churn=churn)
    notes = [far_rows_warning(beyond, ends)] if beyond else []
    if ends is None or when <= ends + dt.timedelta(days=churn.horizon_days):
        return notes
    return [
        *notes,
        f"scoring at {when.date()}, {(when - ends).days} days after the data ends "
        f"({ends.date()}), more than the {churn.horizon_days}-day horizon: is the export stale?",
    ]


def _check_parquet(path: Path) -> None:
    """Refuse a features file that is missing or is not Parquet, in one line."""
    if not path.exists():
        raise DataContractError(f"{path}: features file not found")
    try:
        for part in data_files(path)[:1] or [path]:
            pq.read_schema(part)
    except (OSError, pa.ArrowException) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataContractError(f"{path}: cannot be read as Parquet: {detail}") from None


def _check_covers(table: ir.Table, who: ir.Table, path: Path, when: dt.datetime) -> None:
    """Refuse precomputed features that do not hold each customer of the population at
    ``when`` exactly once: a file of another dataset, date or population would score some
    customers twice or leave some out without a word."""
    scored = who.select("customer_id").semi_join(table, "customer_id")
    rows = table.semi_join(who, "customer_id")
    counts = rows.aggregate(rows=rows.count(), customers=rows.customer_id.nunique())
    found = counts.to_pandas().iloc[0]
    population_size, covered = (int(t.count().execute()) for t in (who, scored))
    day = when.date()
    if int(found["rows"]) != int(found["customers"]):
        raise DataContractError(
            f"{path}: holds {int(found['rows']) - int(found['customers']):,} repeated customer "
            f"rows at {day}; rebuild it with churnguard features --as-of {day}"
        )
    if covered < population_size:
        raise DataContractError(
            f"{path}: lacks {population_size - covered:,} of the {population_size:,} customers "
            f"in the population at {day}; rebuild it from this dataset with churnguard "
            f"features --as-of {day}"
        )


@dataclass(frozen=True)
class _Run:
    """What every step of one scoring run needs."""

    model: ChurnModel
    metadata: dict[str, Any]
    dataset: Dataset
    plan: FeaturePlan
    trained: PipelineConfig
    config: PipelineConfig
    when: dt.datetime
    catalogue: tuple[InterventionConfig, ...]
    features_file: Path | None = None
    #: Learned effects in use (None: the catalogue's assumed success rates).
    effects: Effects | None = None
    #: Customers contacted too recently to be listed (``[score] cooldown_days``).
    cooled: tuple[str, ...] = ()

    def empty(self) -> ChurnguardError:
        """The error for a population without customers (or a feature file without the date)."""
        if self.features_file is not None:
            return DataContractError(f"{self.features_file}: no rows for as_of {self.when.date()}")
        return ConfigError(
            f"no customer is in the {self.trained.churn.definition} population at "
            f"{self.when.date()}"
        )


@dataclass
class Scored:
    """A scored population, as the manifest reports it; the scores file is already written."""

    listed: pd.DataFrame
    drift: dict[str, Any]
    rows: int
    tiers: dict[str, int]
    value_at_risk: float
    #: How customer_value was computed: the formula and the lifetime it used.
    value: dict[str, Any]


def _score(
    run: _Run, ranges: Ranges, path: Path, say: Stages, lap: Callable[[str], None]
) -> Scored:
    """Score the population on the dataset's engine and write ``scores.parquet``.

    Probabilities, values and each customer's best case run in one pass of batches where the
    data is (a value needs the customer's own probability and the population's purchase
    figures, read first); only the head of the candidates (grown until the list settles, see
    :func:`~churnguard.interventions.build_list`) and at most :data:`DRIFT_SAMPLE_ROWS` rows
    for drift reach this process.
    """
    engine, model, config, catalogue = run.dataset.engine, run.model, run.config, run.catalogue
    effects = run.effects  # the batch function below travels to Spark workers: no run in it
    names = [s.name for s in model.features]
    horizon = run.trained.churn.horizon_days
    say("scoring")
    charge = _charge_column(config.value, model)
    prior, joined = None, ranges
    history = purchase_history(run.dataset, run.when, run.plan)
    if history is not None:
        prior = purchase_prior(history)
        joined = ranges.then(
            lambda p: p.left_join(history, "customer_id").drop("customer_id_right")
        )

    def value(batch: pd.DataFrame) -> pd.DataFrame:
        probability = model.churn_probability(batch)
        months = expected_lifetime_months(probability, horizon)
        worth = customer_value(charged(batch, charge, config.value), months=months, prior=prior)
        scores = score_rows(batch, probability, worth, months, config)
        context = batch.assign(
            churn_probability=scores["churn_probability"].to_numpy(),
            customer_value=scores["customer_value"].to_numpy(),
        )
        _, best = best_cases(context, catalogue, effects)
        return batch.assign(**{c: scores[c].to_numpy() for c in scores.columns}).assign(
            **{BEST_CASE: best}
        )

    added = {c: "string" if c == "risk_tier" else "float64" for c in ROW_COLUMNS[1:]}
    scored = engine.map_batches(
        joined, value, keep=["customer_id", *names], added={**added, BEST_CASE: "float64"}
    )
    try:
        if not scored.count().execute():
            raise run.empty()
        lap("features_and_scores_s")  # one streamed query: features feed the model
        stamped = scored.mutate(
            as_of=ibis.literal(run.when.date()),
            model_version=ibis.literal(str(run.metadata["version"])),
        ).select(*SCORE_COLUMNS)
        rows = engine.write_parquet(Ranges.whole(stamped.order_by("customer_id")), path)
        say.rows = rows
        totals = scored.group_by("risk_tier").aggregate(n=scored.count()).to_pandas()
        sums = scored.aggregate(
            at_risk=scored.value_at_risk.sum(),
            months=scored.lifetime_months.mean(),
            mean=scored.churn_probability.mean(),
        ).to_pandas()
        at_risk, mean_months, mean = (sums[c].iloc[0] for c in ("at_risk", "months", "mean"))
        lap("scores_file_s")
        sample = scored
        if rows > DRIFT_SAMPLE_ROWS:
            sample = scored.filter(sampled(scored.customer_id, DRIFT_SAMPLE_ROWS / rows, 0))
        drifted = sample.select("customer_id", *names, "churn_probability").to_pandas()
        drift = drift_summary(
            run.metadata, drifted, drifted["churn_probability"].to_numpy(), config.drift
        )
        drift["sample_rows"] = len(drifted)
        lap("drift_s")
        say("choosing interventions")
        wanted = (scored[BEST_CASE] > 0) & (
            scored.churn_probability >= config.score.min_probability
        )
        if config.score.tiers:
            wanted &= scored.risk_tier.isin(config.score.tiers)
        candidates = scored.filter(wanted)
        if run.cooled:
            recent = ibis.memtable(pd.DataFrame({"customer_id": list(run.cooled)}, dtype=str))
            candidates = candidates.anti_join(recent, "customer_id")
        candidates = candidates.order_by([ibis.desc(BEST_CASE), "customer_id"])
        # every candidate at once (a knapsack's read) comes with the few columns choosing
        # reads; features are read for the customers explained alone
        read = [*ROW_COLUMNS, BEST_CASE, *(c for c in condition_columns(catalogue) if c in names)]
        listed = build_list(
            lambda n: (candidates.limit(n) if n else candidates.select(*read)).to_pandas(),
            model,
            catalogue,
            config,
            effects,
            as_of=run.when.date(),
            features_of=lambda ids: _features_of(scored, names, ids),
        )
        lap("interventions_s")
    finally:
        engine.release(scored)
    return Scored(
        listed=listed,
        drift=drift,
        rows=rows,
        tiers=dict(sorted(zip(totals["risk_tier"], totals["n"].astype(int), strict=True))),
        value_at_risk=float(at_risk or 0.0),
        value={
            "formula": _value_formula(config.value, prior is not None),
            "mean_lifetime_months": round(float(mean_months), 2),
            "max_lifetime_months": MAX_MONTHS,
            "mean_churn_probability": round(float(mean), 6),
        },
    )


def _features_of(scored: ir.Table, names: list[str], ids: np.ndarray) -> pd.DataFrame:
    """The features of the customers ``ids``, in that order."""
    wanted = ibis.memtable(pd.DataFrame({"customer_id": ids, "_at": np.arange(len(ids))}))
    rows = scored.select("customer_id", *names).join(wanted, "customer_id").order_by("_at")
    return rows.drop("_at").to_pandas()


def learned_effects(
    score: ScoreConfig, catalogue: tuple[InterventionConfig, ...]
) -> tuple[Effects | None, list[str]]:
    """The learned effects a run uses (None: assumed success rates), and why not when
    ``[score] effects = "learned"`` falls back: they were not promoted."""
    if score.effects != "learned" or score.effects_path is None:
        return None, []
    path = score.effects_path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the effects file: {exc}") from None
    effects = Effects.from_json(text, str(path))
    if not effects.promote:
        return None, [
            f"{path}: the learned effects were not promoted (their policy did not beat today's "
            "list and no contact beyond doubt); the catalogue's success rates are used"
        ]
    missing = sorted({i.name for i in catalogue} - set(effects.interventions))
    if missing:
        raise ConfigError(
            f"{path}: has no effects for {missing[0]!r}; learn them again with this catalogue"
        )
    return effects, []


def _cooled(dataset: Dataset, history: History, days: int, today: dt.date) -> tuple[str, ...]:
    """Customers treated within ``days`` before ``today``: on an earlier list beside this
    run, or in the ``treatments`` table."""
    if not days:
        return ()
    since = today - dt.timedelta(days=days)
    ids = history.contacted_since(since)
    if dataset.has("treatments"):
        t = dataset.table("treatments")
        recent = t.filter(
            (t.group == "treated")
            & (t.as_of >= ibis.date(since.isoformat()))
            & (t.as_of < ibis.date(today.isoformat()))
        )
        ids |= set(recent.select("customer_id").distinct().to_pandas()["customer_id"])
    return tuple(sorted(ids))


def _to_act_with(contacted: pd.DataFrame, run: _Run, history: History) -> pd.DataFrame:
    """The list with what a team acts with: the date, the customer's streak on the lists,
    and the ``[score] carry`` columns of the ``customers`` table."""
    today = run.when.date()
    first, new = history.streaks(contacted["customer_id"], today)
    acted = contacted.assign(as_of=today.isoformat(), first_listed=first, new=new)[
        list(LIST_COLUMNS)
    ]
    carry = list(run.config.score.carry)
    if not carry:
        return acted
    customers = run.dataset.table("customers")
    missing = [c for c in carry if c not in customers.columns]
    if missing:
        raise ConfigError(
            f"score.carry: {missing[0]!r} is not a column of the customers table "
            f"({', '.join(customers.columns)})"
        )
    clash = [c for c in carry if c in acted.columns]
    if clash:
        raise ConfigError(f"score.carry: {clash[0]!r} is already a column of interventions.csv")
    wanted = ibis.memtable(pd.DataFrame({"customer_id": contacted["customer_id"]}, dtype=str))
    values = (
        customers.select("customer_id", *carry)
        .semi_join(wanted, "customer_id")
        .to_pandas()
        .drop_duplicates("customer_id")
    )
    for column in carry:  # the contract reads numbers as floats: 20, not 20.0, when whole
        numbers = values[column]
        if pd.api.types.is_float_dtype(numbers) and (numbers.dropna() % 1 == 0).all():
            values[column] = numbers.astype("Int64")
    return acted.merge(values, on="customer_id", how="left")


def _labels_today(folder: Path) -> dt.date:
    """The as-of date when none is given: today, for a model of a churn flag (``labels``),
    whose entity tables are scored as they are; other definitions are measured from a date."""
    definition = read_metadata(folder)["config"]["churn"]["definition"]
    if definition != "labels":
        raise ConfigError(
            f"--as-of is needed: the model predicts {definition} churn, which is measured "
            "from a date"
        )
    return dt.datetime.now(dt.UTC).date()


def _charge_column(value: ValueConfig, model: ChurnModel) -> str | None:
    """The ``[value] column`` a customer's charge is read from, checked to be a numeric
    feature of the model; None when the charge is the subscriptions' MRR."""
    if not value.column:
        return None
    if value.column not in {s.name for s in model.features if s.kind == "numeric"}:
        raise ConfigError(
            f"value.column {value.column!r} is not a numeric feature of the model; name a "
            "numeric column of the customers table that the model was trained with"
        )
    return value.column


def _value_formula(value: ValueConfig, purchases: bool) -> str:
    """customer_value in words, for the manifest (the module doc of :mod:`churnguard.value`)."""
    charge = (
        f"{value.column} per {value.period}" + (" ÷ 12" if value.period == "year" else "")
        if value.column
        else "mrr"
    )
    spend = ""
    if purchases:
        spend = (
            " + average purchase value × purchases per year ÷ 12 (each customer's own figures "
            "shrunk toward the population's; none for a subscriber who never bought)"
        )
    return (
        f"({charge}{spend}) × lifetime_months; lifetime_months = 1 ÷ the monthly churn rate "
        "implied by the customer's own churn_probability over the horizon (constant hazard), "
        f"at most {MAX_MONTHS:.0f}"
    )


def score_rows(
    frame: pd.DataFrame,
    probability: np.ndarray,
    value: np.ndarray,
    months: np.ndarray,
    config: PipelineConfig,
) -> pd.DataFrame:
    """Probability, tier, value, value at risk and expected months per customer (the
    ``scores.parquet`` rows)."""
    tiers = config.score.risk_tiers(probability)
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "churn_probability": np.round(probability, 6),
            "risk_tier": tiers,
            "customer_value": np.round(value, 2),
            "value_at_risk": np.round(probability * value, 2),
            "lifetime_months": np.round(months, 2),
        }
    )


def drift_summary(
    metadata: dict[str, Any], frame: pd.DataFrame, probability: np.ndarray, rules: DriftConfig
) -> dict:
    """PSI of each feature and of the score against the training data, worst first; the
    features over their limit (``rules``) in ``over_threshold``, with the limits."""
    reference = metadata.get("drift_reference")
    if not reference:
        return {"score": None, "features": {}, "over_threshold": {}, "thresholds": {}}
    psi = drift.stability(reference, frame, probability)
    score_psi = psi.pop(drift.SCORE, None)
    # ages and whole-history totals grow with time by construction
    ages = {s["name"] for s in metadata.get("features", []) if s.get("stat") in ("days", "total")}
    limits = {
        name: rules.thresholds.get(name, math.inf if name in ages else rules.threshold)
        for name in psi
        if name not in rules.ignore
    }
    over = {
        k: v for k, v in sorted(psi.items(), key=lambda kv: -kv[1]) if v > limits.get(k, math.inf)
    }
    return {
        "score": score_psi,
        "features": psi,
        "over_threshold": over,
        "thresholds": {k: limits[k] for k in over},
    }


def _digest(path: Path) -> dict[str, str]:
    """An input's SHA-256; for a folder of parts (a lake table), a digest of its listing."""
    if path.is_dir():
        return {"listing_sha256": listing_sha256(path)}
    return {"sha256": sha256_file(path)}


def _run_id(
    when: dt.datetime,
    model_files: dict[str, str],
    config: PipelineConfig,
    inputs: dict[str, Any],
    features: Path | None,
    history: str,
) -> str:
    """The run's id: a digest of what decides its output (date, model, config, inputs, the
    earlier runs beside it), so a re-run of the same night has the same id and its files stay
    byte-identical."""
    basis = {
        "history": history,
        "as_of": when.date().isoformat(),
        "model": model_files,
        "config": config.fingerprint(),
        "inputs": inputs,
        "features_file": None if features is None else str(features),
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]

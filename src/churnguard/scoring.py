"""Nightly batch scoring: every customer in the population, ranked interventions, a manifest.

:func:`score` loads a saved model (hashes checked), builds its features for the population at
the as-of date (or reads precomputed ones), and writes to the out folder:

* ``scores.parquet``: every scored customer, ``customer_id, churn_probability, risk_tier,
  customer_value, value_at_risk``, ordered by customer_id (with the Spark engine a folder of
  Parquet parts, written in the cluster; see :func:`churnguard.engine.spark.score`);
* ``interventions.csv``: customers worth an intervention, ranked by expected benefit, with
  three reasons and the intervention chosen (columns: :data:`LIST_COLUMNS`);
* ``manifest.json``: as-of date, model version and hashes, input hashes, row counts, drift,
  warnings and timings.

The run is written into a hidden sibling folder and switched in by renaming, so the out folder
holds one complete run or the previous one, never a mix (a kill between the two renames leaves
it absent, with the previous run beside it). The same as-of date, model and data give the same
bytes in the two data files; only the manifest's timings change. A lock on the resolved path
keeps two runs from writing the same out folder at once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from churnguard import drift
from churnguard.config import (
    CONDITION,
    ChurnConfig,
    InterventionConfig,
    PipelineConfig,
    config_from_dict,
)
from churnguard.contract import Dataset, glob_literal, load_dataset, refuse_glob
from churnguard.errors import ChurnguardError, ConfigError, DataContractError
from churnguard.features import FeaturePlan, build_features, normalize_as_of, plan_features
from churnguard.io import (
    atomic_folder,
    atomic_path,
    data_files,
    listing_sha256,
    sha256_file,
    sha256_path,
)
from churnguard.labels import data_end, far_rows_warning, population
from churnguard.model import ChurnModel
from churnguard.reasons import TOP, describe, top_drivers
from churnguard.registry import check_schema, find_model, load_model
from churnguard.value import values_at

log = logging.getLogger("churnguard.scoring")

LIST_COLUMNS = (
    "rank",
    "customer_id",
    "churn_probability",
    "risk_tier",
    "customer_value",
    "value_at_risk",
    "reason_1",
    "reason_2",
    "reason_3",
    "intervention",
    "intervention_cost",
    "expected_benefit",
)
SCORE_COLUMNS = (
    "customer_id",
    "churn_probability",
    "risk_tier",
    "customer_value",
    "value_at_risk",
)
#: What a run writes; an out folder holding anything else is not replaced.
RUN_FILES = ("interventions.csv", "scores.parquet", "manifest.json")
#: First characters that make a spreadsheet read a cell as a formula or break its row,
#: full-width forms included.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")

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


def default_interventions() -> tuple[InterventionConfig, ...]:
    """The packaged catalogue (the same entries as ``pipelines/nightly.toml``)."""
    text = package_files("churnguard").joinpath("interventions.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    return config_from_dict({"interventions": raw["interventions"]}).interventions


def score(
    config: PipelineConfig,
    *,
    as_of: dt.date | dt.datetime | str,
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
        the config's model; default its ``latest``.
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
    say = progress or (lambda _message: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    started = dt.datetime.now(dt.UTC)

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    (when,) = normalize_as_of([as_of])
    out = out_folder(out if out is not None else config.score.out, when)
    say("loading the model")
    folder = find_model(model, registry=config.model.registry, name=config.model.name)
    churn_model, metadata = load_model(folder)
    trained = config_from_dict(metadata["config"], source=f"{folder}/metadata.json")
    lap("load_model_s")
    say("loading and validating data")
    dataset = load_dataset(config.data, definition=trained.churn.definition, engine=config.engine)
    lap("load_data_s")
    say("building features")
    plan = plan_features(
        dataset, config=trained.features, activity_events=trained.churn.activity_events
    )
    table, notes = _features(dataset, plan, trained, churn_model, when, features)
    notes += dataset.warnings() + _staleness(dataset, trained.churn, when)
    check_conditions(config.interventions, churn_model)
    catalogue = config.interventions or default_interventions()
    run = _Run(churn_model, metadata, dataset, plan, trained, config, when, catalogue, features)
    target = out.resolve()
    _check_replaceable(target)
    lock = _lock(out, config.score.lock_timeout)
    try:
        with atomic_folder(target) as staging:
            staging.mkdir()
            if dataset.engine == "spark":
                from churnguard.engine import spark

                say("scoring in Spark")
                result = spark.score(run, table, staging / "scores.parquet")
                lap("score_s")
            else:
                result = _score_local(run, table, staging / "scores.parquet", say, lap)
            say("writing")
            _write_list(result.listed, staging / "interventions.csv")
            warnings = notes + [
                f"feature {name} drifted: PSI {psi:.3f} against the training data "
                f"(over {drift.PSI_ALERT})"
                for name, psi in result.drift["over_threshold"].items()
            ]
            for warning in warnings:
                log.warning(warning)
            manifest = {
                "as_of": when.date().isoformat(),
                "model": {
                    "name": metadata["name"],
                    "version": metadata["version"],
                    "folder": str(folder),
                    "booster_sha256": sha256_file(folder / "booster.txt"),
                    "manifest_sha256": sha256_file(folder / "manifest.json"),
                },
                "inputs": {
                    name: {"path": str(info.path), "rows": info.rows, **_digest(info.path)}
                    for name, info in sorted(dataset.tables.items())
                },
                "features_file": None if features is None else str(features),
                "config_fingerprint": config.fingerprint(),
                "catalogue": "config" if config.interventions else "default",
                "engine": dataset.engine,
                "rows": {"scored": result.rows, "listed": len(result.listed)},
                "risk_tiers": result.tiers,
                "value_at_risk_total": round(result.value_at_risk, 2),
                "expected_benefit_total": round(float(result.listed["expected_benefit"].sum()), 2),
                "outputs": {
                    name: sha256_path(staging / name)
                    for name in ("interventions.csv", "scores.parquet")
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
    return ScoreRun(out=out, interventions=result.listed, manifest=manifest)


def _features(
    dataset: Dataset,
    plan: FeaturePlan,
    trained: PipelineConfig,
    model: ChurnModel,
    when: dt.datetime,
    precomputed: Path | None,
) -> tuple[ir.Table, list[str]]:
    """The model's features for the population at ``when``, ordered by customer_id (a query),
    and a warning when customers in the population had not signed up by then (they have no
    features at ``when``, so they are not scored).

    Built from the data, or read from ``precomputed`` (then the file must hold every feature).
    """
    if precomputed is None:
        check_schema(model, list(plan.specs), where=str(dataset.tables["customers"].path))
        table = build_features(dataset, as_of=[when], config=trained.features, plan=plan)
    else:
        _check_parquet(precomputed)
        # A folder is a feature table written by Spark: its Parquet parts.
        if dataset.engine == "spark":
            refuse_glob(precomputed)
        literal = glob_literal(precomputed) if dataset.engine == "duckdb" else str(precomputed)
        source = f"{literal}/*.parquet" if precomputed.is_dir() else literal
        table = dataset.backend.read_parquet(source)
        present = [s for s in model.features if s.name in table.columns]
        check_schema(model, present, where=str(precomputed))
        table = table.filter(table.as_of == when)
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
    return table.semi_join(who, "customer_id").select(names).order_by("customer_id"), notes


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


def _score_local(
    run: _Run, table: ir.Table, path: Path, say: Progress, lap: Callable[[str], None]
) -> Scored:
    """Score on the driver: features into pandas, then probabilities, values and the list."""
    frame = table.to_pandas()
    lap("features_s")
    if frame.empty:
        raise run.empty()
    say(f"scoring {len(frame):,} customers")
    probability = run.model.predict_proba(frame)
    value = values_at(
        run.dataset,
        frame,
        probability,
        plan=run.plan,
        as_of=run.when,
        horizon_days=run.trained.churn.horizon_days,
    )
    scores = score_rows(frame, probability, value, run.config)
    lap("score_s")
    say("choosing interventions")
    listed = choose(frame, scores, run.model, run.catalogue, run.config)
    assert listed is not None  # every candidate was given
    lap("interventions_s")
    _write_scores(scores, path)
    return Scored(
        listed=listed,
        drift=drift_summary(run.metadata, frame, probability),
        rows=len(scores),
        tiers=scores["risk_tier"].value_counts().sort_index().to_dict(),
        value_at_risk=float(scores["value_at_risk"].sum()),
    )


def score_rows(
    frame: pd.DataFrame, probability: np.ndarray, value: np.ndarray, config: PipelineConfig
) -> pd.DataFrame:
    """Probability, tier, value and value at risk per customer (the ``scores.parquet`` rows)."""
    tiers = np.where(
        probability >= config.score.high_risk,
        "high",
        np.where(probability >= config.score.medium_risk, "medium", "low"),
    )
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "churn_probability": np.round(probability, 6),
            "risk_tier": tiers,
            "customer_value": np.round(value, 2),
            "value_at_risk": np.round(probability * value, 2),
        }
    )


def drift_summary(metadata: dict[str, Any], frame: pd.DataFrame, probability: np.ndarray) -> dict:
    """PSI of each feature and of the score against the training data, worst first."""
    reference = metadata.get("drift_reference")
    if not reference:
        return {"score": None, "features": {}, "over_threshold": {}}
    psi = drift.stability(reference, frame, probability)
    score_psi = psi.pop(drift.SCORE, None)
    over = {k: v for k, v in sorted(psi.items(), key=lambda kv: -kv[1]) if v > drift.PSI_ALERT}
    return {"score": score_psi, "features": psi, "over_threshold": over}


def best_cases(
    scores: pd.DataFrame, catalogue: tuple[InterventionConfig, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Expected benefit of every intervention for every row, and each row's best case (the most
    effective intervention, ignoring reasons): p × value × success − cost."""
    p = scores["churn_probability"].to_numpy(float)
    value = scores["customer_value"].to_numpy(float)
    success = np.array([i.success_rate for i in catalogue])
    cost = np.array([i.cost for i in catalogue])
    benefit = p[:, None] * value[:, None] * success[None, :] - cost[None, :]
    return benefit, benefit.max(axis=1)


def choose(
    frame: pd.DataFrame,
    scores: pd.DataFrame,
    model: ChurnModel,
    catalogue: tuple[InterventionConfig, ...],
    config: PipelineConfig,
    *,
    beyond: float = -np.inf,
) -> pd.DataFrame | None:
    """Choose, rank and cut: the ``interventions.csv`` rows.

    Per-customer contributions (TreeSHAP) are the expensive part, so customers are taken in
    order of their best case, in growing batches, until the list is settled: ``top_n`` or
    ``budget`` rows whose chosen benefit beats every remaining best case. Without a limit every
    customer with a positive best case is explained.

    ``frame`` and ``scores`` may hold only the head of the candidates (in best-case order, a
    whole number of batches) when every other customer's best case is at most ``beyond``; then
    None means the head cannot settle the list and a longer one is needed.
    """
    p = scores["churn_probability"].to_numpy()
    value = scores["customer_value"].to_numpy()
    cost = np.array([i.cost for i in catalogue])
    benefit, best_case = best_cases(scores, catalogue)
    order = np.lexsort((scores["customer_id"].to_numpy(), -best_case))
    order = order[best_case[order] > 0]
    answers = np.array([[_answers(i, s.name) for s in model.features] for i in catalogue])
    need = rows_needed(config, cost)
    done: list[np.ndarray] = []
    chosen_parts, gain_parts, driver_parts = [], [], []
    start, batch = 0, first_batch(need) or order.size
    while start < order.size:
        rows = order[start : start + batch]
        start += rows.size
        batch *= 2
        drivers = top_drivers(model.contributions(frame.iloc[rows]))
        context = frame.iloc[rows].assign(churn_probability=p[rows], customer_value=value[rows])
        eligible = np.column_stack(
            [
                _fits(intervention, answers[k], drivers, context)
                for k, intervention in enumerate(catalogue)
            ]
        )
        net = np.where(eligible, benefit[rows], -np.inf)
        pick = net.argmax(axis=1)
        done.append(rows)
        chosen_parts.append(pick)
        gain_parts.append(net[np.arange(rows.size), pick])
        driver_parts.append(drivers)
        if need and start < order.size:
            settled = (np.concatenate(gain_parts) > best_case[order[start]]).sum()
            if settled >= need:
                break
    gains = np.concatenate(gain_parts) if gain_parts else np.empty(0)
    if beyond > 0 and (not need or (gains > beyond).sum() < need):
        return None
    if not done:
        return pd.DataFrame(columns=list(LIST_COLUMNS))
    rows, pick = np.concatenate(done), np.concatenate(chosen_parts)
    gain, drivers = np.concatenate(gain_parts), np.concatenate(driver_parts)
    gain = np.round(gain, 2)  # as written: a benefit that rounds to 0.00 is not listed
    keep = gain > 0
    rows, pick, gain, drivers = rows[keep], pick[keep], gain[keep], drivers[keep]
    ranked = np.lexsort((scores["customer_id"].to_numpy()[rows], -gain))
    if config.score.top_n:
        ranked = ranked[: config.score.top_n]
    if config.score.budget:
        ranked = ranked[np.cumsum(cost[pick[ranked]]) <= config.score.budget]
    rows, pick, gain, drivers = rows[ranked], pick[ranked], gain[ranked], drivers[ranked]
    sentences = [
        s + [""] * (TOP - len(s)) for s in describe(model.features, frame.iloc[rows], drivers)
    ]
    listed = scores.iloc[rows].reset_index(drop=True)
    listed.insert(0, "rank", np.arange(1, rows.size + 1))
    return listed.assign(
        **{f"reason_{n + 1}": [s[n] for s in sentences] for n in range(TOP)},
        intervention=[catalogue[k].name for k in pick],
        intervention_cost=cost[pick],
        expected_benefit=gain,
    )[list(LIST_COLUMNS)]


def first_batch(need: int) -> int:
    """Rows explained in the first batch (0: all at once); each later batch doubles."""
    return max(256, 4 * need) if need else 0


def rows_needed(config: PipelineConfig, cost: np.ndarray) -> int:
    """The most rows the cut can keep (0: no limit)."""
    limits = []
    if config.score.top_n:
        limits.append(config.score.top_n)
    if config.score.budget and cost.min() > 0:
        limits.append(int(config.score.budget // cost.min()) + 1)
    return min(limits) if limits else 0


def _answers(intervention: InterventionConfig, feature: str) -> bool:
    """Whether the intervention answers a reason given by ``feature``."""
    return "*" in intervention.answers or any(part in feature for part in intervention.answers)


def check_conditions(catalogue: tuple[InterventionConfig, ...], model: ChurnModel) -> None:
    """Refuse a condition of a config's own catalogue on a name that is neither a feature of
    ``model`` nor ``customer_value``/``churn_probability``: a typo would silently switch its
    intervention off. (The packaged catalogue is written for every dataset, so a condition of
    it on a feature this data lacks simply never holds.)"""
    known = {s.name for s in model.features} | {"customer_value", "churn_probability"}
    for intervention in catalogue:
        for condition in intervention.when:
            name = CONDITION.fullmatch(condition).group(1)  # type: ignore[union-attr]
            if name not in known:
                raise ConfigError(
                    f"interventions {intervention.name!r}: condition {condition!r} is on "
                    f"{name!r}, which is not a feature of the model, customer_value or "
                    "churn_probability; correct the name, or drop the condition"
                )


def _fits(
    intervention: InterventionConfig,
    answers: np.ndarray,
    drivers: np.ndarray,
    context: pd.DataFrame,
) -> np.ndarray:
    """Rows with a reason the intervention answers and whose values meet its conditions.

    ``answers[j]`` says whether it answers feature ``j``; ``drivers`` holds each row's reason
    feature indices (-1 = none).
    """
    fits = (answers[np.maximum(drivers, 0)] & (drivers >= 0)).any(axis=1)
    for condition in intervention.when:
        name, op, number = CONDITION.fullmatch(condition).groups()  # type: ignore[union-attr]
        if name not in context:
            return np.zeros(len(context), dtype=bool)  # a condition on data we lack never holds
        values = pd.to_numeric(context[name], errors="coerce").to_numpy(float)
        with np.errstate(invalid="ignore"):
            fits &= _OPS[op](values, float(number))
    return fits


_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def _digest(path: Path) -> dict[str, str]:
    """An input's SHA-256; for a folder of parts (a lake table), a digest of its listing."""
    if path.is_dir():
        return {"listing_sha256": listing_sha256(path)}
    return {"sha256": sha256_file(path)}


def _write_scores(scores: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(scores[list(SCORE_COLUMNS)], preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _write_list(listed: pd.DataFrame, path: Path) -> None:
    """The CSV, with text cells a spreadsheet would run as formulas prefixed by a quote.

    Rows end in CRLF, as RFC 4180 has it; the CSV writer then quotes every cell holding a CR or
    an LF (as well as a comma or a quote), so no reader splits a row on one.
    """
    safe = listed.copy()
    for column in ("customer_id", "risk_tier", "reason_1", "reason_2", "reason_3", "intervention"):
        safe[column] = [neutralise(v) for v in safe[column].astype(str)]
    with atomic_path(path) as tmp:
        safe.to_csv(tmp, index=False, lineterminator="\r\n")


def neutralise(cell: str) -> str:
    """``=cmd()`` → ``'=cmd()``: a spreadsheet shows the text instead of running it."""
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell

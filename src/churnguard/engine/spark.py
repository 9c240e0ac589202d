"""The Spark engine: the data contract, the feature definitions and scoring on a Spark session.

What runs where:

* the tables are read, typed and checked against the data contract by Spark SQL, in the
  cluster: one pass per table for the cell checks, joins for unique and known customer ids;
* features and labels are the Ibis definitions of :mod:`churnguard.features` and
  :mod:`churnguard.labels`, compiled to Spark SQL by Ibis's PySpark backend;
* scoring broadcasts the booster text and applies it per partition (``mapInPandas``), then
  values and prices each customer per partition; only the head of the list comes to the
  driver, for its reasons (TreeSHAP) and the cut (:mod:`churnguard.scoring`);
* training brings the training rows, or a sample (``[train] sample_fraction``), to the driver.

PySpark is imported here only, so the core install does not need it.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from churnguard.config import DataConfig, EngineConfig, SparkConfig
from churnguard.contract import (
    _FALSE,
    _TRUE,
    _TZ_SUFFIX,
    DATE_RANGE_EXPECTED,
    DEDUPLICATED,
    DUPLICATE_EXPECTED,
    EVENT_TYPE,
    EVENT_TYPE_EXPECTED,
    FIRST_DATE,
    LAST_DATE,
    MAX_NUMBER,
    SPECS,
    TABLES,
    Dataset,
    TableInfo,
    TableSpec,
    _check_utf8,
    cell_error,
    check_column_names,
    check_header,
    csv_header,
    csv_problem,
    file_format,
    ident,
    missing_columns,
    no_rows,
    number_expected,
    refuse_glob,
    required_paths,
)
from churnguard.engine import FEATURES_SIDECAR
from churnguard.errors import ConfigError, DataContractError, EngineError
from churnguard.features import FeaturePlan, build_features
from churnguard.io import atomic_folder, data_files
from churnguard.model import ChurnModel
from churnguard.value import (
    customer_value,
    expected_lifetime_months,
    purchase_history,
    purchase_prior,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from churnguard.scoring import Scored, _Run

#: Settings of a session churnguard starts; ``[engine.spark] conf`` overrides them.
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}
#: The Java releases PySpark 4 runs on.
MIN_JAVA = 17
_NUMERIC = re.compile(r"(tiny|small|big)?int|integer|long|short|byte|float|double|decimal.*")


def session(config: SparkConfig = SparkConfig()) -> SparkSession:
    """The Spark session to run on: the active one when no master is set, else a new one.

    Raises
    ------
    EngineError
        PySpark is not installed, or a new session needs Java and none (or too old a one) is
        found.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError(
            "the spark engine needs PySpark: pip install 'churnguard[spark]'"
        ) from None
    # PySpark warns on every pandas 3 import; the paths used here are covered by the parity tests.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    active = SparkSession.getActiveSession()
    if active is not None and not config.master:
        spark = active
    else:
        check_java()
        master = config.master or "local[*]"
        if master.startswith("local"):  # workers on this machine: this Python, with churnguard
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.appName("churnguard").master(master)
        for key, value in {**DEFAULT_CONF, **config.conf}.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # the contract's times are UTC
    return spark


def check_java() -> None:
    """Refuse to start Spark without Java :data:`MIN_JAVA` or later, in one line."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise EngineError(
            f"the spark engine needs Java {MIN_JAVA} or later and none was found: install a JDK "
            f"(e.g. apt install openjdk-{MIN_JAVA}-jre-headless) or set JAVA_HOME"
        )
    shown = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False
    ).stderr.strip()
    match = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    major = int(match.group(1)) if match else 0
    if match and major == 1:  # "1.8.0" is Java 8
        major = int(match.group(2) or 0)
    if major < MIN_JAVA:
        first = shown.splitlines()[0] if shown else "no version"
        raise EngineError(
            f"the spark engine needs Java {MIN_JAVA} or later, {java} is {first!r}: install a "
            f"newer JDK or point JAVA_HOME at one"
        )


def load_dataset(
    cfg: DataConfig, *, definition: str | None, engine: EngineConfig = EngineConfig()
) -> Dataset:
    """Read, type and check the tables in Spark; the Spark twin of
    :func:`churnguard.contract.load_dataset`, with the same checks and messages.

    A table may be a file or a folder of part files (``events.parquet/``).
    """
    paths = required_paths(cfg, definition)
    spark = session(engine.spark)
    dataset = Dataset(con=None, tables={}, _backend=ibis.pyspark.connect(spark))
    token = uuid.uuid4().hex[:8]
    raws: dict[str, _Raw] = {}
    for name in TABLES:
        if name in paths:
            raws[name] = _Raw(spark, paths[name])
            view = f"churnguard_{token}_{name}"
            dataset.tables[name] = _load_table(
                raws[name], SPECS[name], dataset, view, drop=cfg.duplicates == "drop"
            )
            dataset.views[name] = view
    known = spark.table(dataset.views["customers"]).select("customer_id")
    for name in ("events", "subscriptions", "labels"):
        if name in raws:
            raws[name].check_known(known)
    return dataset


class _Raw:
    """One table as read: all text (CSV) or native types (Parquet), with where each row came
    from (``_cg_file``, and ``_cg_row`` for Parquet)."""

    def __init__(self, spark: SparkSession, path: Path):
        self.path, self.format = path, file_format(path)
        refuse_glob(path)
        if not path.exists():
            raise DataContractError(f"{path}: file not found")
        if path.is_file() and path.stat().st_size == 0:
            raise DataContractError(f"{path}: file is empty (0 bytes); expected a header and rows")
        if self.format == "csv":
            for part in data_files(path):
                _check_utf8(part)
            frame = spark.read.options(header=True, inferSchema=False, mode="FAILFAST").csv(
                str(path)
            )
            where = ["_metadata.file_path AS _cg_file"]
        else:
            frame = spark.read.parquet(str(path))
            where = ["_metadata.file_path AS _cg_file", "_metadata.row_index AS _cg_row"]
        self.columns = list(frame.columns)
        if self.format == "csv":
            first = data_files(path)[0]
            check_header(first, csv_header(first, {"escapechar": "\\"}), self.columns)
        check_column_names(path, self.columns, header=self.format == "csv")
        self.types = dict(frame.dtypes)
        self.frame = frame.selectExpr("*", *where)

    def run(self, action: Callable[[], Any]) -> Any:
        """Run a Spark action, turning a read failure (malformed CSV, bad file) into one line."""
        try:
            return action()
        except Exception as exc:
            if not type(exc).__module__.startswith(("pyspark", "py4j")):
                raise
            if self.format == "csv":  # name the line that breaks the format, when one does
                for part in data_files(self.path):
                    if problem := csv_problem(part):
                        raise DataContractError(problem) from None
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataContractError(
                f"{self.path}: cannot be read as {self.format.upper()}: {message}"
            ) from None

    def counts(self, conditions: dict[str, str]) -> dict[str, int]:
        """How many rows meet each condition, in one pass."""
        if not conditions:
            return {}
        exprs = [f"count_if({cond}) AS {_ident(key)}" for key, cond in conditions.items()]
        row = self.run(lambda: self.frame.selectExpr(*exprs).first())
        return {key: int(row[key]) for key in conditions}

    def locate(
        self, condition: str | DataFrame, column: str, match: Sequence[str] = ()
    ) -> tuple[Path, str, int, object]:
        """The first row meeting ``condition`` (or of a frame of bad rows): its file, where it
        is (``line N`` or ``row N``), that number, and its ``column`` value.

        Parquet rows are numbered by Spark. A CSV line is found by reading the file for the
        first row whose ``column`` (and ``match`` columns) hold the offending values.
        """
        bad = self.frame.where(condition) if isinstance(condition, str) else condition
        columns = list(dict.fromkeys([column, *match]))
        if self.format == "parquet":
            first = self.run(
                lambda: (
                    bad.orderBy("_cg_file", "_cg_row")
                    .select("_cg_file", "_cg_row", *columns)
                    .first()
                )
            )
            number, where = first["_cg_row"] + 1, "row"
        else:
            first = self.run(lambda: bad.orderBy("_cg_file").select("_cg_file", *columns).first())
            number = _csv_line(_local(first["_cg_file"]), {c: first[c] for c in columns}) or 0
            where = "line"
        shown = self.path if self.path.is_file() else _local(first["_cg_file"])
        return shown, f"{where} {number or 'unknown'}", number, first[column]

    def fail(
        self,
        condition: str | DataFrame,
        column: str,
        expected: str | Callable[[object], str],
        match: Sequence[str] = (),
    ) -> DataContractError:
        """The one-line error for the first row meeting ``condition``; ``expected`` may be
        worked out from the offending value."""
        shown, where, _, value = self.locate(condition, column, match)
        said = expected(value) if callable(expected) else expected
        return DataContractError(cell_error(shown, where, column, said, value))

    def mixed_zones(self, column: str) -> DataContractError:
        """Name the later of the first row with a UTC offset and the first without one."""
        found = {form: self.locate(where, column) for form, where in _zones(column).items()}
        form = max(found, key=lambda k: found[k][2])
        other = "without" if form == "with" else "with"
        shown, where, _, value = found[form]
        expected = (
            f"one time zone convention (row is {form} a UTC offset, "
            f"{found[other][1]} is {other} one)"
        )
        return DataContractError(cell_error(shown, where, column, expected, value))

    def _ids(self) -> DataFrame:
        return self.frame.selectExpr("*", f"{_value('customer_id')} AS _cg_id")

    def check_unique(self) -> None:
        ids = self._ids()
        repeated = ids.groupBy("_cg_id").count().where("count > 1").select("_cg_id")
        bad = ids.join(repeated, "_cg_id", "left_semi")
        if self.run(lambda: bad.limit(1).count()):
            raise self.fail(bad, "customer_id", "each customer_id once (it repeats)")

    def duplicates(self, rows: int, *, drop: bool) -> int:
        """How many exact duplicate rows the table holds; refuses the first unless ``drop``,
        which then leaves them out of :attr:`frame`."""
        from pyspark.sql import functions as F

        columns = [F.col(_ident(c)) for c in self.columns]
        repeats = rows - self.run(lambda: self.frame.select(*columns).distinct().count())
        if repeats and not drop:
            keyed = self.frame.withColumn("_cg_h", F.xxhash64(*columns))
            twice = keyed.groupBy("_cg_h").count().where("count > 1").select("_cg_h")
            bad = keyed.join(twice, "_cg_h", "left_semi")
            raise self.fail(bad, "customer_id", DUPLICATE_EXPECTED, self.columns)
        if repeats:
            self.frame = self.frame.dropDuplicates(self.columns)
        return int(repeats)

    def check_known(self, customers: DataFrame) -> None:
        ids = self._ids()
        bad = ids.join(customers, ids._cg_id == customers.customer_id, "left_anti")
        if self.run(lambda: bad.limit(1).count()):
            raise self.fail(bad, "customer_id", "a customer_id listed in customers")


def _load_table(
    raw: _Raw, spec: TableSpec, dataset: Dataset, view: str, *, drop: bool
) -> TableInfo:
    """Check one table against its spec and register its typed view as ``view``; ``drop``
    keeps one of each exact duplicate row of events and subscriptions instead of refusing."""
    missing_columns(raw.path, spec, raw.columns)
    present = set(raw.columns)
    select: dict[str, str] = {"customer_id": _value("customer_id")}
    first: dict[str, str] = {"rows": "true"}
    for column in spec.required:
        if column not in spec.timestamps and column != "churned":
            first[f"empty:{column}"] = f"{_value(column)} IS NULL"
    texts = [c for c in spec.timestamps if c in present and not _is_time(raw.types[c])]
    for column in texts:
        first.update({f"{form}:{column}": where for form, where in _zones(column).items()})
    attributes = []
    if spec.name == "customers":
        attributes = [c for c in raw.columns if c not in spec.required + spec.timestamps]
        for column in attributes:
            first[f"values:{column}"] = f"{_value(column)} IS NOT NULL"
            first[f"text:{column}"] = (
                f"{_value(column)} IS NOT NULL AND try_cast({_value(column)} AS DOUBLE) IS NULL"
            )
    counts = raw.counts(first)
    if not counts["rows"]:
        raise no_rows(raw.path, spec)
    for column in spec.required:
        if counts.get(f"empty:{column}"):
            raise raw.fail(f"{_value(column)} IS NULL", column, "a value (the column is required)")
    for column in texts:
        if counts[f"with:{column}"] and counts[f"without:{column}"]:
            raise raw.mixed_zones(column)
    # condition, column, what was expected, other columns that find the CSV line
    checks: list[tuple[str, str, str | Callable[[object], str], tuple[str, ...]]] = []
    for column in spec.timestamps:
        select[column] = (
            _timestamp(raw, column) if column in present else "CAST(NULL AS TIMESTAMP)"
        )
        if column in texts:
            checks.append(
                (
                    f"{_value(column)} IS NOT NULL AND ({select[column]}) IS NULL",
                    column,
                    "a date or date-time like 2025-01-31 or 2025-01-31T08:00:00",
                    (),
                )
            )
        checks.append(
            (
                f"({select[column]}) < TIMESTAMP '{FIRST_DATE}' "
                f"OR ({select[column]}) >= TIMESTAMP '{LAST_DATE}'",
                column,
                DATE_RANGE_EXPECTED,
                (),
            )
        )
        if column not in spec.nullable_timestamps:
            checks.append(
                (
                    f"{_ident(column)} IS NULL",
                    column,
                    "a date or date-time (the column is required)",
                    (),
                )
            )
    for column in spec.numbers:
        if column not in present:
            select[column] = "CAST(NULL AS DOUBLE)"
            continue
        select[column] = _number(raw, column)
        number = select[column]
        checks.append(
            (
                f"{_value(column)} IS NOT NULL AND (({number}) IS NULL OR isnan({number}) "
                f"OR abs({number}) > {MAX_NUMBER:.0e})",
                column,
                number_expected,
                (),
            )
        )
    for column in spec.texts:
        select[column] = _value(column) if column in present else "CAST(NULL AS STRING)"
    if spec.name == "events":  # the whole value must match: a regex `$` would allow a newline
        kind = select["event_type"]
        checks.append(
            (
                f"regexp_extract({kind}, '^{EVENT_TYPE}', 0) <> {kind}",
                "event_type",
                EVENT_TYPE_EXPECTED,
                ("customer_id", "timestamp"),
            )
        )
    for column in attributes:
        numeric = _NUMERIC.fullmatch(raw.types[column]) or (
            counts[f"values:{column}"] and not counts[f"text:{column}"]
        )
        dataset.attributes[column] = "numeric" if numeric else "categorical"
        select[column] = f"try_cast({_value(column)} AS DOUBLE)" if numeric else _value(column)
    if spec.name == "subscriptions" and "end_date" in present:
        checks.append(
            (
                f"({select['end_date']}) < ({select['start_date']})",
                "end_date",
                "an end_date on or after start_date",
                ("customer_id", "start_date"),
            )
        )
    if spec.name == "labels":
        flag = "lower(trim(CAST(`churned` AS STRING)))"
        allowed = ", ".join(f"'{v}'" for v in _TRUE + _FALSE)
        checks.append(
            (
                f"{flag} IS NULL OR {flag} NOT IN ({allowed})",
                "churned",
                "a churn flag: 1/0, true/false or yes/no",
                (),
            )
        )
        select["churned"] = f"CAST({flag} IN ({', '.join(repr(v) for v in _TRUE)}) AS INT)"
    found = raw.counts({str(i): check[0] for i, check in enumerate(checks)})
    for i, (condition, column, expected, match) in enumerate(checks):
        if found[str(i)]:
            raise raw.fail(condition, column, expected, match)
    if spec.name in ("customers", "labels"):
        raw.check_unique()
    if spec.name in DEDUPLICATED:
        dataset.dropped[spec.name] = raw.duplicates(counts["rows"], drop=drop)
    raw.frame.selectExpr(
        *(f"{expr} AS {_ident(name)}" for name, expr in select.items())
    ).createOrReplaceTempView(view)
    return TableInfo(spec.name, raw.path, raw.format, counts["rows"], tuple(select))


def _ident(name: str) -> str:
    """A Spark SQL identifier, backticks doubled."""
    return ident(name, "`")


def _value(column: str) -> str:
    """A cell as trimmed text, NULL when empty."""
    return f"nullif(trim(CAST({_ident(column)} AS STRING)), '')"


def _zones(column: str) -> dict[str, str]:
    """Conditions for a text time with a UTC offset, and for one without."""
    offset = f"{_value(column)} rlike '{_TZ_SUFFIX}'"
    return {"with": offset, "without": f"{_value(column)} IS NOT NULL AND NOT ({offset})"}


def _is_time(kind: str) -> bool:
    return kind.startswith(("timestamp", "date"))


def _timestamp(raw: _Raw, column: str) -> str:
    """A date/time column as TIMESTAMP in UTC (the session time zone)."""
    if _is_time(raw.types[column]):
        return f"CAST({_ident(column)} AS TIMESTAMP)"
    value = _value(column)
    # Spark reads '+02:00' but not '+0200' or ' +02:00': write the offset the way it reads.
    offset = f"regexp_replace({value}, ' ?([+-][0-9]{{2}}):?([0-9]{{2}})$', '$1:$2')"
    written = f"CASE WHEN {value} rlike '{_TZ_SUFFIX}' THEN {offset} ELSE {value} END"
    return f"try_cast({written} AS TIMESTAMP)"


def _number(raw: _Raw, column: str) -> str:
    if _NUMERIC.fullmatch(raw.types[column]):
        return f"CAST({_ident(column)} AS DOUBLE)"
    return f"try_cast({_value(column)} AS DOUBLE)"


def _local(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme in ("", "file") else Path(uri)


def _csv_line(path: Path, values: dict[str, object]) -> int | None:
    """The line (header = 1) of the first row of a CSV whose cells hold ``values``."""
    if not path.is_file():
        return None
    wanted = {k: "" if v is None else str(v).strip() for k, v in values.items()}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            if all((row.get(k) or "").strip() == v for k, v in wanted.items()):
                return reader.line_num
    return None


def to_spark(dataset: Dataset, expr: ir.Table) -> DataFrame:
    """An Ibis expression over a Spark dataset as a Spark DataFrame (lazy, nothing runs)."""
    backend = dataset.backend
    backend._run_pre_execute_hooks(expr)  # registers in-memory tables such as the as-of dates
    return backend._session.sql(backend.compile(expr))


def write_parquet(frame: DataFrame, path: Path, *, sidecar: dict[str, str] | None = None) -> int:
    """Write ``frame`` as a folder of Parquet parts at ``path``, atomically; return its rows.

    ``sidecar`` files (name to text) go inside the folder; readers skip names starting ``_``.
    A folder already at ``path`` is replaced only when it holds Spark's part files alone.
    """
    foreign = [p.name for p in data_files(path) if not p.name.startswith("part-")]
    if path.is_dir() and foreign:
        raise ConfigError(
            f"{path}: is a folder holding files Spark did not write ({', '.join(foreign[:3])}); "
            "give a new path, or remove the folder"
        )
    with atomic_folder(path) as tmp:
        frame.write.parquet(str(tmp), compression="zstd")
        for name, text in (sidecar or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        rows = sum(pq.read_metadata(part).num_rows for part in data_files(tmp))
    return rows


def write_features(
    dataset: Dataset, path: Path, dates: list[dt.datetime], plan: FeaturePlan
) -> int:
    """Build the features in Spark and write them as a folder of Parquet parts at ``path``,
    ordered by customer_id and as-of date, the descriptions beside them."""
    expr = build_features(dataset, as_of=dates, plan=plan)
    frame = to_spark(dataset, expr).orderBy("customer_id", "as_of")
    return write_parquet(frame, path, sidecar={FEATURES_SIDECAR: plan.to_json()})


#: Rows of the scored population brought to the driver to measure drift (PSI) on.
DRIFT_SAMPLE_ROWS = 200_000


def score(run: _Run, table: ir.Table, path: Path) -> Scored:
    """Score the population in Spark and write ``scores.parquet`` (a folder of parts).

    The booster text, calibrator and feature schema are broadcast; each partition rebuilds the
    model once and scores its batches. Values need the population's mean probability and
    purchase figures, so they are a second pass. Only the head of the candidates (growing
    until the list is settled) and a drift sample reach the driver.
    """
    from churnguard.scoring import (
        SCORE_COLUMNS,
        Scored,
        best_cases,
        choose,
        drift_summary,
        first_batch,
        rows_needed,
    )
    from churnguard.scoring import score_rows as rows_of

    spark = run.dataset.backend._session
    features = to_spark(run.dataset, table)
    names = [s.name for s in run.model.features]
    shipped = spark.sparkContext.broadcast(
        (
            run.model.booster.model_to_string(),
            run.model.calibrator,
            run.model.features,
            run.model.categories,
        )
    )

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = _model(shipped.value)
        for batch in batches:
            yield batch.assign(_probability=model.predict_proba(batch))

    # Checkpoints cut the (long) feature query from the plans of the actions that follow.
    predicted = features.mapInPandas(
        predict, _extended(features, {"_probability": "double"})
    ).localCheckpoint()
    try:
        stats = predicted.selectExpr("count(*) AS n", "avg(_probability) AS mean").first()
        if not stats["n"]:
            raise run.empty()
        months = expected_lifetime_months(stats["mean"], run.trained.churn.horizon_days)
        prior, joined = None, predicted
        history = purchase_history(run.dataset, run.when, run.plan)
        if history is not None and _needs_history(predicted):
            prior = purchase_prior(history)
            joined = predicted.join(to_spark(run.dataset, history), "customer_id", "left")
        config, catalogue = run.config, run.catalogue

        def value(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                probability = batch["_probability"].to_numpy(float)
                worth = customer_value(batch, months=months, prior=prior)
                scores = rows_of(batch, probability, worth, config)
                _, best = best_cases(scores, catalogue)
                yield batch[names].assign(
                    **{c: scores[c].to_numpy() for c in scores.columns}, _best_case=best
                )

        added = {c: "string" if c == "risk_tier" else "double" for c in SCORE_COLUMNS[1:]}
        added["_best_case"] = "double"
        scored = joined.mapInPandas(value, _extended(features, added)).localCheckpoint()
        try:
            score_columns = list(SCORE_COLUMNS)
            rows = write_parquet(scored.select(*score_columns).orderBy("customer_id"), path)
            totals = scored.groupBy("risk_tier").count().collect()
            at_risk = scored.selectExpr("sum(value_at_risk) AS v").first()["v"]
            sample = scored.sample(fraction=min(1.0, DRIFT_SAMPLE_ROWS / rows), seed=0)
            sampled = sample.toPandas()
            drift = drift_summary(run.metadata, sampled, sampled["churn_probability"])
            drift["sample_rows"] = min(rows, DRIFT_SAMPLE_ROWS)
            candidates = scored.where("_best_case > 0").orderBy(
                scored._best_case.desc(), scored.customer_id.asc()
            )
            cost = np.array([i.cost for i in catalogue])
            need = rows_needed(config, cost)
            listed = None
            size = first_batch(need)
            while listed is None:
                head = (candidates.limit(size + 1) if need else candidates).toPandas()
                beyond = head["_best_case"].iloc[size] if need and len(head) > size else -np.inf
                head = head.iloc[:size] if need else head
                listed = choose(
                    head, head[score_columns], run.model, catalogue, config, beyond=beyond
                )
                size = 2 * size + first_batch(need)
        finally:
            scored.unpersist()
    finally:
        predicted.unpersist()
    return Scored(
        listed=listed,
        drift=drift,
        rows=rows,
        tiers={r["risk_tier"]: r["count"] for r in sorted(totals)},
        value_at_risk=float(at_risk or 0.0),
    )


def _model(parts: tuple[str, Any, Any, Any]) -> ChurnModel:
    """A scoring model from its broadcast parts: booster text, calibrator, features, levels."""
    import lightgbm as lgb

    text, calibrator, features, categories = parts
    return ChurnModel(lgb.Booster(model_str=text), calibrator, features, categories)


def _needs_history(frame: DataFrame) -> bool:
    """Whether some customer has no MRR to value them by (the purchase history is then read)."""
    if "mrr" not in frame.columns:
        return True
    return bool(frame.where("coalesce(mrr, 0) <= 0").limit(1).count())


def _extended(frame: DataFrame, columns: dict[str, str]) -> str:
    """DDL of ``frame``'s columns followed by ``columns`` (name to Spark type)."""
    fields = [f"{_ident(f.name)} {f.dataType.simpleString()}" for f in frame.schema.fields]
    return ", ".join([*fields, *(f"{_ident(name)} {kind}" for name, kind in columns.items())])

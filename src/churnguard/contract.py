"""The data contract: find, read and validate the customers/events/subscriptions/labels tables.

A dataset is a folder holding ``customers``, ``events``, ``subscriptions`` and ``labels`` as
``.csv`` or ``.parquet`` files (or paths given one by one). The checks are declared once here
(:func:`cell_checks`: column, condition, what was expected) and run by either engine, one pass
per table for the cell checks (events grouped by event type, so that the checks of the event
type run once per type and the feature plan gets the types counted). Validation stops at the
first problem with a one-line message that names the file, the line (CSV, counting the header
as line 1) or row (Parquet, from 1), the column, what was expected and what came in. A valid
dataset is exposed as typed views:

==============  ==========================================================================
customers       customer_id VARCHAR, signup_date TIMESTAMP (NULL when absent), attributes
events          customer_id VARCHAR, timestamp TIMESTAMP, event_type VARCHAR, value DOUBLE
subscriptions   customer_id VARCHAR, start_date TIMESTAMP, end_date TIMESTAMP, mrr DOUBLE,
                plan VARCHAR
labels          customer_id VARCHAR, churned INTEGER (0/1)
==============  ==========================================================================

Timestamps with a UTC offset are converted to UTC; naive ones are taken as UTC already. Static
attributes whose every value is a number become DOUBLE, all others VARCHAR.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import ibis
import pandas as pd

from churnguard.asof import FIRST_DATE, LAST_DATE
from churnguard.config import DataConfig, EngineConfig
from churnguard.csvfiles import cell_error, csv_problem
from churnguard.engine import Engine, Raw, open_engine
from churnguard.errors import DataContractError
from churnguard.io import FORMULA_STARTS, data_files, listing_sha256

TABLES: tuple[str, ...] = ("customers", "events", "subscriptions", "labels", "treatments")
FORMATS: tuple[str, ...] = (".parquet", ".csv")

# A UTC offset or Z after a time of day: '2025-01-01T08:00:00+02:00', '08:00Z', '08:00 +0200'.
TZ_SUFFIX = r"[0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)? ?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
TRUE, FALSE = ("1", "true", "t", "yes", "y"), ("0", "false", "f", "no", "n")
DATE_RANGE_EXPECTED = f"a date from {FIRST_DATE.date()} to before {LAST_DATE.date()}"
DATE_EXPECTED = "a date or date-time like 2025-01-31 or 2025-01-31T08:00:00"
#: Tables whose exact duplicate rows are refused (or dropped): they are sums of rows.
DEDUPLICATED = ("events", "subscriptions")
DUPLICATE_EXPECTED = (
    'each row once (the whole row repeats; [data] duplicates = "drop" keeps one of each)'
)
#: What an event type must look like: it becomes part of feature names.
EVENT_TYPE = "[a-z][a-z0-9_]*"
EVENT_TYPE_EXPECTED = (
    "an event type of lower-case letters, digits and underscores starting with a letter "
    "(event types become feature names)"
)
#: The largest amount, MRR or score taken: sums over millions of rows of it stay finite.
MAX_NUMBER = 1e15
#: Event types validation lists with their rows (for the feature plan) at most; beyond, the
#: plan counts them itself.
LISTED_EVENT_TYPES = 10_000


@dataclass(frozen=True)
class TableSpec:
    """Columns a table must have, and which columns hold dates or numbers."""

    name: str
    required: tuple[str, ...]
    timestamps: tuple[str, ...] = ()
    nullable_timestamps: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    #: A text column of few distinct values: the cell pass counts rows per value, so the checks
    #: of this column (which read it alone) run once per value, not once per row.
    by: str | None = None


SPECS: dict[str, TableSpec] = {
    "customers": TableSpec(
        "customers",
        ("customer_id",),
        timestamps=("signup_date",),
        nullable_timestamps=("signup_date",),
    ),
    "events": TableSpec(
        "events",
        ("customer_id", "timestamp", "event_type"),
        timestamps=("timestamp",),
        numbers=("value",),
        texts=("event_type",),
        by="event_type",
    ),
    "subscriptions": TableSpec(
        "subscriptions",
        ("customer_id", "start_date"),
        timestamps=("start_date", "end_date"),
        nullable_timestamps=("end_date",),
        numbers=("mrr",),
        texts=("plan",),
    ),
    "labels": TableSpec("labels", ("customer_id", "churned")),
    "treatments": TableSpec(
        "treatments",
        ("customer_id", "as_of", "intervention", "group"),
        timestamps=("as_of",),
        # the score a decision was made on, as assignments.csv carries it
        numbers=("cost", "propensity", "churn_probability", "customer_value", "expected_benefit"),
        texts=("intervention", "group", "run_id"),
    ),
}
#: What the ``group`` of a treatment may be.
GROUPS = ("treated", "holdout")


@dataclass(frozen=True)
class TableInfo:
    """One validated table: where it came from and what it holds."""

    name: str
    path: Path
    format: Literal["csv", "parquet"]
    rows: int
    columns: tuple[str, ...]


@dataclass
class Dataset:
    """A validated dataset: typed views on an engine, plus what was found in the files.

    :meth:`table` hands the views to Ibis, where the feature and label definitions run;
    ``views`` gives each table's view name on the engine.
    """

    engine: Engine
    tables: dict[str, TableInfo]
    attributes: dict[str, Literal["numeric", "categorical"]] = field(default_factory=dict)
    views: dict[str, str] = field(default_factory=dict)
    #: Exact duplicate rows left out per table (``[data] duplicates = "drop"``).
    dropped: dict[str, int] = field(default_factory=dict)
    #: Per event type (``event_type``), its ``rows`` and rows with a ``values``, as validation
    #: counted them (duplicates included), in event type order; None when there are more than
    #: :data:`LISTED_EVENT_TYPES`.
    event_types: pd.DataFrame | None = None

    def has(self, name: str) -> bool:
        return name in self.tables

    def table(self, name: str) -> ibis.Table:
        """The typed view ``name`` as an Ibis table on this dataset's engine."""
        if name not in self.tables:
            raise DataContractError(f"the dataset has no {name} table")
        return self.engine.table(self.views[name])

    @property
    def backend(self) -> ibis.BaseBackend:
        """The Ibis backend of the engine."""
        return self.engine.backend

    def fingerprint(self) -> str:
        """SHA-256 over each file's name, size and modification time: cheap, change-sensitive.

        A table that is a folder of part files counts each part.
        """
        digest = hashlib.sha256()
        for name in sorted(self.tables):
            digest.update(f"{name}:{listing_sha256(self.tables[name].path)};".encode())
        return digest.hexdigest()

    def warnings(self) -> list[str]:
        """What the data holds that is allowed but probably wrong, with counts: dropped
        duplicate rows, negative amounts or MRR, events before the customer's signup."""
        found = [
            f"{name}: {count:,} exact duplicate rows dropped (data.duplicates = drop)"
            for name, count in self.dropped.items()
            if count
        ]
        if self.has("events"):
            ev = self.table("events")
            negative = int(ev.filter(ev.value < 0).count().execute())
            if negative:
                found.append(
                    f"events: {negative:,} rows with a negative value (refunds?); spend features "
                    "and customer value take them as they are"
                )
            customers = self.table("customers")
            early = ev.join(customers, "customer_id").filter(lambda t: t.timestamp < t.signup_date)
            before = int(early.count().execute())
            if before:
                found.append(f"events: {before:,} rows dated before their customer's signup_date")
        if self.has("subscriptions"):
            subs = self.table("subscriptions")
            negative = int(subs.filter(subs.mrr < 0).count().execute())
            if negative:
                found.append(f"subscriptions: {negative:,} rows with a negative mrr")
        return found

    def summary(self) -> dict[str, object]:
        """Rows per table, customers, the event date range and the event types."""
        out: dict[str, object] = {n: t.rows for n, t in self.tables.items()}
        if self.has("events"):
            ev = self.table("events")
            span = ev.aggregate(first=ev.timestamp.min(), last=ev.timestamp.max()).to_pandas()
            out["first_event"], out["last_event"] = (
                pd.Timestamp(span[c].iloc[0]).tz_localize(None).to_pydatetime()
                for c in ("first", "last")
            )
            counts = ev.group_by("event_type").aggregate(n=ev.count())
            counts = counts.order_by([ibis.desc("n"), "event_type"]).to_pandas()
            out["event_types"] = dict(
                zip(counts["event_type"], counts["n"].astype(int), strict=True)
            )
        return out


def table_paths(cfg: DataConfig) -> dict[str, Path]:
    """Resolve each table's file from the config: an explicit path, else ``<folder>/<table>.*``.

    Raises DataContractError when the folder is missing or a table has both a CSV and a Parquet.
    """
    explicit = {name: getattr(cfg, name) for name in TABLES if getattr(cfg, name) is not None}
    if not explicit and not cfg.path.is_dir():
        raise DataContractError(f"{cfg.path}: dataset folder does not exist")
    found: dict[str, Path] = {}
    for name in TABLES:
        if name in explicit:
            found[name] = explicit[name]
            continue
        candidates = [
            cfg.path / f"{name}{ext}" for ext in FORMATS if (cfg.path / f"{name}{ext}").exists()
        ]
        if len(candidates) > 1:
            raise DataContractError(
                f"{cfg.path}: both {candidates[0].name} and {candidates[1].name} exist; keep one"
            )
        if candidates:
            found[name] = candidates[0]
    return found


def load_dataset(
    data: DataConfig | Path | str,
    *,
    definition: str | None = None,
    engine: EngineConfig | Engine = EngineConfig(),
    interventions: Sequence[str] | None = None,
) -> Dataset:
    """Find, read and validate a dataset; return typed views over it.

    Parameters
    ----------
    data : a dataset folder, or a :class:`DataConfig` with per-table paths.
    definition : churn definition the data must support: ``subscription`` needs the
        subscriptions table, ``labels`` the labels table; the others need events.
    engine : the engine to read on, or the ``[engine]`` config to open one from (a new DuckDB
        connection by default).
    interventions : the catalogue's intervention names, which a ``treatments`` table must use
        (not checked when None).

    Raises
    ------
    DataContractError
        On the first problem found, naming file, line or row, column and what was expected.
    """
    cfg = data if isinstance(data, DataConfig) else DataConfig(path=Path(data))
    paths = required_paths(cfg, definition)
    runner = engine if isinstance(engine, Engine) else open_engine(engine)
    dataset = Dataset(engine=runner, tables={})
    raws: dict[str, Raw] = {}
    ids: dict[str, str] = {}
    for name in TABLES:
        if name in paths:
            raws[name] = runner.read(paths[name], name)
            ids[name] = _load_table(
                runner,
                raws[name],
                SPECS[name],
                dataset,
                drop=cfg.duplicates == "drop",
                interventions=interventions,
            )
    for name in ("events", "subscriptions", "labels", "treatments"):
        if name in raws:
            _check(runner, raws[name], _known_customers(runner, ids[name], dataset))
    return dataset


def load_decisions(
    dataset: Dataset, paths: Sequence[Path], interventions: Sequence[str] | None = None
) -> ibis.Table:
    """Decisions files (each shaped like the ``treatments`` table, e.g. nightly
    ``assignments.csv``) checked like that table against ``dataset``, as one table with a
    ``source`` column: the index of each row's file in ``paths``."""
    if not paths:
        raise DataContractError("no decisions files given")
    parts = []
    for k, path in enumerate(paths):
        view = f"decisions_{k}"
        raw = dataset.engine.read(path, view)
        ids = _load_table(
            dataset.engine,
            raw,
            SPECS["treatments"],
            dataset,
            drop=False,
            interventions=interventions,
            view=view,
            spreadsheet=path.suffix == ".csv",
        )
        _check(dataset.engine, raw, _known_customers(dataset.engine, ids, dataset))
        parts.append(dataset.table(view).mutate(source=ibis.literal(k, "int64")))
    return ibis.union(*parts) if len(parts) > 1 else parts[0]


def required_paths(cfg: DataConfig, definition: str | None) -> dict[str, Path]:
    """:func:`table_paths`, refusing a dataset without a table ``definition`` needs."""
    paths = table_paths(cfg)
    needed = ["customers"]
    needed += {"subscription": ["subscriptions"], "labels": ["labels"]}.get(definition or "", [])
    if definition != "labels":
        needed.append("events")
    for name in needed:
        if name not in paths:
            where = cfg.path / f"{name}.csv" if getattr(cfg, name) is None else getattr(cfg, name)
            raise DataContractError(
                f"{where}: file not found (expected {name}.csv or {name}.parquet"
                f" with columns {', '.join(SPECS[name].required)})"
            )
    return paths


def number_expected(value: object) -> str:
    """What a bad number cell should have held: a number, or a smaller one."""
    try:
        number = float(str(value).strip())
    except ValueError:
        return "a number like 12.5"
    return (
        f"a number of at most {MAX_NUMBER:.0e} in size"
        if math.isfinite(number)
        else ("a number like 12.5")
    )


def missing_columns(path: Path, spec: TableSpec, columns: list[str], *, header: bool) -> None:
    """Refuse a header (``header``: a CSV's first line; else a Parquet schema) without a
    required column."""
    missing = [c for c in spec.required if c not in columns]
    if missing:
        where = "line 1 (header)" if header else "schema"
        raise DataContractError(
            f"{path}, {where}, column '{missing[0]}': missing; expected columns "
            f"{', '.join(spec.required)}, found {', '.join(columns) or 'none'}"
        )


def no_rows(path: Path, spec: TableSpec) -> DataContractError:
    return DataContractError(
        f"{path}: has a header but no data rows; expected at least one {spec.name} row"
    )


@dataclass(frozen=True)
class Check:
    """One rule of the contract: the rows of a raw table where ``condition`` holds break it.

    ``expected`` says what the column should have held (worked out from the bad value when it
    is a function); ``match`` names more columns that find a CSV row's line on engines that
    do not number rows.
    """

    column: str
    condition: str
    expected: str | Callable[[object], str]
    match: tuple[str, ...] = ()


@dataclass(frozen=True)
class Zones:
    """A text date column must hold offsets (``+02:00``, ``Z``) on every row or on none."""

    column: str
    offset: str
    plain: str


def cell_checks(
    engine: Engine,
    raw: Raw,
    spec: TableSpec,
    interventions: Sequence[str] | None = None,
    *,
    spreadsheet: bool = False,
) -> tuple[dict[str, str], list[Check | Zones]]:
    """The typed columns of a table (name to SQL over the raw view) and its cell checks, in
    the order they are reported: the contract, declared once for every engine.

    ``spreadsheet``: the file is one churnguard wrote for spreadsheets (``assignments.csv``),
    whose text cells that a spreadsheet would run got a leading ``'``; it is taken off again.
    """
    present = set(raw.columns)

    def text(column: str) -> str:
        cell = engine.text(column)
        return _unneutralised(engine, cell) if spreadsheet else cell

    select: dict[str, str] = {"customer_id": text("customer_id")}
    checks: list[Check | Zones] = [
        Check(column, f"{engine.text(column)} IS NULL", "a value (the column is required)")
        for column in spec.required
        if column not in spec.timestamps and column != "churned"
    ]
    for column in spec.timestamps:
        if column not in present:
            select[column] = "CAST(NULL AS TIMESTAMP)"
            continue
        if raw.kinds[column] == "time":
            value = engine.ident(column)
            parsed = f"CAST({value} AS TIMESTAMP)"
        else:
            value = engine.text(column)
            parsed = engine.parse_time(value)
            offset = engine.matches(value, TZ_SUFFIX)
            checks += [
                Zones(column, offset, f"{value} IS NOT NULL AND NOT ({offset})"),
                Check(column, f"{value} IS NOT NULL AND ({parsed}) IS NULL", DATE_EXPECTED),
            ]
        if column not in spec.nullable_timestamps:
            checks.append(
                Check(column, f"{value} IS NULL", "a date or date-time (the column is required)")
            )
        checks.append(
            Check(
                column,
                f"({parsed}) < TIMESTAMP '{FIRST_DATE}' OR ({parsed}) >= TIMESTAMP '{LAST_DATE}'",
                DATE_RANGE_EXPECTED,
            )
        )
        select[column] = parsed
    for column in spec.numbers:
        if column not in present:
            select[column] = "CAST(NULL AS DOUBLE)"
            continue
        native = raw.kinds[column] == "number"
        # a stored number is present when not NULL: no need to write every one out as text
        value = engine.ident(column) if native else engine.text(column)
        number = f"CAST({value} AS DOUBLE)" if native else f"TRY_CAST({value} AS DOUBLE)"
        select[column] = number
        checks.append(
            Check(
                column,
                f"{value} IS NOT NULL AND (({number}) IS NULL OR isnan({number}) "
                f"OR abs({number}) > {MAX_NUMBER:.0e})",
                number_expected,
            )
        )
    for column in spec.texts:
        select[column] = text(column) if column in present else f"CAST(NULL AS {engine.text_type})"
    if spec.name == "events":  # the whole value must match: a regex `$` would allow a newline
        kind = select["event_type"]
        checks.append(
            Check(
                "event_type",
                f"regexp_extract({kind}, '^{EVENT_TYPE}', 0) <> {kind}",
                EVENT_TYPE_EXPECTED,
                ("customer_id", "timestamp"),
            )
        )
    if spec.name == "subscriptions" and "end_date" in present:
        checks.append(
            Check(
                "end_date",
                f"({select['end_date']}) < ({select['start_date']})",
                "an end_date on or after start_date",
                ("customer_id", "start_date"),
            )
        )
    if spec.name == "labels":
        flag = f"lower(trim(CAST({engine.ident('churned')} AS {engine.text_type})))"
        allowed = ", ".join(f"'{v}'" for v in TRUE + FALSE)
        checks.append(
            Check(
                "churned",
                f"{flag} IS NULL OR {flag} NOT IN ({allowed})",
                "a churn flag: 1/0, true/false or yes/no",
            )
        )
        select["churned"] = f"CAST({flag} IN ({', '.join(repr(v) for v in TRUE)}) AS INTEGER)"
    if spec.name == "treatments":
        checks += _treatment_checks(engine, select, present, interventions)
    return select, checks


def _unneutralised(engine: Engine, cell: str) -> str:
    """``cell`` without the ``'`` that :func:`~churnguard.io.neutralise` put before a text a
    spreadsheet would run."""
    starts = ", ".join(engine.literal(c) for c in FORMULA_STARTS)
    quote = engine.literal("'")
    return (
        f"CASE WHEN substr({cell}, 1, 1) = {quote} AND substr({cell}, 2, 1) IN ({starts}) "
        f"THEN substr({cell}, 2) ELSE {cell} END"
    )


def _treatment_checks(
    engine: Engine, select: dict[str, str], present: set[str], interventions: Sequence[str] | None
) -> list[Check]:
    """A decision's date is a date, its group one of :data:`GROUPS`, its intervention one of
    the catalogue's, its cost and propensity in range; ``select`` gets the group in lower case."""
    as_of, group = select["as_of"], f"lower({select['group']})"
    checks = [
        Check(
            "as_of",
            f"CAST(CAST({as_of} AS DATE) AS TIMESTAMP) <> {as_of}",
            "an as-of date like 2025-01-31, without a time of day",
        ),
        Check(
            "group",
            f"{group} NOT IN ({', '.join(engine.literal(g) for g in GROUPS)})",
            f"a group: {' or '.join(GROUPS)}",
            ("customer_id",),
        ),
    ]
    if interventions:
        names = ", ".join(engine.literal(name) for name in interventions)
        checks.append(
            Check(
                "intervention",
                f"{select['intervention']} NOT IN ({names})",
                f"an intervention of the catalogue ({', '.join(interventions)})",
                ("customer_id",),
            )
        )
    for column, condition, expected in (
        ("cost", "{} < 0", "a cost of 0 or more"),
        ("propensity", "{0} <= 0 OR {0} > 1", "a propensity above 0 and at most 1"),
        ("churn_probability", "{0} < 0 OR {0} > 1", "a churn probability from 0 to 1"),
    ):
        if column in present:
            checks.append(Check(column, condition.format(select[column]), expected))
    select["group"] = group
    return checks


def _load_table(
    engine: Engine,
    raw: Raw,
    spec: TableSpec,
    dataset: Dataset,
    *,
    drop: bool,
    interventions: Sequence[str] | None = None,
    view: str | None = None,
    spreadsheet: bool = False,
) -> str:
    """Check one raw table against its spec and register its typed view (named ``view``,
    default the table's name); ``drop`` keeps one of each exact duplicate row of events and
    subscriptions instead of refusing them. Returns the SQL reading a raw row's customer_id as
    the typed view has it."""
    view = view or spec.name
    missing_columns(raw.path, spec, raw.columns, header=raw.format == "csv")
    select, checks = cell_checks(engine, raw, spec, interventions, spreadsheet=spreadsheet)
    attributes = [c for c in raw.columns if c not in select] if spec.name == "customers" else []
    # text columns whose every cell is already trimmed and not empty are read as they are
    texts = [
        c
        for c in ("customer_id", *spec.texts, *attributes)
        if c in raw.kinds and raw.kinds[c] == "text"
    ]
    wanted = {"rows": "true"} | {
        f"untrimmed{i}": _untrimmed(engine, c) for i, c in enumerate(texts)
    }
    # the column each condition is about (a condition on spec.by alone runs once per value)
    about = {f"untrimmed{i}": c for i, c in enumerate(texts)}
    for i, check in enumerate(checks):
        if isinstance(check, Zones):
            wanted |= {f"offset{i}": check.offset, f"plain{i}": check.plain}
        else:
            wanted[f"check{i}"] = check.condition
            about[f"check{i}"] = check.column
    for i, column in enumerate(attributes):
        value = engine.text(column)
        wanted[f"values{i}"] = f"{value} IS NOT NULL"
        wanted[f"text{i}"] = f"{value} IS NOT NULL AND TRY_CAST({value} AS DOUBLE) IS NULL"
    by = spec.by
    of_value = {k: c for k, c in wanted.items() if by and about.get(k) == by}
    aggregates = {k: f"count_if({c})" for k, c in wanted.items() if k not in of_value}
    if by:  # events: also what the feature plan reads, rows and values per event type
        aggregates["values"] = f"count({select['value']})"
        grouped = engine.aggregate_by(
            raw, by, aggregates, of_value, name=engine.text(by), limit=LISTED_EVENT_TYPES
        )
        totals = grouped.totals
        if grouped.per_value is not None:
            dataset.event_types = _event_types(grouped.per_value)
    else:
        totals = engine.aggregate(raw, aggregates)
    counts = {k: int(v or 0) for k, v in totals.items()}
    if not counts["rows"]:
        raise no_rows(raw.path, spec)
    for i, check in enumerate(checks):
        if isinstance(check, Zones):
            if counts[f"offset{i}"] and counts[f"plain{i}"]:
                raise _mixed_zones(engine, raw, check)
        elif counts[f"check{i}"]:
            raise _failure(engine, raw, check)
    for i, column in enumerate(attributes):
        value = engine.text(column)
        if raw.kinds[column] == "number":
            kind, select[column] = "numeric", f"CAST({engine.ident(column)} AS DOUBLE)"
        elif raw.kinds[column] == "text" and counts[f"values{i}"] and not counts[f"text{i}"]:
            kind, select[column] = "numeric", f"TRY_CAST({value} AS DOUBLE)"
        else:
            kind, select[column] = "categorical", value
        dataset.attributes[column] = kind
    for i, column in enumerate(texts):
        if not counts[f"untrimmed{i}"] and select[column] == engine.text(column):
            select[column] = engine.ident(column)  # also lets filters reach the file scan
    if spec.name in ("customers", "labels"):
        _check(engine, raw, _unique_ids(engine, raw, select["customer_id"]))
    if spec.name == "treatments":
        _check(engine, raw, _one_decision_a_day(engine, raw, select))
    source = engine.ident(raw.view)
    if spec.name in DEDUPLICATED:
        source, dataset.dropped[spec.name] = _duplicates(
            engine, raw, engine.repeats(raw), drop=drop
        )
    body = ", ".join(f"{expr} AS {engine.ident(name)}" for name, expr in select.items())
    dataset.views[view] = engine.register(view, body, source)
    dataset.tables[view] = TableInfo(
        view, raw.path, raw.format, int(counts["rows"]), tuple(select)
    )
    return select["customer_id"]


def _event_types(per_value: dict[object, dict[str, int]]) -> pd.DataFrame:
    """Rows and values per event type, as :func:`churnguard.plan_features` reads them."""
    kinds = sorted(k for k in per_value if k is not None)
    return pd.DataFrame(
        {
            "event_type": kinds,
            "values": [int(per_value[k]["values"]) for k in kinds],
            "rows": [int(per_value[k]["rows"]) for k in kinds],
        }
    )


def _untrimmed(engine: Engine, column: str) -> str:
    """Rows whose text in ``column`` has blanks around it or is empty."""
    cell = engine.ident(column)
    return f"{cell} <> trim({cell}) OR {cell} = ''"


def _unique_ids(engine: Engine, raw: Raw, key: str) -> Check:
    repeated = f"SELECT {key} FROM {engine.ident(raw.view)} GROUP BY 1 HAVING count(*) > 1"
    return Check("customer_id", f"{key} IN ({repeated})", "each customer_id once (it repeats)")


def _one_decision_a_day(engine: Engine, raw: Raw, select: dict[str, str]) -> Check:
    day = f"CAST(CAST({select['as_of']} AS DATE) AS {engine.text_type})"
    key = f"{select['customer_id']} || '|' || {day}"
    repeated = f"SELECT {key} FROM {engine.ident(raw.view)} GROUP BY 1 HAVING count(*) > 1"
    return Check(
        "as_of",
        f"{key} IN ({repeated})",
        "one decision per customer and as-of date (this customer's date repeats)",
        ("customer_id",),
    )


def _known_customers(engine: Engine, key: str, dataset: Dataset) -> Check:
    known = f"SELECT customer_id FROM {engine.ident(dataset.views['customers'])}"
    return Check("customer_id", f"{key} NOT IN ({known})", "a customer_id listed in customers")


def _duplicates(engine: Engine, raw: Raw, repeats: int, *, drop: bool) -> tuple[str, int]:
    """The source of a typed view without the ``repeats`` exact duplicate rows, and how many
    it leaves out; refuses the first duplicate unless ``drop``."""
    digest = engine.row_hash(raw.columns)
    view = engine.ident(raw.view)
    if not repeats:
        return view, 0
    if not drop:
        twice = f"SELECT {digest} FROM {view} GROUP BY 1 HAVING count(*) > 1"
        raise _failure(
            engine,
            raw,
            Check("customer_id", f"{digest} IN ({twice})", DUPLICATE_EXPECTED, tuple(raw.columns)),
        )
    columns = ", ".join(engine.ident(c) for c in raw.columns)
    return f"(SELECT DISTINCT {columns} FROM {view}) AS distinct_rows", repeats


def _check(engine: Engine, raw: Raw, check: Check) -> None:
    """Run one check that needs more than one row at a time (a subquery)."""
    if engine.count(raw, check.condition):
        raise _failure(engine, raw, check)


def _failure(engine: Engine, raw: Raw, check: Check) -> DataContractError:
    """The one-line error for the first row breaking ``check``; in a CSV file that breaks the
    format, the break itself (an unclosed quote makes every later cell look wrong)."""
    if problem := _csv_break(raw):
        return DataContractError(problem)
    found = engine.locate(raw, check.condition, check.column, check.match)
    expected = check.expected(found.value) if callable(check.expected) else check.expected
    return DataContractError(
        cell_error(found.path, found.where, check.column, expected, found.value)
    )


def _mixed_zones(engine: Engine, raw: Raw, check: Zones) -> DataContractError:
    """Name the later of the first row with a UTC offset and the first without one."""
    if problem := _csv_break(raw):
        return DataContractError(problem)
    found = {
        "with": engine.locate(raw, check.offset, check.column),
        "without": engine.locate(raw, check.plain, check.column),
    }
    form = max(found, key=lambda k: found[k].number)
    other = "without" if form == "with" else "with"
    expected = (
        f"one time zone convention (row is {form} a UTC offset, "
        f"{found[other].where} is {other} one)"
    )
    later = found[form]
    return DataContractError(
        cell_error(later.path, later.where, check.column, expected, later.value)
    )


def _csv_break(raw: Raw) -> str | None:
    if raw.format != "csv":
        return None
    return next((p for part in data_files(raw.path) if (p := csv_problem(part))), None)

"""The data contract: find, read and validate the customers/events/subscriptions/labels tables.

A dataset is a folder holding ``customers``, ``events``, ``subscriptions`` and ``labels`` as
``.csv`` or ``.parquet`` files (or paths given one by one). Validation reads every row once in
DuckDB, out of core, and stops at the first problem with a one-line message that names the file,
the line (CSV, counting the header as line 1) or row (Parquet, from 1), the column, what was
expected and what came in. A valid dataset is exposed as typed DuckDB views:

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

import codecs
import csv
import datetime as dt
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import ibis
import pandas as pd

from churnguard.config import DataConfig, EngineConfig
from churnguard.errors import DataContractError
from churnguard.io import glob_escape, listing_sha256

TABLES: tuple[str, ...] = ("customers", "events", "subscriptions", "labels")
FORMATS: tuple[str, ...] = (".parquet", ".csv")

# A UTC offset or Z after a time of day: '2025-01-01T08:00:00+02:00', '08:00Z', '08:00 +0200'.
_TZ_SUFFIX = r"[0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)? ?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_TRUE = ("1", "true", "t", "yes", "y")
#: The dates churnguard takes, in the data and as as-of dates: far enough from the calendar's
#: ends that a window or horizon of any length still fits, wide enough for any history.
FIRST_DATE, LAST_DATE = dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1)
DATE_RANGE_EXPECTED = f"a date from {FIRST_DATE.date()} to before {LAST_DATE.date()}"
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
#: Characters a column name from the data may not hold: quotes, backticks, control characters.
UNSAFE_NAME = re.compile(r'["`\x00-\x1f\x7f-\x9f]')
_FALSE = ("0", "false", "f", "no", "n")


@dataclass(frozen=True)
class TableSpec:
    """Columns a table must have, and which columns hold dates or numbers."""

    name: str
    required: tuple[str, ...]
    timestamps: tuple[str, ...] = ()
    nullable_timestamps: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()


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
}


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
    """A validated dataset: typed views over the files, plus what was found in them.

    :meth:`table` hands the views to Ibis, where the feature and label definitions run. With
    the DuckDB engine ``con`` is the DuckDB connection holding the views; with Spark it is None,
    the views live in the Spark session behind ``backend`` and ``views`` gives their names there.
    """

    con: duckdb.DuckDBPyConnection | None
    tables: dict[str, TableInfo]
    attributes: dict[str, Literal["numeric", "categorical"]] = field(default_factory=dict)
    _backend: ibis.BaseBackend | None = field(default=None, repr=False)
    views: dict[str, str] = field(default_factory=dict)
    #: Exact duplicate rows left out per table (``[data] duplicates = "drop"``).
    dropped: dict[str, int] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.tables

    def table(self, name: str) -> ibis.Table:
        """The typed view ``name`` as an Ibis table bound to this dataset's connection."""
        if name not in self.tables:
            raise DataContractError(f"the dataset has no {name} table")
        return self.backend.table(self.views.get(name, name))

    @property
    def backend(self) -> ibis.BaseBackend:
        """The Ibis backend over ``con``, made on first use."""
        if self._backend is None:
            self._backend = ibis.duckdb.from_connection(self.con)
        return self._backend

    @property
    def engine(self) -> str:
        return "duckdb" if self.con is not None else "spark"

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
    con: duckdb.DuckDBPyConnection | None = None,
    engine: EngineConfig = EngineConfig(),
) -> Dataset:
    """Find, read and validate a dataset; return typed views over it.

    Parameters
    ----------
    data : a dataset folder, or a :class:`DataConfig` with per-table paths.
    definition : churn definition the data must support: ``subscription`` needs the
        subscriptions table, ``labels`` the labels table; the others need events.
    con : DuckDB connection to register the views in (a new in-memory one by default).
    engine : memory limit, threads and spill folder of that connection.

    Raises
    ------
    DataContractError
        On the first problem found, naming file, line or row, column and what was expected.
    """
    cfg = data if isinstance(data, DataConfig) else DataConfig(path=Path(data))
    if engine.name == "spark":
        from churnguard.engine import spark

        return spark.load_dataset(cfg, definition=definition, engine=engine)
    paths = required_paths(cfg, definition)
    if con is None:
        con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.InvalidInputException:
        pass  # Jupyter without ipywidgets: the bar is already off, and DuckDB refuses the SET
    con.execute("SET memory_limit = ?", [engine.memory_limit])
    con.execute("SET threads = ?", [engine.thread_count()])
    if engine.temp_directory:
        con.execute("SET temp_directory = ?", [engine.temp_directory])
    dataset = Dataset(con=con, tables={})
    readers: dict[str, _Reader] = {}
    for name in TABLES:
        if name in paths:
            readers[name] = _Reader(con, paths[name], f"raw_{name}")
            dataset.tables[name] = _load_table(
                readers[name], SPECS[name], dataset, drop=cfg.duplicates == "drop"
            )
    for name in ("events", "subscriptions", "labels"):
        if name in readers:
            _check_known_customers(readers[name])
    return dataset


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


def file_format(path: Path) -> Literal["csv", "parquet"]:
    """``csv`` or ``parquet`` by the name's suffix; a folder of parts counts as its suffix."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataContractError(f"{path}: expected a .csv or .parquet file")
    return "csv" if suffix == ".csv" else "parquet"


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


def cell_error(path: Path | str, where: str, column: str, expected: str, got: object) -> str:
    """The one-line message for a bad cell: file, line or row, column, expected, got."""
    shown = "an empty cell" if got is None or str(got).strip() == "" else repr(_short(got))
    return f"{path}, {where}, column '{column}': expected {expected}, got {shown}"


def missing_columns(path: Path, spec: TableSpec, columns: list[str]) -> None:
    """Refuse a header without a required column."""
    missing = [c for c in spec.required if c not in columns]
    if missing:
        raise DataContractError(
            f"{path}, line 1 (header), column '{missing[0]}': missing; expected columns "
            f"{', '.join(spec.required)}, found {', '.join(columns) or 'none'}"
        )


def check_column_names(path: Path, columns: list[str], *, header: bool) -> None:
    """Refuse a column name holding a quote, a backtick or a control character.

    Names from the data become SQL identifiers and feature names; quoting makes any name safe
    in SQL, and refusing these characters keeps them out of quoting's corner cases, file
    headers and the terminal.
    """
    for column in columns:
        if UNSAFE_NAME.search(column):
            where = "line 1 (header)" if header else "schema"
            raise DataContractError(
                f"{path}, {where}, column {_short(column)!r}: expected a name "
                "without quotes, backticks or control characters"
            )


def csv_header(path: Path, dialect: dict[str, Any] | None = None) -> list[str]:
    """The names in a CSV file's first record, as written (``dialect``: :mod:`csv` options)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle, **(dialect or {})), [])
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataContractError(f"{path}, line 1 (header): cannot be read: {exc}") from None


def csv_problem(path: Path) -> str | None:
    """The first line of a CSV file that breaks the format (RFC 4180: commas, double quotes),
    as a one-line message; None when every record has the header's number of fields."""
    line = 1
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            header = next(reader, [])
            line = reader.line_num + 1
            for record in reader:
                if record and len(header) == 1 and len(record) > 1 and line == 2:
                    return (
                        f"{path}, line 1: expected the header ({', '.join(record)}), got a title "
                        f"or comment line {_short(header[0])!r}; remove the lines above the header"
                    )
                if record and len(record) != len(header):
                    if len(record) > 1:
                        got = f"{len(record)} fields"
                    elif record[0].strip():
                        got = f"one field, {_short(record[0])!r}"
                    else:
                        got = "a line of blanks"
                    return (
                        f"{path}, line {line}: expected {len(header)} fields, as in the header, "
                        f"got {got}"
                    )
                line = reader.line_num + 1
    except csv.Error as exc:
        reason = (
            "a quote opened on this line is never closed"
            if "end of data" in str(exc)
            else f"cannot be read as CSV ({exc})"
        )
        return f"{path}, line {line}: {reason}"
    return None


def csv_line(path: Path, row: int) -> int:
    """The line of a CSV file on which data record ``row`` (1-based, blank lines skipped as CSV
    readers skip them) starts."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        start, seen = reader.line_num + 1, 0
        for record in reader:
            if record:
                seen += 1
                if seen == row:
                    return start
            start = reader.line_num + 1
    return row + 1


def check_header(path: Path, header: list[str], columns: list[str]) -> None:
    """Refuse a header the engine read differently from how it is written: a name that is
    empty, repeated or holds control characters gets renamed (``column4``, ``timestamp_1``)
    by CSV readers, and the renamed column would be used without a word."""
    if header == columns:
        return
    check_column_names(path, header, header=True)
    for position, name in enumerate(header, start=1):
        if not name.strip():
            raise DataContractError(
                f"{path}, line 1 (header), column {position}: expected a column name, got "
                f"{'an empty cell' if not name else repr(name)}"
            )
        if header.index(name) < position - 1:
            raise DataContractError(
                f"{path}, line 1 (header), column {name!r}: appears twice; expected each "
                "column once"
            )
    raise DataContractError(
        f"{path}, line 1 (header): read as {', '.join(columns)}, but written as "
        f"{', '.join(map(repr, header))}"
    )


def _dialect(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, Any]:
    """The :mod:`csv` options matching the delimiter, quote and escape DuckDB found."""
    row = execute_one(
        con, "SELECT Delimiter, Quote, Escape FROM sniff_csv(?)", [glob_literal(path)]
    ).fetchone()
    delimiter, quote, escape = (None if v in (None, "(empty)", "") else v for v in row)
    options: dict[str, Any] = {"delimiter": delimiter or ","}
    if quote is None:
        options["quoting"] = csv.QUOTE_NONE
    else:
        options["quotechar"] = quote
    if escape is not None and escape != quote:
        options["escapechar"] = escape
    return options


def ident(name: str, quote: str = '"') -> str:
    """``name`` as a quoted SQL identifier, its quote characters doubled: safe whatever it holds.

    DuckDB quotes with ``"``; pass ``quote="`"`` for Spark SQL.
    """
    return quote + name.replace(quote, quote * 2) + quote


def execute_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None
) -> duckdb.DuckDBPyConnection:
    """Run exactly one SQL statement: DuckDB runs every statement of a string it is given, so a
    string that parses as more than one is refused rather than run."""
    statements = con.extract_statements(sql)
    if len(statements) != 1:
        raise DataContractError(
            f"refusing to run {len(statements)} SQL statements where one was built; "
            "a name in the data may hold SQL"
        )
    return con.execute(statements[0], params or [])


def no_rows(path: Path, spec: TableSpec) -> DataContractError:
    return DataContractError(
        f"{path}: has a header but no data rows; expected at least one {spec.name} row"
    )


class _Reader:
    """Reads one file into a raw all-text (CSV) or native (Parquet) DuckDB view."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, raw_view: str):
        self.con, self.path, self.raw_view = con, path, raw_view
        self.format = file_format(path)
        if not path.exists():
            raise DataContractError(f"{path}: file not found")
        if path.stat().st_size == 0:
            raise DataContractError(f"{path}: file is empty (0 bytes); expected a header and rows")
        if path.is_dir():
            raise DataContractError(
                f"{path}: is a folder; the duckdb engine reads one file per table (a folder of "
                "Parquet parts needs --engine spark)"
            )
        if self.format == "csv":
            _check_utf8(path)
            source = f"read_csv({_literal(path)}, all_varchar = true, header = true)"
        else:
            source = f"read_parquet({_literal(path)}, file_row_number = true)"
        try:
            # DDL cannot take bound parameters: the path goes in as an escaped string literal.
            execute_one(con, f"CREATE OR REPLACE TEMP VIEW {raw_view} AS SELECT * FROM {source}")
            described = execute_one(con, f"SELECT * FROM {raw_view} LIMIT 0").description
            self.columns = [d[0] for d in described if d[0] != "file_row_number"]
        except duckdb.Error as exc:
            raise self.unreadable(exc, f"cannot be read as {self.format.upper()}") from None
        if self.format == "csv":
            header = csv_header(path, _dialect(con, path))
            # A reader that met a broken line guesses: one wide column, or a row as header.
            if header != self.columns or len(self.columns) == 1:
                if problem := csv_problem(path):
                    raise DataContractError(problem)
            check_header(path, header, self.columns)
        check_column_names(path, self.columns, header=self.format == "csv")

    def where(self, row: int) -> str:
        """Where a user finds data row ``row`` (1-based): the file's line for CSV (blank lines
        and line breaks inside quotes counted), a row for Parquet."""
        return f"line {csv_line(self.path, row)}" if self.format == "csv" else f"row {row}"

    def unreadable(self, exc: duckdb.Error, what: str) -> DataContractError:
        """The error for a file DuckDB could not read: for CSV, the line that breaks the format
        when one can be found, else DuckDB's first line."""
        problem = csv_problem(self.path) if self.format == "csv" else None
        return DataContractError(problem or f"{self.path}: {what}: {_first_line(exc)}")

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        try:
            return execute_one(self.con, sql, params).fetchall()
        except duckdb.Error as exc:
            raise self.unreadable(exc, "cannot be read") from None

    def first_bad_row(self, condition: str, column: str) -> tuple[int, object] | None:
        """The first data row (1-based, file order) where ``condition`` holds, with its value."""
        count = self.query(f"SELECT count(*) FROM {self.raw_view} WHERE {condition}")[0][0]
        if not count:
            return None
        if self.format == "parquet":
            rows = self.query(
                f"SELECT file_row_number + 1, {ident(column)} FROM {self.raw_view} "
                f"WHERE {condition} "
                "ORDER BY file_row_number LIMIT 1"
            )
            return rows[0]
        # CSV has no row-number column: number the rows single-threaded, which keeps file order.
        threads = self.query("SELECT current_setting('threads')")[0][0]
        execute_one(self.con, "SET threads = 1")
        try:
            rows = self.query(
                f"SELECT n, {ident(column)} FROM (SELECT row_number() OVER () AS n, * "
                f"FROM {self.raw_view}) WHERE {condition} ORDER BY n LIMIT 1"
            )
        finally:
            execute_one(self.con, "SET threads = ?", [int(threads)])
        return rows[0]

    def fail(self, row: int, column: str, expected: str, got: object) -> DataContractError:
        """The error for a bad cell; in a CSV file that breaks the format, the break itself
        (an unclosed quote makes every later cell look wrong)."""
        problem = csv_problem(self.path) if self.format == "csv" else None
        if problem:
            return DataContractError(problem)
        return DataContractError(cell_error(self.path, self.where(row), column, expected, got))


def _load_table(reader: _Reader, spec: TableSpec, dataset: Dataset, *, drop: bool) -> TableInfo:
    """Validate one raw table against its spec and register its typed view; ``drop`` keeps one
    of each exact duplicate row of events and subscriptions instead of refusing them."""
    raw, path = reader.raw_view, reader.path
    missing_columns(path, spec, reader.columns)
    rows = reader.query(f"SELECT count(*) FROM {raw}")[0][0]
    if rows == 0:
        raise no_rows(path, spec)
    select: dict[str, str] = {}

    for column in spec.required:
        if column in spec.timestamps or column == "churned":
            continue
        bad = reader.first_bad_row(f"nullif(trim({_text(column)}), '') IS NULL", column)
        if bad:
            raise reader.fail(bad[0], column, "a value (the column is required)", bad[1])
    select["customer_id"] = _clean_text(reader, "customer_id")

    for column in spec.timestamps:
        if column in reader.columns:
            select[column] = _timestamp_column(
                reader, column, nullable=column in spec.nullable_timestamps
            )
        else:
            select[column] = "CAST(NULL AS TIMESTAMP)"
    for column in spec.numbers:
        select[column] = (
            _number_column(reader, column) if column in reader.columns else "CAST(NULL AS DOUBLE)"
        )
    for column in spec.texts:
        select[column] = (
            f"nullif(trim({_text(column)}), '')"
            if column in reader.columns
            else "CAST(NULL AS VARCHAR)"
        )
    if spec.name == "events":
        value = select["event_type"]
        bad = reader.first_bad_row(f"NOT regexp_full_match({value}, '{EVENT_TYPE}')", "event_type")
        if bad:
            raise reader.fail(bad[0], "event_type", EVENT_TYPE_EXPECTED, bad[1])
    if spec.name == "customers":
        _check_unique_ids(reader)
        for column in reader.columns:
            if column not in select:
                kind, expr = _attribute_column(reader, column)
                dataset.attributes[column] = kind
                select[column] = expr
    if spec.name == "subscriptions" and "end_date" in reader.columns:
        bad = reader.first_bad_row(
            f"({select['end_date']}) < ({select['start_date']})", "end_date"
        )
        if bad:
            raise reader.fail(bad[0], "end_date", "an end_date on or after start_date", bad[1])
    if spec.name == "labels":
        select["churned"] = _flag_column(reader, "churned")
        _check_unique_ids(reader)

    body = ", ".join(f"{expr} AS {ident(name)}" for name, expr in select.items())
    source = raw
    if spec.name in DEDUPLICATED:
        source, dataset.dropped[spec.name] = _duplicates(reader, drop=drop)
    execute_one(
        reader.con, f"CREATE OR REPLACE TEMP VIEW {spec.name} AS SELECT {body} FROM {source}"
    )
    return TableInfo(spec.name, path, reader.format, int(rows), tuple(select))


def _text(column: str) -> str:
    return f"CAST({ident(column)} AS VARCHAR)"


def _clean_text(reader: _Reader, column: str) -> str:
    """A text column without surrounding blanks; the bare column when it has none.

    The bare column lets DuckDB push filters on it into the file scan.
    """
    trimmed = f"nullif(trim({_text(column)}), '')"
    if (
        _column_type(reader, column) == "VARCHAR"
        and not reader.query(
            f"SELECT count(*) FROM {reader.raw_view} WHERE {ident(column)} <> "
            f"trim({ident(column)}) OR {ident(column)} = ''"
        )[0][0]
    ):
        return ident(column)
    return trimmed


def _timestamp_column(reader: _Reader, column: str, *, nullable: bool) -> str:
    """Validate a date/time column and return the SQL that yields it as naive UTC TIMESTAMP."""
    kind = _column_type(reader, column)
    if kind.startswith("TIMESTAMP WITH TIME ZONE"):
        expr = f"CAST({ident(column)} AS TIMESTAMP)"  # the session time zone is UTC
    elif kind.startswith(("TIMESTAMP", "DATE")):
        expr = f"CAST({ident(column)} AS TIMESTAMP)"
    else:
        value = f"nullif(trim({_text(column)}), '')"
        with_tz = reader.first_bad_row(f"regexp_matches({value}, '{_TZ_SUFFIX}')", column)
        without_tz = reader.first_bad_row(
            f"{value} IS NOT NULL AND NOT regexp_matches({value}, '{_TZ_SUFFIX}')", column
        )
        if with_tz and without_tz:
            later = max(with_tz, without_tz)
            form = "with" if later is with_tz else "without"
            other = "without" if form == "with" else "with"
            raise reader.fail(
                later[0],
                column,
                f"one time zone convention (row is {form} a UTC offset, "
                f"{reader.where(min(with_tz, without_tz)[0])} is {other} one)",
                later[1],
            )
        expr = f"CAST(TRY_CAST({value} AS TIMESTAMPTZ) AS TIMESTAMP)"
        bad = reader.first_bad_row(f"{value} IS NOT NULL AND ({expr}) IS NULL", column)
        if bad:
            raise reader.fail(
                bad[0],
                column,
                "a date or date-time like 2025-01-31 or 2025-01-31T08:00:00",
                bad[1],
            )
    if not nullable:
        bad = reader.first_bad_row(f"{ident(column)} IS NULL", column)
        if bad:
            raise reader.fail(bad[0], column, "a date or date-time (the column is required)", None)
    bad = reader.first_bad_row(
        f"({expr}) < TIMESTAMP '{FIRST_DATE}' OR ({expr}) >= TIMESTAMP '{LAST_DATE}'", column
    )
    if bad:
        raise reader.fail(bad[0], column, DATE_RANGE_EXPECTED, bad[1])
    return expr


def _number_column(reader: _Reader, column: str) -> str:
    kind = _column_type(reader, column)
    if kind in _NUMERIC_TYPES:
        expr = f"CAST({ident(column)} AS DOUBLE)"
    else:
        expr = f"TRY_CAST(nullif(trim({_text(column)}), '') AS DOUBLE)"
    bad = reader.first_bad_row(
        f"{ident(column)} IS NOT NULL AND nullif(trim({_text(column)}), '') IS NOT NULL "
        f"AND (({expr}) IS NULL OR NOT isfinite({expr}) OR abs({expr}) > {MAX_NUMBER:.0e})",
        column,
    )
    if bad:
        raise reader.fail(bad[0], column, number_expected(bad[1]), bad[1])
    return expr


def _attribute_column(
    reader: _Reader, column: str
) -> tuple[Literal["numeric", "categorical"], str]:
    """Numbers stay numbers; anything else is a category (text)."""
    kind = _column_type(reader, column)
    value = f"nullif(trim({_text(column)}), '')"
    if kind in _NUMERIC_TYPES:
        return "numeric", f"CAST({ident(column)} AS DOUBLE)"
    if kind == "VARCHAR":
        non_numeric = reader.query(
            f"SELECT count(*) FROM {reader.raw_view} WHERE {value} IS NOT NULL "
            f"AND TRY_CAST({value} AS DOUBLE) IS NULL"
        )[0][0]
        non_null = reader.query(f"SELECT count({value}) FROM {reader.raw_view}")[0][0]
        if non_null and not non_numeric:
            return "numeric", f"TRY_CAST({value} AS DOUBLE)"
    return "categorical", value


def _flag_column(reader: _Reader, column: str) -> str:
    value = f"lower(trim({_text(column)}))"
    allowed = ", ".join(f"'{v}'" for v in _TRUE + _FALSE)
    bad = reader.first_bad_row(f"{value} IS NULL OR {value} NOT IN ({allowed})", column)
    if bad:
        raise reader.fail(bad[0], column, "a churn flag: 1/0, true/false or yes/no", bad[1])
    truthy = ", ".join(f"'{v}'" for v in _TRUE)
    return f"CAST({value} IN ({truthy}) AS INTEGER)"


def _duplicates(reader: _Reader, *, drop: bool) -> tuple[str, int]:
    """The source of a typed view without exact duplicate rows, and how many it leaves out;
    refuses the first duplicate unless ``drop``."""
    columns = ", ".join(ident(c) for c in reader.columns)
    repeats = reader.query(
        f"SELECT count(*) - count(DISTINCT hash({columns})) FROM {reader.raw_view}"
    )[0][0]
    if not repeats:
        return reader.raw_view, 0
    if not drop:
        bad = reader.first_bad_row(
            f"hash({columns}) IN (SELECT hash({columns}) FROM {reader.raw_view} GROUP BY 1 "
            "HAVING count(*) > 1)",
            "customer_id",
        )
        raise reader.fail(bad[0], "customer_id", DUPLICATE_EXPECTED, bad[1])  # type: ignore[index]
    return f"(SELECT DISTINCT {columns} FROM {reader.raw_view})", int(repeats)


def _check_unique_ids(reader: _Reader) -> None:
    key = "trim(CAST(customer_id AS VARCHAR))"
    dup = reader.first_bad_row(
        f"{key} IN (SELECT {key} FROM {reader.raw_view} GROUP BY 1 HAVING count(*) > 1)",
        "customer_id",
    )
    if dup:
        raise reader.fail(dup[0], "customer_id", "each customer_id once (it repeats)", dup[1])


def _check_known_customers(reader: _Reader) -> None:
    condition = "trim(CAST(customer_id AS VARCHAR)) NOT IN (SELECT customer_id FROM customers)"
    bad = reader.first_bad_row(condition, "customer_id")
    if bad:
        raise reader.fail(bad[0], "customer_id", "a customer_id listed in customers", bad[1])


_NUMERIC_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "REAL",
}


def _column_type(reader: _Reader, column: str) -> str:
    rows = reader.query(f"SELECT typeof({ident(column)}) FROM {reader.raw_view} LIMIT 1")
    kind = rows[0][0] if rows else "VARCHAR"
    return "DOUBLE" if kind.startswith("DECIMAL") else kind


def _check_utf8(path: Path, chunk_size: int = 1 << 24) -> None:
    """Fail with the line number of the first byte sequence that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line += chunk.count(b"\n", 0, exc.start)
                raise DataContractError(
                    f"{path}, line {line}: expected UTF-8 text, got byte "
                    f"0x{chunk[exc.start]:02x}; re-export the file as UTF-8"
                ) from None
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise DataContractError(
                f"{path}, line {line}: expected UTF-8 text, the file ends inside a character"
            ) from None


def _literal(path: Path) -> str:
    """``path`` as a SQL string literal naming that one file: glob characters escaped, quotes
    doubled."""
    return "'" + glob_literal(path).replace("'", "''") + "'"


def refuse_glob(path: Path) -> None:
    """Refuse a path holding glob characters where the reader (Spark's) cannot be told to
    take them literally: it would read other files than the one named."""
    if re.search(r"[\[\]*?{}]", str(path)):
        raise DataContractError(
            f"{path}: holds glob characters ([ ] * ? {{ }}), which Spark reads as a pattern; "
            "rename the file or folder"
        )


def glob_literal(path: Path | str) -> str:
    """``path`` for DuckDB's file readers, which expand ``*``, ``?`` and ``[...]``: each of
    those written as a one-character class, so ``dset[1]`` reads ``dset[1]`` and not
    ``dset1``."""
    return glob_escape(str(path))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def _short(value: object, limit: int = 40) -> object:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

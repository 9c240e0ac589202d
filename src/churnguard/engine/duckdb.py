"""The embedded DuckDB engine (the default): one in-process connection, out of core.

DuckDB streams and spills, but a feature table is wide: a population of millions of customers
times several as-of dates does not fit a small memory limit in one piece. :meth:`pieces` then
says how many customer ranges keep each piece within ``[engine] memory_limit``, and
:meth:`write_parquet` streams the ranges into one file, in order.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.parquet as pq

from churnguard.config import EngineConfig
from churnguard.csvfiles import (
    check_column_names,
    check_header,
    check_utf8,
    csv_header,
    csv_line,
    csv_problem,
    first_line,
)
from churnguard.engine import BatchFunction, Engine, Kind, Location, Ranges, Raw, file_format
from churnguard.errors import DataContractError
from churnguard.io import atomic_path, glob_escape

#: Bytes of DuckDB memory budgeted per output cell. Measured on 1M customers with the default
#: 1500MB limit, the build alone (validation peaks at 1.43 GiB before it): at 40, six dates in
#: 13 ranges peaked at 1.40-1.42 GiB RSS (DuckDB's limit does not cover everything it
#: allocates) and ran 72-78 s; at 48, 16 ranges, 1.19 GiB and 83 s; at 32, 10 ranges, 1.8 GiB.
#: One date takes 3 ranges at 40 and 48 (1.17 GiB); 16 spilled hard.
_BYTES_PER_CELL = 40
#: Rows per Parquet row group of a written file (DuckDB's own default).
_ROW_GROUP = 122_880
#: Batches of :data:`_ROW_GROUP` rows waiting for the writer thread at most: about one piece of
#: a large build, so the next piece builds while it is written (1M customers, one date:
#: 1.4 GiB peak RSS, as without the thread).
_QUEUED = 3
#: Rows handed to a batch function at once.
_BATCH_ROWS = 1 << 20
_NUMBER_TYPES = (
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
    "DECIMAL",
)
_names = itertools.count()


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


def literal(path: Path) -> str:
    """``path`` as a SQL string literal naming that one file: glob characters escaped, quotes
    doubled (DDL cannot take bound parameters)."""
    return "'" + glob_escape(str(path)).replace("'", "''") + "'"


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """A zstd Parquet writer that dictionary-encodes text columns other than customer_id only:
    on the float columns of a feature table, trying a dictionary made writing a third slower
    and the file larger, and customer_id is (nearly) unique per row, so its dictionary only
    overflows (1M rows: 1.66-1.75 s and 110 MB without it, 1.67-2.0 s and 112 MB with)."""
    text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    texts = [
        f.name for f in schema if any(test(f.type) for test in text) and f.name != "customer_id"
    ]
    return pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=texts)


def partitions_needed(rows: int, columns: int, config: EngineConfig) -> int:
    """How many customer partitions keep one piece of a ``rows`` x ``columns`` build in memory."""
    return max(1, math.ceil(rows * columns * _BYTES_PER_CELL / config.memory_limit_bytes()))


class DuckDBEngine(Engine):
    """An in-memory DuckDB connection with the config's memory limit, threads and spill folder;
    times in UTC."""

    name = "duckdb"
    quote = '"'
    text_type = "VARCHAR"

    def __init__(self, config: EngineConfig = EngineConfig()):
        self.config = config
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        try:
            self.con.execute("SET enable_progress_bar = false")
        except duckdb.InvalidInputException:
            pass  # Jupyter without ipywidgets: the bar is already off, and DuckDB refuses the SET
        self.con.execute("SET memory_limit = ?", [config.memory_limit])
        self.con.execute("SET threads = ?", [config.thread_count()])
        if config.temp_directory:
            self.con.execute("SET temp_directory = ?", [config.temp_directory])
        try:
            # DuckDB 2 splits a grouped aggregate into key ranges that each read the whole input
            # again: the history pass read the events five times (13.7 s a 500k-customer piece,
            # against 11.3 s without)
            self.con.execute("SET disabled_optimizers = 'partitioned_execution'")
        except duckdb.ParserException:
            pass  # DuckDB before 2 has no such optimizer
        self._backend: ibis.BaseBackend | None = None

    @property
    def backend(self) -> ibis.BaseBackend:
        if self._backend is None:
            self._backend = ibis.duckdb.from_connection(self.con)
        return self._backend

    def matches(self, value: str, pattern: str) -> str:
        return f"regexp_matches({value}, '{pattern}')"

    def parse_time(self, value: str) -> str:
        return f"CAST(TRY_CAST({value} AS TIMESTAMPTZ) AS TIMESTAMP)"  # the session zone is UTC

    def row_hash(self, columns: Sequence[str]) -> str:
        return f"hash({', '.join(self.ident(c) for c in columns)})"

    def read(self, path: Path, name: str) -> Raw:
        form = file_format(path)
        if not path.exists():
            raise DataContractError(f"{path}: file not found")
        if path.stat().st_size == 0:
            raise DataContractError(f"{path}: file is empty (0 bytes); expected a header and rows")
        if path.is_dir():
            raise DataContractError(
                f"{path}: is a folder; the duckdb engine reads one file per table (a folder of "
                "Parquet parts needs --engine spark)"
            )
        raw = Raw(path, form, f"raw_{name}", [], {})
        if form == "csv":
            check_utf8(path)
            source = f"read_csv({literal(path)}, all_varchar = true, header = true)"
        else:
            source = f"read_parquet({literal(path)}, file_row_number = true)"
        try:
            execute_one(
                self.con, f"CREATE OR REPLACE TEMP VIEW {raw.view} AS SELECT * FROM {source}"
            )
            described = execute_one(self.con, f"DESCRIBE SELECT * FROM {raw.view}").fetchall()
        except duckdb.Error as exc:
            raise self._unreadable(raw, exc, f"cannot be read as {form.upper()}") from None
        types = {row[0]: row[1] for row in described if row[0] != "file_row_number"}
        raw.columns, raw.kinds = list(types), {c: _kind(t) for c, t in types.items()}
        if form == "csv":
            header = csv_header(path, self._dialect(path))
            # A reader that met a broken line guesses: one wide column, or a row as header.
            if header != raw.columns or len(raw.columns) == 1:
                if problem := csv_problem(path):
                    raise DataContractError(problem)
            check_header(path, header, raw.columns)
        check_column_names(path, raw.columns, header=form == "csv")
        return raw

    def _dialect(self, path: Path) -> dict[str, Any]:
        """The :mod:`csv` options matching the delimiter, quote and escape DuckDB found."""
        row = execute_one(
            self.con, "SELECT Delimiter, Quote, Escape FROM sniff_csv(?)", [glob_escape(str(path))]
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

    def _unreadable(self, raw: Raw, exc: duckdb.Error, what: str) -> DataContractError:
        """The error for a file DuckDB could not read: for CSV, the line that breaks the format
        when one can be found, else DuckDB's first line."""
        problem = csv_problem(raw.path) if raw.format == "csv" else None
        return DataContractError(problem or f"{raw.path}: {what}: {first_line(exc)}")

    def _query(self, raw: Raw, sql: str, params: list | None = None) -> list[tuple]:
        try:
            return execute_one(self.con, sql, params).fetchall()
        except duckdb.Error as exc:
            raise self._unreadable(raw, exc, "cannot be read") from None

    def _rows(self, raw: Raw, sql: str) -> Sequence[Sequence[Any]]:
        return self._query(raw, sql)

    def repeats(self, raw: Raw) -> int:
        """The rows' hashes sorted, counting each equal to the one before it: the sort streams
        through the cores where a DISTINCT count builds one hash set of every row (50M events:
        3.5-3.6 s against 4.6-4.9 s, the same peak memory). Where the sort runs out of memory,
        the grouped count, which can spill, runs instead."""
        digest = self.row_hash(raw.columns)
        hashed = f"SELECT {digest} AS h FROM {self.ident(raw.view)}"
        sql = (
            "SELECT count(*) FILTER (WHERE h = before) FROM "
            f"(SELECT h, lag(h) OVER (ORDER BY h) AS before FROM ({hashed}) AS hashed) AS sorted"
        )
        try:
            return int(execute_one(self.con, sql).fetchone()[0])
        except duckdb.OutOfMemoryException:
            return super().repeats(raw)
        except duckdb.Error as exc:
            raise self._unreadable(raw, exc, "cannot be read") from None

    def locate(self, raw: Raw, condition: str, column: str, match: Sequence[str] = ()) -> Location:
        if raw.format == "parquet":
            row, value = self._query(
                raw,
                f"SELECT file_row_number + 1, {self.ident(column)} FROM {raw.view} "
                f"WHERE {condition} ORDER BY file_row_number LIMIT 1",
            )[0]
            return Location(raw.path, f"row {row}", int(row), value)
        # CSV has no row-number column: number the rows single-threaded, which keeps file order.
        threads = self._query(raw, "SELECT current_setting('threads')")[0][0]
        execute_one(self.con, "SET threads = 1")
        try:
            row, value = self._query(
                raw,
                f"SELECT n, {self.ident(column)} FROM (SELECT row_number() OVER () AS n, * "
                f"FROM {raw.view}) WHERE {condition} ORDER BY n LIMIT 1",
            )[0]
        finally:
            execute_one(self.con, "SET threads = ?", [int(threads)])
        line = csv_line(raw.path, int(row))
        return Location(raw.path, f"line {line}", line, value)

    def read_parquet(self, path: Path) -> ir.Table:
        source = glob_escape(str(path))
        return self.backend.read_parquet(f"{source}/*.parquet" if path.is_dir() else source)

    def register(self, name: str, select: str, source: str) -> str:
        execute_one(
            self.con,
            f"CREATE OR REPLACE TEMP VIEW {self.ident(name)} AS SELECT {select} FROM {source}",
        )
        return name

    def write_parquet(
        self, ranges: Ranges, path: Path, metadata: dict[str, str] | None = None
    ) -> int:
        """Each range streams out of DuckDB in Arrow batches written by pyarrow as they come:
        neither the path nor the metadata (which holds names from the data) is ever written
        into SQL, as a COPY statement would need both as literals in its text.

        pyarrow writes on a thread of its own, at most :data:`_QUEUED` batches behind, so that
        compressing one range's rows overlaps building the next (a single-threaded writer
        otherwise stalls DuckDB: about 9 s of a 6-date build at 1M customers); no more than
        those batches are ever held outside DuckDB's memory limit."""
        rows = 0
        with atomic_path(path) as tmp:
            writer = None
            try:
                with ThreadPoolExecutor(max_workers=1) as pool:
                    queued: deque[Future[None]] = deque()
                    for batch in self._batches(ranges, _ROW_GROUP):
                        if writer is None:
                            writer = _writer(tmp, batch.schema.with_metadata(metadata or {}))
                        queued.append(
                            pool.submit(
                                writer.write_batch,
                                batch.cast(writer.schema),
                                row_group_size=_ROW_GROUP,
                            )
                        )
                        rows += batch.num_rows
                        while len(queued) > _QUEUED:
                            queued.popleft().result()  # raises what the writer raised
                    for written in queued:
                        written.result()
                if writer is None:  # no rows at all: an empty file with the columns
                    schema = self.backend.to_pyarrow(ranges.tables()[0].limit(0)).schema
                    writer = _writer(tmp, schema.with_metadata(metadata or {}))
            finally:
                if writer is not None:
                    writer.close()
        return rows

    def _batches(self, ranges: Ranges, size: int) -> Iterator[pa.RecordBatch]:
        """The rows of each range in turn, streamed out of DuckDB in Arrow batches of at most
        ``size`` rows (the relational API streams; a DB-API result would copy the rows).

        The query is compiled once (a six-date feature build at 1M customers compiled it again
        for each of 16 ranges, about a second each). It reads each table through a view keeping
        the rows between two DuckDB variables, set as bound parameters before each range is
        read; DuckDB reads a variable when it plans a query, so the filter still reaches the
        file scan. (The same filter inside the query would make DuckDB hold each filtered table
        in memory, as it does any common table whose filter it cannot evaluate when planning.)
        """
        n = next(_names)
        low, high = (f"_churnguard_{side}_{n}" for side in ("low", "high"))
        low_value, high_value = (f"getvariable({self.literal(v)})" for v in (low, high))
        key = self.ident("customer_id")
        views: list[str] = []

        def restrict(table: ir.Table) -> ir.Table:
            view = f"_churnguard_range_{n}_{len(views)}"
            views.append(view)
            execute_one(
                self.con,
                f"CREATE TEMP VIEW {self.ident(view)} AS SELECT * FROM "
                f"{self.ident(table.get_name())} WHERE ({low_value} IS NULL OR {key} >= "
                f"{low_value}) AND ({high_value} IS NULL OR {key} < {high_value})",
            )
            return self.backend.table(view)

        query = f"_churnguard_query_{n}"
        try:
            self.backend.create_view(query, ranges.query(restrict))
            for bounds in ranges.bounds:
                for name, value in zip((low, high), bounds, strict=True):
                    execute_one(self.con, f"SET VARIABLE {name} = CAST(? AS VARCHAR)", [value])
                yield from self.con.sql(f"SELECT * FROM {query}").to_arrow_reader(size)
        finally:
            for view in (query, *reversed(views)):
                execute_one(self.con, f"DROP VIEW IF EXISTS {self.ident(view)}")
            for name in (low, high):
                execute_one(self.con, f"RESET VARIABLE {name}")

    def map_batches(
        self,
        ranges: Ranges,
        function: BatchFunction,
        *,
        keep: Sequence[str],
        added: dict[str, str],
    ) -> ir.Table:
        """Batches of at most :data:`_BATCH_ROWS` rows as each range streams out of DuckDB (a
        range held whole inside DuckDB would count against its memory limit, beside the
        query); the result is held in memory as Arrow."""
        columns = [*keep, *added]
        parts = [
            pa.Table.from_pandas(function(batch.to_pandas())[columns], preserve_index=False)
            for batch in self._batches(ranges, _BATCH_ROWS)
        ]
        if not parts:  # no rows: the function still gives the columns their types
            empty = self.backend.to_pyarrow(ranges.tables()[0].limit(0)).to_pandas()
            parts = [pa.Table.from_pandas(function(empty)[columns], preserve_index=False)]
        name = f"_churnguard_batches_{next(_names)}"
        self.con.register(name, pa.concat_tables(parts, promote_options="permissive"))
        return self.backend.table(name)

    def release(self, table: ir.Table) -> None:
        self.con.unregister(table.get_name())

    def pieces(self, rows: int, columns: int) -> int:
        return partitions_needed(rows, columns, self.config)


def _kind(duckdb_type: str) -> Kind:
    if duckdb_type == "VARCHAR":
        return "text"
    if duckdb_type.startswith(_NUMBER_TYPES):
        return "number"
    if duckdb_type.startswith(("TIMESTAMP", "DATE")):
        return "time"
    return "other"

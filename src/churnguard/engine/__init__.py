"""The engine boundary: where tables are read, checked, queried and written.

An engine owns its connection (DuckDB, in process) or session (Spark) and what it costs: memory,
threads, spill space. It reads a file, or a folder of part files, into a raw view; counts the
rows that meet SQL conditions in one pass and locates the first one (a CSV line or a Parquet
row); registers typed views; runs Ibis expressions to pandas or, atomically, to Parquet, a
query at a time or over consecutive ranges of customers (:class:`Ranges`); and maps a Python
function over a table in batches (chunks on DuckDB, ``mapInPandas`` on Spark).

The rules live in the domain modules (:mod:`churnguard.contract` states the checks,
:mod:`churnguard.features` and :mod:`churnguard.labels` the Ibis definitions,
:mod:`churnguard.scoring` the steps of a run); engines import none of them.
:func:`open_engine` is the one place that picks an engine by ``[engine] name``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from churnguard.config import EngineConfig
from churnguard.errors import DataContractError

if TYPE_CHECKING:
    import ibis
    import ibis.expr.types as ir
    import pandas as pd

#: Turns a batch of rows into the same rows with columns added.
BatchFunction = Callable[["pd.DataFrame"], "pd.DataFrame"]
#: Restricts a table of the dataset to one range of customers.
Restrict = Callable[["ir.Table"], "ir.Table"]
#: A query over one range of customers: it reads each table of the dataset through the range's
#: restriction.
RangeQuery = Callable[[Restrict], "ir.Table"]
#: Kinds of column an engine reports for a raw table.
Kind = Literal["text", "number", "time", "other"]


@dataclass
class Raw:
    """A table as read, before any check: all text (CSV) or the file's own types (Parquet)."""

    path: Path
    format: Literal["csv", "parquet"]
    #: Name of the raw view in the engine.
    view: str
    columns: list[str]
    #: What each column holds, as far as SQL goes.
    kinds: dict[str, Kind]


@dataclass(frozen=True)
class Location:
    """Where a bad row is: the file to name (a part of a folder), ``line N`` or ``row N``, the
    number alone, and the value of the column asked for."""

    path: Path
    where: str
    number: int
    value: object


@dataclass(frozen=True)
class Grouped:
    """Aggregates over a table's rows (:meth:`Engine.aggregate_by`): their ``totals`` by key,
    and the same per distinct value, or None where there were too many values to list."""

    totals: dict[str, int]
    per_value: dict[Any, dict[str, int]] | None


@dataclass(frozen=True)
class Ranges:
    """One query read over consecutive ranges of customer_id, one range after another, so that
    a large build fits in memory: the same query at each range, which an engine may compile
    once and run with each range's bounds set (compiling a feature build took about a second
    a range at 1M customers, as long as a fifth of building the range)."""

    query: RangeQuery
    #: Each range's ``(low, high)`` in order; ``None`` leaves that side open.
    bounds: tuple[tuple[str | None, str | None], ...] = ((None, None),)

    @classmethod
    def whole(cls, table: ir.Table) -> Ranges:
        """A table read whole, as one range."""
        return cls(lambda restrict: table)

    def then(self, step: Callable[[ir.Table], ir.Table]) -> Ranges:
        """These ranges of ``step`` applied to the query."""
        query = self.query
        return Ranges(lambda restrict: step(query(restrict)), self.bounds)

    def tables(self) -> list[ir.Table]:
        """Each range's query, its bounds written in as literals."""
        return [
            self.query(lambda table, low=low, high=high: between(table, low, high))
            for low, high in self.bounds
        ]


def between(table: ir.Table, low: str | None, high: str | None) -> ir.Table:
    """The rows of ``table`` with ``low <= customer_id < high``; ``None`` leaves a side open."""
    if low is not None:
        table = table.filter(table.customer_id >= low)
    if high is not None:
        table = table.filter(table.customer_id < high)
    return table


def file_format(path: Path) -> Literal["csv", "parquet"]:
    """``csv`` or ``parquet`` by the name's suffix; a folder of parts counts as its suffix."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise DataContractError(f"{path}: expected a .csv or .parquet file")
    return "csv" if suffix == ".csv" else "parquet"


def sql_ident(name: str, quote: str = '"') -> str:
    """``name`` as a quoted SQL identifier, its quote characters doubled: safe whatever it holds.

    DuckDB quotes with ``"``; Spark SQL with a backtick.
    """
    return quote + name.replace(quote, quote * 2) + quote


class Engine(abc.ABC):
    """What the domain asks of an engine. SQL fragments it builds are in the engine's dialect;
    conditions handed back to it are built from them."""

    name: ClassVar[str]
    #: The identifier quote and the text type of the dialect.
    quote: ClassVar[str]
    text_type: ClassVar[str]

    @property
    @abc.abstractmethod
    def backend(self) -> ibis.BaseBackend:
        """The Ibis backend over the engine's connection or session."""

    # -- SQL dialect ---------------------------------------------------------------------------

    def ident(self, name: str) -> str:
        return sql_ident(name, self.quote)

    def literal(self, text: str) -> str:
        """``text`` as a SQL string literal."""
        return "'" + text.replace("'", "''") + "'"

    def text(self, column: str) -> str:
        """A cell as trimmed text, NULL when empty."""
        return f"nullif(trim(CAST({self.ident(column)} AS {self.text_type})), '')"

    @abc.abstractmethod
    def matches(self, value: str, pattern: str) -> str:
        """SQL true when the text ``value`` holds a match of the regular expression."""

    @abc.abstractmethod
    def parse_time(self, value: str) -> str:
        """SQL reading the text ``value`` as a naive UTC TIMESTAMP (offsets converted), NULL
        when it is not a date or date-time."""

    @abc.abstractmethod
    def row_hash(self, columns: Sequence[str]) -> str:
        """SQL hashing the whole row of ``columns``."""

    # -- reading and checking ------------------------------------------------------------------

    @abc.abstractmethod
    def read(self, path: Path, name: str) -> Raw:
        """Read ``path`` into a raw view for table ``name``.

        Raises
        ------
        DataContractError
            The file is missing, empty, not UTF-8 or not readable as its format, or its
            header is broken.
        """

    @abc.abstractmethod
    def _rows(self, raw: Raw, sql: str) -> Sequence[Sequence[Any]]:
        """The rows of a query over ``raw``; a failure to read it becomes one line."""

    def _row(self, raw: Raw, sql: str) -> Sequence[Any]:
        return self._rows(raw, sql)[0]

    def aggregate(self, raw: Raw, values: dict[str, str], where: str | None = None) -> dict:
        """Aggregates (SQL, by key) over the raw table's rows, in one pass; ``where`` may hold
        subqueries."""
        body = ", ".join(f"{sql} AS {self.ident(key)}" for key, sql in values.items())
        condition = f" WHERE {where}" if where else ""
        row = self._row(raw, f"SELECT {body} FROM {self.ident(raw.view)}{condition}")
        return dict(zip(values, row, strict=True))

    def aggregate_by(
        self,
        raw: Raw,
        column: str,
        values: dict[str, str],
        of_value: dict[str, str],
        *,
        name: str,
        limit: int,
    ) -> Grouped:
        """:meth:`aggregate` of ``values`` in one pass grouped by the raw ``column``, where
        each condition of ``of_value``, which reads ``column`` alone, runs once per distinct
        value and counts that value's rows: a check on a column of few values (an event type
        pattern) costs nothing per row. ``values`` must hold ``rows``, the count of rows.

        Also the aggregates per distinct value of ``name`` (SQL over ``column``, such as the
        value as the typed view reads it), unless there are more than ``limit`` of them.
        """
        key, rows = self.ident(column), self.ident("rows")
        inner = ", ".join(f"{sql} AS {self.ident(k)}" for k, sql in values.items())
        flags = ", ".join(
            f"CASE WHEN {sql} THEN {rows} ELSE 0 END AS {self.ident(k)}"
            for k, sql in of_value.items()
        )
        keys = [*values, *of_value]
        per_value = ", ".join(f"sum({self.ident(k)}) AS {self.ident(k)}" for k in keys)
        totals = ", ".join(f"sum(sum({self.ident(k)})) OVER () AS {self.ident(k)}" for k in keys)
        sql = (
            f"SELECT {name} AS _cg_value, count(*) OVER () AS _cg_values, {totals}, {per_value} "
            f"FROM (SELECT *{', ' if flags else ''}{flags} FROM (SELECT {key}, {inner} FROM "
            f"{self.ident(raw.view)} GROUP BY {key}) AS per_raw) AS flagged "
            f"GROUP BY {name} LIMIT {limit + 1}"
        )
        found = self._rows(raw, sql)
        if not found:  # no rows at all
            return Grouped(dict.fromkeys(keys, 0), {})
        width = len(keys)
        listed = None
        if found[0][1] <= limit:
            listed = {r[0]: dict(zip(keys, r[2 + width :], strict=True)) for r in found}
        return Grouped(dict(zip(keys, found[0][2 : 2 + width], strict=True)), listed)

    def repeats(self, raw: Raw) -> int:
        """How many rows repeat an earlier row exactly, grouped by each row's hash (a grouped
        aggregate spills to disk where memory runs short)."""
        digest = self.row_hash(raw.columns)
        hashed = f"SELECT count(*) AS n FROM {self.ident(raw.view)} GROUP BY {digest}"
        return int(self._row(raw, f"SELECT sum(n - 1) FROM ({hashed}) AS hashed")[0] or 0)

    def count(self, raw: Raw, condition: str) -> int:
        """How many rows meet ``condition``, which may hold subqueries."""
        return int(self.aggregate(raw, {"n": "count(*)"}, where=condition)["n"] or 0)

    @abc.abstractmethod
    def locate(self, raw: Raw, condition: str, column: str, match: Sequence[str] = ()) -> Location:
        """The first row (in file order) meeting ``condition``; ``match`` names more columns
        that pin its CSV line down when the engine does not number rows."""

    @abc.abstractmethod
    def register(self, name: str, select: str, source: str) -> str:
        """Create the view ``name`` as ``SELECT select FROM source``; returns the name it has
        in the engine (unique per dataset on a shared session)."""

    # -- running -------------------------------------------------------------------------------

    def table(self, view: str) -> ibis.Table:
        return self.backend.table(view)

    @abc.abstractmethod
    def read_parquet(self, path: Path) -> ir.Table:
        """A Parquet file, or a folder of parts, as a table (the path taken literally)."""

    @abc.abstractmethod
    def write_parquet(
        self, ranges: Ranges, path: Path, metadata: dict[str, str] | None = None
    ) -> int:
        """Write the rows of ``ranges``, in order, as Parquet at ``path``, atomically, with
        ``metadata`` (key to text) carried along; returns the rows written. DuckDB writes
        one file with the metadata inside, Spark a folder of parts with the metadata as
        files beside them (:func:`sidecar_name`)."""

    @abc.abstractmethod
    def map_batches(
        self,
        ranges: Ranges,
        function: BatchFunction,
        *,
        keep: Sequence[str],
        added: dict[str, str],
    ) -> ir.Table:
        """``function`` applied in batches to the rows of ``ranges`` (read one after another,
        as :meth:`write_parquet` reads them): a table of the ``keep`` columns and the ``added``
        ones (name to ``float64`` or ``string``) the function returns, in the ranges' order,
        held by the engine until :meth:`release`."""

    @abc.abstractmethod
    def release(self, table: ir.Table) -> None:
        """Free what :meth:`map_batches` holds for ``table``."""

    def pieces(self, rows: int, columns: int) -> int:
        """Into how many customer ranges an output of ``rows`` x ``columns`` must be built to
        fit the engine's memory (1: in one piece)."""
        return 1


def sidecar_name(key: str) -> str:
    """The file inside a Parquet folder holding metadata ``key`` (readers skip ``_`` files)."""
    return "_" + key.replace(".", "_") + ".json"


def open_engine(config: EngineConfig = EngineConfig()) -> Engine:
    """The engine ``[engine] name`` asks for, set up with its resources: the one place an engine
    is chosen."""
    if config.name == "spark":
        from churnguard.engine.spark import SparkEngine

        return SparkEngine(config)
    from churnguard.engine.duckdb import DuckDBEngine

    return DuckDBEngine(config)

"""The Spark engine: tables, checks and queries on a Spark session.

What runs where:

* tables are read and checked by Spark SQL in the cluster: one pass per table for the cell
  checks, joins for unique and known customer ids (the checks are :mod:`churnguard.contract`'s);
* features and labels are Ibis expressions compiled to Spark SQL by Ibis's PySpark backend;
* batch functions (scoring) run per partition with ``mapInPandas``; their results are
  checkpointed, so the long feature query is cut from the plans of what follows.

PySpark is imported here only, so the core install does not need it.
"""

from __future__ import annotations

import itertools
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
import pandas as pd
import pyarrow.parquet as pq

from churnguard.config import EngineConfig, SparkConfig
from churnguard.csvfiles import (
    check_column_names,
    check_header,
    check_utf8,
    csv_header,
    csv_line_of,
    csv_problem,
    first_line,
)
from churnguard.engine import (
    BatchFunction,
    Engine,
    Kind,
    Location,
    Ranges,
    Raw,
    file_format,
    sidecar_name,
)
from churnguard.errors import ConfigError, DataContractError, EngineError
from churnguard.io import atomic_folder, data_files

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Settings of a session churnguard starts; ``[engine.spark] conf`` overrides them.
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}
#: The Java releases PySpark 4 runs on.
MIN_JAVA = 17


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


class SparkEngine(Engine):
    """A Spark session (the active one, or one started from ``[engine.spark]``); views are named
    per engine, so datasets on one session do not meet."""

    name = "spark"
    quote = "`"
    text_type = "STRING"

    def __init__(self, config: EngineConfig = EngineConfig()):
        self.spark = session(config.spark)
        self._backend = ibis.pyspark.connect(self.spark)
        self._token = uuid.uuid4().hex[:8]
        self._names = itertools.count()
        self._held: dict[str, DataFrame] = {}

    @property
    def backend(self) -> ibis.BaseBackend:
        return self._backend

    def _view(self, name: str) -> str:
        return f"churnguard_{self._token}_{name}"

    def literal(self, text: str) -> str:
        # Spark SQL reads backslash escapes inside string literals
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def matches(self, value: str, pattern: str) -> str:
        return f"{value} rlike '{pattern}'"

    def parse_time(self, value: str) -> str:
        # Spark reads '+02:00' but not '+0200' or ' +02:00': write an offset after a time of
        # day the way it reads.
        offset = (
            f"regexp_replace({value}, '([0-9]{{2}}:[0-9]{{2}}(:[0-9]{{2}}([.][0-9]+)?)?) ?"
            "([+-][0-9]{2}):?([0-9]{2})$', '$1$4:$5')"
        )
        return f"try_cast({offset} AS TIMESTAMP)"

    def row_hash(self, columns: Sequence[str]) -> str:
        return f"xxhash64({', '.join(self.ident(c) for c in columns)})"

    def read(self, path: Path, name: str) -> Raw:
        """A table may be a file or a folder of part files (``events.parquet/``)."""
        form = file_format(path)
        refuse_glob(path)
        if not path.exists():
            raise DataContractError(f"{path}: file not found")
        if path.is_file() and path.stat().st_size == 0:
            raise DataContractError(f"{path}: file is empty (0 bytes); expected a header and rows")
        raw = Raw(path, form, self._view(f"raw_{name}"), [], {})
        if form == "csv":
            for part in data_files(path):
                check_utf8(part)
            reader = self.spark.read.options(header=True, inferSchema=False, mode="FAILFAST")
            frame = reader.csv(str(path))
            where = ["_metadata.file_path AS _cg_file"]
        else:
            frame = self.spark.read.parquet(str(path))
            where = ["_metadata.file_path AS _cg_file", "_metadata.row_index AS _cg_row"]
        raw.columns = list(frame.columns)
        raw.kinds = {c: _kind(t) for c, t in frame.dtypes}
        if form == "csv":
            first = data_files(path)[0]
            check_header(first, csv_header(first, {"escapechar": "\\"}), raw.columns)
        check_column_names(path, raw.columns, header=form == "csv")
        frame.selectExpr("*", *where).createOrReplaceTempView(raw.view)
        return raw

    def _run(self, raw: Raw, action: Callable[[], Any]) -> Any:
        """Run a Spark action, turning a read failure (malformed CSV, bad file) into one line."""
        try:
            return action()
        except Exception as exc:
            if not type(exc).__module__.startswith(("pyspark", "py4j")):
                raise
            if raw.format == "csv":  # name the line that breaks the format, when one does
                for part in data_files(raw.path):
                    if problem := csv_problem(part):
                        raise DataContractError(problem) from None
            raise DataContractError(
                f"{raw.path}: cannot be read as {raw.format.upper()}: {first_line(exc)}"
            ) from None

    def _rows(self, raw: Raw, sql: str) -> Sequence[Sequence[Any]]:
        return self._run(raw, lambda: self.spark.sql(sql).collect())

    def locate(self, raw: Raw, condition: str, column: str, match: Sequence[str] = ()) -> Location:
        """Parquet rows are numbered by Spark. A CSV line is found by reading the file for the
        first row whose ``column`` (and ``match`` columns) hold the offending values."""
        columns = list(dict.fromkeys([column, *match]))
        chosen = ", ".join(self.ident(c) for c in columns)
        order = "_cg_file, _cg_row" if raw.format == "parquet" else "_cg_file"
        numbered = ", _cg_row" if raw.format == "parquet" else ""
        sql = (
            f"SELECT _cg_file{numbered}, {chosen} FROM {self.ident(raw.view)} WHERE {condition} "
            f"ORDER BY {order} LIMIT 1"
        )
        first = self._run(raw, lambda: self.spark.sql(sql).first())
        if raw.format == "parquet":
            number, where = first["_cg_row"] + 1, "row"
        else:
            number = csv_line_of(_local(first["_cg_file"]), {c: first[c] for c in columns}) or 0
            where = "line"
        shown = raw.path if raw.path.is_file() else _local(first["_cg_file"])
        return Location(shown, f"{where} {number or 'unknown'}", number, first[column])

    def read_parquet(self, path: Path) -> ir.Table:
        refuse_glob(path)
        return self.backend.read_parquet(f"{path}/*.parquet" if path.is_dir() else str(path))

    def register(self, name: str, select: str, source: str) -> str:
        view = self._view(name)
        self.spark.sql(
            f"CREATE OR REPLACE TEMP VIEW {self.ident(view)} AS SELECT {select} FROM {source}"
        )
        return view

    def frame(self, table: ir.Table) -> DataFrame:
        """An Ibis expression as a Spark DataFrame (lazy, nothing runs)."""
        view = self._view(f"q{next(self._names)}")
        self.backend.create_view(view, table, overwrite=True)
        return self.spark.table(view)

    def write_parquet(
        self, ranges: Ranges, path: Path, metadata: dict[str, str] | None = None
    ) -> int:
        """A folder of Parquet parts; the metadata files go inside it (readers skip names
        starting ``_``). A folder already at ``path`` is replaced only when it holds Spark's
        part files alone."""
        foreign = [p.name for p in data_files(path) if not p.name.startswith("part-")]
        if path.is_dir() and foreign:
            raise ConfigError(
                f"{path}: is a folder holding files Spark did not write "
                f"({', '.join(foreign[:3])}); give a new path, or remove the folder"
            )
        frames = [self.frame(table) for table in ranges.tables()]
        frame = frames[0]
        for other in frames[1:]:
            frame = frame.unionByName(other)
        with atomic_folder(path) as tmp:
            frame.write.parquet(str(tmp), compression="zstd")
            for key, text in (metadata or {}).items():
                (tmp / sidecar_name(key)).write_text(text, encoding="utf-8")
            rows = sum(pq.read_metadata(part).num_rows for part in data_files(tmp))
        return rows

    def map_batches(
        self,
        ranges: Ranges,
        function: BatchFunction,
        *,
        keep: Sequence[str],
        added: dict[str, str],
    ) -> ir.Table:
        """Each partition runs ``function`` on its batches (``mapInPandas``); the result is
        checkpointed, which cuts the long query before it from the plans of what follows."""
        source = self.frame(ibis.union(*ranges.tables()))
        types = {f.name: f.dataType.simpleString() for f in source.schema}
        spark_types = {"float64": "double", "string": "string"}
        schema = ", ".join(
            [
                *(f"{self.ident(name)} {types[name]}" for name in keep),
                *(f"{self.ident(name)} {spark_types[kind]}" for name, kind in added.items()),
            ]
        )
        columns = [*keep, *added]

        def apply(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                yield function(batch)[columns]

        result = source.mapInPandas(apply, schema).localCheckpoint()
        view = self._view(f"batches{next(self._names)}")
        result.createOrReplaceTempView(view)
        self._held[view] = result
        return self.backend.table(view)

    def release(self, table: ir.Table) -> None:
        view = table.get_name()
        held = self._held.pop(view, None)
        if held is not None:
            held.unpersist()
        self.spark.catalog.dropTempView(view)


def refuse_glob(path: Path) -> None:
    """Refuse a path holding glob characters, which Spark's reader cannot be told to take
    literally: it would read other files than the one named."""
    if re.search(r"[\[\]*?{}]", str(path)):
        raise DataContractError(
            f"{path}: holds glob characters ([ ] * ? {{ }}), which Spark reads as a pattern; "
            "rename the file or folder"
        )


_NUMERIC = re.compile(r"(tiny|small|big)?int|integer|long|short|byte|float|double|decimal.*")


def _kind(spark_type: str) -> Kind:
    if spark_type == "string":
        return "text"
    if _NUMERIC.fullmatch(spark_type):
        return "number"
    if spark_type.startswith(("timestamp", "date")):
        return "time"
    return "other"


def _local(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme in ("", "file") else Path(uri)

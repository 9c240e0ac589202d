"""Files as users export them: CSV structure, encodings and headers, and the one-line message
naming where a bad cell is.

These checks run before any engine reads a row, so each engine reports a broken file the same
way: the file, the line (counting the header as line 1), the column, what was expected.
"""

from __future__ import annotations

import codecs
import csv
import re
from pathlib import Path
from typing import Any

from churnguard.errors import DataContractError

#: Characters a column name from the data may not hold: quotes, backticks, control characters.
UNSAFE_NAME = re.compile(r'["`\x00-\x1f\x7f-\x9f]')


def cell_error(path: Path | str, where: str, column: str, expected: str, got: object) -> str:
    """The one-line message for a bad cell: file, line or row, column, expected, got."""
    shown = "an empty cell" if got is None or str(got).strip() == "" else repr(short(got))
    return f"{path}, {where}, column '{column}': expected {expected}, got {shown}"


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
                f"{path}, {where}, column {short(column)!r}: expected a name "
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
                        f"or comment line {short(header[0])!r}; remove the lines above the header"
                    )
                if record and len(record) != len(header):
                    if len(record) > 1:
                        got = f"{len(record)} fields"
                    elif record[0].strip():
                        got = f"one field, {short(record[0])!r}"
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


def check_utf8(path: Path, chunk_size: int = 1 << 24) -> None:
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


def short(value: object, limit: int = 40) -> object:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def csv_line_of(path: Path, values: dict[str, object]) -> int | None:
    """The line (header = 1) of the first row of a CSV whose cells hold ``values``: how a row
    is found when the reader does not number them."""
    if not path.is_file():
        return None
    wanted = {k: "" if v is None else str(v).strip() for k, v in values.items()}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            if all((row.get(k) or "").strip() == v for k, v in wanted.items()):
                return reader.line_num
    return None


def first_line(exc: Exception) -> str:
    """The first line of an exception's message (engines' messages run to many lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

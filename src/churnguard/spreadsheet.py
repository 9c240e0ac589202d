"""The intervention list as a retention team opens it: CSV for any tool, and an optional
``interventions.xlsx`` with probabilities as percentages, money as money, and a second sheet
that says what every column means.

Text cells of the CSV that a spreadsheet would run as a formula get a leading ``'``
(:func:`~churnguard.io.neutralise`); a plain number (an id such as ``-1001``) is written as it
is. The workbook writes every text cell as text, so nothing in it runs and every id is exact.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import xlsxwriter

from churnguard.io import atomic_path, neutralise

#: What each column of ``interventions.csv`` means (the workbook's second sheet).
COLUMNS = {
    "rank": "position on the list, 1 = the most expected benefit",
    "customer_id": "the customer, as the customers table names them",
    "churn_probability": "chance the customer churns within the horizon (calibrated)",
    "risk_tier": "high, medium or low, from [score] high_risk and medium_risk",
    "customer_value": (
        "what the customer pays a month (charge and purchases) x the months they are expected "
        "to stay"
    ),
    "value_at_risk": "churn probability x customer value",
    "reason_1": "the strongest reason the model gives for the risk",
    "reason_2": "the second reason, on another topic",
    "reason_3": "the third reason, on another topic",
    "intervention": "what to try, from the catalogue",
    "intervention_cost": "what the intervention costs for this customer",
    "expected_benefit": "expected value kept minus cost, what the list is ranked by",
    "effect_source": "assumed (the catalogue's success rate) or learned (measured uplift)",
    "as_of": "the date the customer was scored at",
    "first_listed": "first date of the customer's current unbroken run of lists",
    "new": "true when the customer was not on the previous list",
    "answers": "the problem or reason the intervention answers",
}
PERCENT = ("churn_probability",)
MONEY = ("customer_value", "value_at_risk", "intervention_cost", "expected_benefit")


def write_csv(frame: pd.DataFrame, path: Path, *, separator: str = ",") -> None:
    """A CSV for spreadsheets: RFC 4180 rows (CRLF; a cell holding the separator, a quote, a CR
    or an LF is quoted), formula-like text neutralised. With ``;``, the separator of locales
    whose decimal mark is a comma, numbers use a decimal comma."""
    safe = frame.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = [neutralise(v) for v in safe[column].astype(str)]
    with atomic_path(path) as tmp:
        safe.to_csv(
            tmp,
            index=False,
            lineterminator="\r\n",
            sep=separator,
            decimal="," if separator == ";" else ".",
        )


def write_xlsx(frame: pd.DataFrame, path: Path, *, currency: str = "") -> None:
    """The list as a workbook: sheet ``interventions`` (percent and money formats, the header
    frozen, filters on), sheet ``columns`` (what each column means)."""
    with atomic_path(path) as tmp:
        book = xlsxwriter.Workbook(
            str(tmp), {"strings_to_formulas": False, "nan_inf_to_errors": False}
        )
        bold = book.add_format({"bold": True})
        formats = {
            **{c: book.add_format({"num_format": "0.0%"}) for c in PERCENT},
            **{
                c: book.add_format(
                    {"num_format": f'"{currency}" #,##0.00' if currency else "#,##0.00"}
                )
                for c in MONEY
            },
        }
        sheet = book.add_worksheet("interventions")
        for j, column in enumerate(frame.columns):
            sheet.write_string(0, j, str(column), bold)
            sheet.set_column(j, j, max(12, min(60, len(str(column)) + 2)), formats.get(column))
            for i, value in enumerate(frame[column].tolist(), start=1):
                _cell(sheet, i, j, value, formats.get(column))
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, len(frame), max(len(frame.columns) - 1, 0))
        notes = book.add_worksheet("columns")
        notes.write_row(0, 0, ["column", "meaning"], bold)
        notes.set_column(0, 0, 20)
        notes.set_column(1, 1, 80)
        for i, column in enumerate(frame.columns, start=1):
            notes.write_string(i, 0, str(column))
            notes.write_string(i, 1, COLUMNS.get(column, "copied from the customers table"))
        book.close()


def _cell(
    sheet: xlsxwriter.worksheet.Worksheet,
    row: int,
    col: int,
    value: object,
    fmt: xlsxwriter.format.Format | None,
) -> None:
    """One cell by type: numbers as numbers, true/false as booleans, the rest as text."""
    if isinstance(value, bool | np.bool_):
        sheet.write_boolean(row, col, bool(value))
    elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        if not math.isnan(float(value)):
            sheet.write_number(row, col, float(value), fmt)
    elif value is not None and value is not pd.NA:
        sheet.write_string(row, col, str(value))

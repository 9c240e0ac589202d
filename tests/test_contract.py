"""The data contract through the CLI: one line naming file, row and column; exit 2; no output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import churnguard as cg
from churnguard.cli import app
from conftest import write_dataset

runner = CliRunner()


def _features_cli(folder: Path, tmp_path: Path) -> tuple[int, str, Path]:
    out = tmp_path / "features.parquet"
    result = runner.invoke(
        app, ["features", "--data", str(folder), "--as-of", "2025-03-01", "--out", str(out)]
    )
    return result.exit_code, result.output.strip(), out


def _expect_error(folder: Path, tmp_path: Path, message: str) -> None:
    code, output, out = _features_cli(folder, tmp_path)
    assert code == 2, output
    assert output == f"error: {message}"
    assert not out.exists()
    assert not list(tmp_path.glob(".features.parquet*"))


def test_a_valid_dataset_writes_features_and_validate_prints_a_summary(tmp_path, shop):
    folder = write_dataset(tmp_path / "d", **shop)
    code, output, out = _features_cli(folder, tmp_path)
    assert code == 0, output
    assert out.exists() and len(pd.read_parquet(out)) == 2
    result = runner.invoke(app, ["validate", "--data", str(folder)])
    assert result.exit_code == 0
    assert "13" in result.output and "login 7" in result.output


def test_missing_events_file(tmp_path, shop):
    folder = write_dataset(tmp_path / "d", customers=shop["customers"])
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/events.csv: file not found (expected events.csv "
        "or events.parquet with columns customer_id, timestamp, event_type)",
    )


def test_missing_column(tmp_path, shop):
    shop["events"] = shop["events"].drop(columns="event_type")
    folder = write_dataset(tmp_path / "d", **shop)
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/events.csv, line 1 (header), column 'event_type': "
        "missing; expected columns customer_id, timestamp, event_type, found "
        "customer_id, timestamp, value",
    )


def test_unparseable_timestamp_names_the_line(tmp_path, shop):
    shop["events"].loc[4, "timestamp"] = "20/02/2025"
    folder = write_dataset(tmp_path / "d", **shop)
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/events.csv, line 6, column 'timestamp': expected a "
        "date or date-time like 2025-01-31 or 2025-01-31T08:00:00, got '20/02/2025'",
    )


def test_unparseable_timestamp_in_parquet_names_the_row(tmp_path, shop):
    shop["events"].loc[4, "timestamp"] = "someday"
    folder = write_dataset(tmp_path / "d", fmt="parquet", **shop)
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/events.parquet, row 5, column 'timestamp': "
        "expected a date or date-time like 2025-01-31 or 2025-01-31T08:00:00, "
        "got 'someday'",
    )


def test_non_numeric_value(tmp_path, shop):
    shop["events"]["value"] = shop["events"]["value"].astype(object)
    shop["events"].loc[1, "value"] = "12,50 EUR"
    folder = write_dataset(tmp_path / "d", **shop)
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/events.csv, line 3, column 'value': expected a "
        "number like 12.5, got '12,50 EUR'",
    )


def test_duplicate_customer_id(tmp_path, shop):
    shop["customers"].loc[2, "customer_id"] = "A"
    shop["subscriptions"] = shop["subscriptions"].iloc[:3]
    shop["events"] = shop["events"][shop["events"].customer_id != "C"]
    folder = write_dataset(tmp_path / "d", **shop)
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/customers.csv, line 2, column 'customer_id': "
        "expected each customer_id once (it repeats), got 'A'",
    )


def test_events_for_an_unknown_customer(tmp_path, shop):
    shop["events"].loc[7, "customer_id"] = "Z"
    folder = write_dataset(tmp_path / "d", **shop)
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/events.csv, line 9, column 'customer_id': "
        "expected a customer_id listed in customers, got 'Z'",
    )


def test_empty_file(tmp_path, shop):
    folder = write_dataset(tmp_path / "d", **shop)
    (folder / "events.csv").write_text("")
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/events.csv: file is empty (0 bytes); expected a header and rows",
    )


def test_header_only_file(tmp_path, shop):
    folder = write_dataset(tmp_path / "d", **shop)
    (folder / "events.csv").write_text("customer_id,timestamp,event_type,value\n")
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/events.csv: has a header but no data rows; expected at least one events row",
    )


def test_mixed_time_zones(tmp_path, shop):
    shop["events"].loc[3, "timestamp"] = "2025-02-01T12:00:00+01:00"
    folder = write_dataset(tmp_path / "d", **shop)
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/events.csv, line 5, column 'timestamp': expected "
        "one time zone convention (row is with a UTC offset, line 2 is without one), "
        "got '2025-02-01T12:00:00+01:00'",
    )


def test_offsets_are_converted_to_utc(tmp_path, shop):
    shop["events"]["timestamp"] = pd.to_datetime(shop["events"]["timestamp"]).dt.strftime(
        "%Y-%m-%dT%H:%M:%S+02:00"
    )
    dataset = cg.load_dataset(write_dataset(tmp_path / "d", **shop))
    first = dataset.con.execute("SELECT min(timestamp) FROM events").fetchall()[0][0]
    assert str(first) == "2024-06-01 10:00:00"


def test_non_utf8_file(tmp_path, shop):
    folder = write_dataset(tmp_path / "d", **shop)
    raw = (folder / "customers.csv").read_bytes().replace(b"smb", b"caf\xe9", 1)
    (folder / "customers.csv").write_bytes(raw)
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/customers.csv, line 2: expected UTF-8 text, got "
        "byte 0xe9; re-export the file as UTF-8",
    )


def test_end_before_start(tmp_path, shop):
    shop["subscriptions"].loc[2, "end_date"] = "2024-01-01"
    folder = write_dataset(tmp_path / "d", **shop)
    _expect_error(
        folder,
        tmp_path,
        f"{folder}/subscriptions.csv, line 4, column 'end_date': "
        "expected an end_date on or after start_date, got '2024-01-01'",
    )


def test_bad_as_of_date_and_bad_config_exit_2(tmp_path, shop):
    folder = write_dataset(tmp_path / "d", **shop)
    result = runner.invoke(
        app,
        [
            "features",
            "--data",
            str(folder),
            "--as-of",
            "tomorrow",
            "--out",
            str(tmp_path / "f.parquet"),
        ],
    )
    assert result.exit_code == 2
    assert result.output.strip() == "error: as-of date 'tomorrow' is not a date like 2025-01-31"
    config = tmp_path / "bad.toml"
    config.write_text("[features]\nwindow = [7]\n")
    result = runner.invoke(app, ["validate", "--config", str(config), "--data", str(folder)])
    assert result.exit_code == 2
    assert "unknown key 'window' in [features]" in result.output


@pytest.mark.parametrize(
    "definition,table", [("subscription", "subscriptions"), ("labels", "labels")]
)
def test_definitions_name_the_table_they_need(tmp_path, shop, definition, table):
    folder = write_dataset(tmp_path / "d", customers=shop["customers"], events=shop["events"])
    with pytest.raises(cg.DataContractError, match=f"{table}.csv: file not found"):
        cg.load_dataset(folder, definition=definition)

"""The data contract through the CLI: one line naming file, row and column; exit 2; no output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import churnguard as cg
from churnguard import contract
from churnguard.cli import app
from conftest import HOSTILE_NAMES, file_tree, write_dataset

runner = CliRunner()


def _features_cli(folder: Path, tmp_path: Path, *extra: str) -> tuple[int, str, Path]:
    out = tmp_path / "features.parquet"
    result = runner.invoke(
        app,
        [
            "features",
            "-q",
            "--data",
            str(folder),
            "--as-of",
            "2025-03-01",
            "--out",
            str(out),
            *extra,
        ],
    )
    return result.exit_code, result.output.strip(), out


def expect_error(folder: Path, tmp_path: Path, message: str, *extra: str) -> None:
    """``churnguard features`` (with ``extra`` options) fails with exit 2, ``message`` and no
    output."""
    code, output, out = _features_cli(folder, tmp_path, *extra)
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


def _set(table: str, row: int, column: str, value: object):
    def edit(tables: dict[str, pd.DataFrame]) -> None:
        frame = tables[table]
        if frame[column].dtype.kind == "f" and isinstance(value, str):
            tables[table] = frame = frame.astype({column: object})
        frame.loc[row, column] = value

    return edit


def _drop_ids(tables: dict[str, pd.DataFrame]) -> None:
    """Make C's id a second 'A' and drop C's other rows, so only the repeat is wrong."""
    tables["customers"].loc[2, "customer_id"] = "A"
    tables["subscriptions"] = tables["subscriptions"].iloc[:3]
    tables["events"] = tables["events"][tables["events"].customer_id != "C"]


def _write(name: str, content: bytes | str):
    def edit(folder: Path) -> None:
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(path.read_bytes().replace(b"smb", content, 1))
        else:
            path.write_text(content)

    return edit


#: A header that ran SQL when names were pasted into queries: it wrote ``chosen.csv``.
_INJECTION = (
    "customer_id\") FROM raw_customers LIMIT 1; COPY (SELECT 'x' AS m) TO 'chosen.csv'; "
    'SELECT typeof("customer_id'
)
_TS = "expected a date or date-time like 2025-01-31 or 2025-01-31T08:00:00"
CASES = {
    "missing file": (
        lambda t: t.pop("events"),
        None,
        "csv",
        "{d}/events.csv: file not found (expected events.csv or events.parquet with columns "
        "customer_id, timestamp, event_type)",
    ),
    "missing column": (
        lambda t: t.update(events=t["events"].drop(columns="event_type")),
        None,
        "csv",
        "{d}/events.csv, line 1 (header), column 'event_type': missing; expected columns "
        "customer_id, timestamp, event_type, found customer_id, timestamp, value",
    ),
    "missing column in parquet": (
        lambda t: t.update(events=t["events"].drop(columns="event_type")),
        None,
        "parquet",
        "{d}/events.parquet, schema, column 'event_type': missing; expected columns "
        "customer_id, timestamp, event_type, found customer_id, timestamp, value",
    ),
    "unparseable timestamp": (
        _set("events", 4, "timestamp", "20/02/2025"),
        None,
        "csv",
        "{d}/events.csv, line 6, column 'timestamp': " + _TS + ", got '20/02/2025'",
    ),
    "a word among dates": (
        _set("events", 4, "timestamp", "yesterday"),
        None,
        "csv",
        "{d}/events.csv, line 6, column 'timestamp': " + _TS + ", got 'yesterday'",
    ),
    "unparseable timestamp in parquet": (
        _set("events", 4, "timestamp", "someday"),
        None,
        "parquet",
        "{d}/events.parquet, row 5, column 'timestamp': " + _TS + ", got 'someday'",
    ),
    "non-numeric value": (
        _set("events", 1, "value", "12,50 EUR"),
        None,
        "csv",
        "{d}/events.csv, line 3, column 'value': expected a number like 12.5, got '12,50 EUR'",
    ),
    "duplicate customer_id": (
        _drop_ids,
        None,
        "csv",
        "{d}/customers.csv, line 2, column 'customer_id': expected each customer_id once "
        "(it repeats), got 'A'",
    ),
    "events for an unknown customer": (
        _set("events", 7, "customer_id", "Z"),
        None,
        "csv",
        "{d}/events.csv, line 9, column 'customer_id': expected a customer_id listed in "
        "customers, got 'Z'",
    ),
    "empty file": (
        None,
        _write("events.csv", ""),
        "csv",
        "{d}/events.csv: file is empty (0 bytes); expected a header and rows",
    ),
    "header-only file": (
        None,
        _write("events.csv", "customer_id,timestamp,event_type,value\n"),
        "csv",
        "{d}/events.csv: has a header but no data rows; expected at least one events row",
    ),
    "mixed time zones": (
        _set("events", 3, "timestamp", "2025-02-01T12:00:00+01:00"),
        None,
        "csv",
        "{d}/events.csv, line 5, column 'timestamp': expected one time zone convention (row is "
        "with a UTC offset, line 2 is without one), got '2025-02-01T12:00:00+01:00'",
    ),
    "non-UTF-8 file": (
        None,
        _write("customers.csv", b"caf\xe9"),
        "csv",
        "{d}/customers.csv, line 2: expected UTF-8 text, got byte 0xe9; re-export the file "
        "as UTF-8",
    ),
    "a number too large to sum": (
        _set("subscriptions", 1, "mrr", "1e308"),
        None,
        "csv",
        "{d}/subscriptions.csv, line 3, column 'mrr': expected a number of at most 1e+15 in size, "
        "got '1e308'",
    ),
    "an event type that is not a name": (
        _set("events", 2, "event_type", "Page View"),
        None,
        "csv",
        "{d}/events.csv, line 4, column 'event_type': expected an event type of lower-case "
        "letters, digits and underscores starting with a letter (event types become feature "
        "names), got 'Page View'",
    ),
    "a date far in the future": (
        _set("events", 4, "timestamp", "2999-01-01"),
        None,
        "csv",
        "{d}/events.csv, line 6, column 'timestamp': expected a date from 1900-01-01 to before "
        "2200-01-01, got '2999-01-01'",
    ),
    "a file appended to itself": (
        lambda t: t.update(events=pd.concat([t["events"], t["events"]], ignore_index=True)),
        None,
        "csv",
        "{d}/events.csv, line 2, column 'customer_id': expected each row once (the whole row "
        "repeats; [data] duplicates = \"drop\" keeps one of each), got 'A'",
    ),
    "SQL in a column name": (
        lambda t: t["customers"].insert(1, _INJECTION, "x"),
        None,
        "parquet",
        "{d}/customers.parquet, schema, column 'customer_id\") FROM raw_customers LIMIT …': "
        "expected a name without quotes, backticks or control characters",
    ),
    "a backtick in a header": (
        lambda t: t.update(events=t["events"].rename(columns={"value": "val`ue"})),
        None,
        "csv",
        "{d}/events.csv, line 1 (header), column 'val`ue': expected a name without quotes, "
        "backticks or control characters",
    ),
    "end before start": (
        _set("subscriptions", 2, "end_date", "2024-01-01"),
        None,
        "csv",
        "{d}/subscriptions.csv, line 4, column 'end_date': expected an end_date on or after "
        "start_date, got '2024-01-01'",
    ),
}


def broken_dataset(tmp_path: Path, shop: dict[str, pd.DataFrame], case: str) -> tuple[Path, str]:
    """The shop dataset with the fault of ``CASES[case]``, and the message it must get."""
    edit_tables, edit_files, fmt, message = CASES[case]
    if edit_tables:
        edit_tables(shop)
    folder = write_dataset(tmp_path / "d", fmt=fmt, **shop)
    if edit_files:
        edit_files(folder)
    return folder, message.format(d=folder)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_gets_one_line_exit_2_and_no_output(tmp_path, shop, case):
    folder, message = broken_dataset(tmp_path, shop, case)
    expect_error(folder, tmp_path, message)


def test_offsets_are_converted_to_utc(tmp_path, shop):
    shop["events"]["timestamp"] = pd.to_datetime(shop["events"]["timestamp"]).dt.strftime(
        "%Y-%m-%dT%H:%M:%S+02:00"
    )
    dataset = cg.load_dataset(write_dataset(tmp_path / "d", **shop))
    first = dataset.table("events").timestamp.min().execute()
    assert str(first) == "2024-06-01 10:00:00"


def test_non_utf8_file(tmp_path, shop):
    folder = write_dataset(tmp_path / "d", **shop)
    raw = (folder / "customers.csv").read_bytes().replace(b"smb", b"caf\xe9", 1)
    (folder / "customers.csv").write_bytes(raw)
    expect_error(
        folder,
        tmp_path,
        f"{folder}/customers.csv, line 2: expected UTF-8 text, got "
        "byte 0xe9; re-export the file as UTF-8",
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


def test_sql_in_a_csv_header_is_refused_and_never_run(tmp_path, shop, monkeypatch):
    shop["customers"].insert(1, _INJECTION, "x")
    folder = write_dataset(tmp_path / "d", **shop)
    monkeypatch.chdir(tmp_path)
    before = file_tree(tmp_path)
    result = runner.invoke(app, ["validate", "-q", "--data", str(folder)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {folder}/customers.csv, line 1 (header), column 'customer_id\") FROM "
        "raw_customers LIMIT …': expected a name without quotes, backticks or control characters"
    )
    assert file_tree(tmp_path) == before


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(attribute=HOSTILE_NAMES, event_type=st.one_of(HOSTILE_NAMES, st.just("login")))
def test_names_from_the_data_are_refused_in_one_line_or_used_as_data(
    tmp_path_factory, shop, attribute, event_type
):
    """Any column name or event type: validate and features either refuse it in one line
    (exit 2) or succeed, and no file appears outside the out file."""
    root = tmp_path_factory.mktemp("hostile")
    tables = {name: frame.copy() for name, frame in shop.items()}
    if attribute not in tables["customers"].columns:
        tables["customers"][attribute] = ["x", "y", "z"]
    tables["events"].loc[3, "event_type"] = event_type
    folder = write_dataset(root / "d", **tables)
    before = file_tree(root)
    for args in (["validate"], ["features", "--as-of", "2025-03-01", "--out", str(root / "f.pq")]):
        result = runner.invoke(app, [*args, "-q", "--data", str(folder)])
        lines = result.output.strip().splitlines()
        assert result.exit_code in (0, 2), result.output
        if result.exit_code == 2:
            assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert "\x1b" not in result.output
        if args[0] == "features" and result.exit_code == 0:
            written = pd.read_parquet(root / "f.pq")
            assert attribute in written.columns or attribute in shop["customers"].columns
            assert sorted(written[attribute].dropna()) == ["x", "y"][: len(written)]
    assert set(file_tree(root)) - set(before) <= {"f.pq"}


@pytest.mark.parametrize(
    "header,message",
    [
        ("customer_id,seg,seg", "column 'seg': appears twice; expected each column once"),
        ("customer_id,,seg", "column 2: expected a column name, got an empty cell"),
        (
            'customer_id,"\n",seg',
            "column '\\n': expected a name without quotes, backticks or control characters",
        ),
    ],
)
def test_a_header_a_reader_would_rename_is_refused(tmp_path, shop, header, message):
    folder = write_dataset(tmp_path / "d", **shop)
    rows = (folder / "customers.csv").read_text().splitlines()[1:]
    body = "\n".join(",".join(r.split(",")[:1] + ["x", "y"]) for r in rows)
    (folder / "customers.csv").write_text(header + "\n" + body + "\n")
    result = runner.invoke(app, ["validate", "-q", "--data", str(folder)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {folder}/customers.csv, line 1 (header), {message}"


def test_validation_counts_rows_and_values_per_event_type_as_the_typed_view_has_them(
    tmp_path, shop
):
    events = shop["events"]
    events.loc[0, "event_type"] = f"  {events.loc[0, 'event_type']} "  # the same type, trimmed
    dataset = cg.load_dataset(write_dataset(tmp_path / "d", **shop))
    ev = dataset.table("events")
    counted = ev.group_by("event_type").aggregate(values=ev.value.count(), rows=ev.count())
    typed = counted.order_by("event_type").to_pandas()
    assert len(typed) == events["event_type"].str.strip().nunique()
    pd.testing.assert_frame_equal(dataset.event_types, typed, check_dtype=False)


@pytest.mark.parametrize("listed", [True, False])
def test_too_many_event_types_are_refused_naming_the_most_frequent(
    tmp_path, shop, monkeypatch, listed
):
    if not listed:  # beyond what validation lists, the plan counts the event types itself
        monkeypatch.setattr(contract, "LISTED_EVENT_TYPES", 100)
    extra = pd.DataFrame(
        [("A", f"2025-01-0{1 + i % 9} 00:00:00", f"kind_{i:03d}", None) for i in range(120)],
        columns=shop["events"].columns,
    )
    shop["events"] = pd.concat([shop["events"], extra], ignore_index=True)
    folder = write_dataset(tmp_path / "d", **shop)
    assert (cg.load_dataset(folder).event_types is None) == (not listed)
    code, output, out = _features_cli(folder, tmp_path)
    assert code == 2 and not out.exists()
    assert output.startswith(
        "error: the data has 124 event types, more than features.max_event_types = 100"
    )
    assert "(the most frequent: login, purchase, nps, kind_000," in output
    config = tmp_path / "kept.toml"
    config.write_text('[features]\nevent_types = ["login", "purchase"]\n')
    code, output, out = _features_cli(folder, tmp_path, "--config", str(config))
    assert code == 0, output
    columns = pd.read_parquet(out).columns
    assert "login_count_30d" in columns and not any("kind_" in c for c in columns)


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            lambda t: t["customers"].insert(1, "plan:tier", "x"),
            "{d}/customers.csv, column 'plan:tier': holds ':', which LightGBM does not take in a "
            "feature name; rename the column, or add it to [features] exclude",
        ),
        (
            lambda t: t["customers"].insert(1, "tenure_days", 1),
            "{d}/customers.csv, column 'tenure_days': has the name of another feature; rename "
            "the column, or add it to [features] exclude",
        ),
        (
            lambda t: t["events"].loc.__setitem__((0, "event_type"), "activity"),
            "events, column 'event_type': the type 'activity' makes the feature "
            "'days_since_last_activity', which another feature already is; rename the event type",
        ),
    ],
)
def test_validate_refuses_names_features_could_not_use(tmp_path, shop, edit, message):
    edit(shop)
    folder = write_dataset(tmp_path / "d", **shop)
    result = runner.invoke(app, ["validate", "-q", "--data", str(folder)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {message.format(d=folder)}"


_EVENTS = "customer_id,timestamp,event_type\nA,2025-01-01,login\n"


@pytest.mark.parametrize(
    "text,message",
    [
        (
            _EVENTS + "B,2025-01-02,login\n   \n",
            "line 4: expected 3 fields, as in the header, got a line of blanks",
        ),
        (
            _EVENTS + "B,2025-01-02,login\n\x1a",
            "line 4: expected 3 fields, as in the header, got one field, '\\x1a'",
        ),
        (
            _EVENTS + "B,2025-01-02\nA,2025-01-03,login\n",
            "line 3: expected 3 fields, as in the header, got 2 fields",
        ),
        (
            _EVENTS + "B,2025-01-02,login,x\n",
            "line 3: expected 3 fields, as in the header, got 4 fields",
        ),
        (
            _EVENTS + 'B,"2025-01-02,login\n' + "A,2025-01-03,login\n" * 50,
            "line 3: a quote opened on this line is never closed",
        ),
        (
            "# export of 2025\n" + _EVENTS,
            "line 1: expected the header (customer_id, timestamp, "
            "event_type), got a title or comment line '# export of 2025'; remove the lines above "
            "the header",
        ),
        (
            "customer_id,timestamp,event_type\n\nA,2025-01-01,login\n\nB,2025-01-0x,login\n",
            "line 5, column 'timestamp': " + _TS + ", got '2025-01-0x'",
        ),
        (
            _EVENTS + "A,2025-01-01,login\n" * 6998 + 'B,"2025-01-02\n' + "A,2025-01-03,x\n" * 99,
            "line 7001: a quote opened on this line is never closed",
        ),
    ],
    ids=[
        "blanks",
        "ctrl-z",
        "short row",
        "long row",
        "unclosed quote",
        "title",
        "blank lines",
        "unclosed quote past the sniffed sample",
    ],
)
def test_a_csv_that_breaks_the_format_is_named_by_its_real_line(tmp_path, shop, text, message):
    folder = write_dataset(tmp_path / "d", **shop)
    (folder / "events.csv").write_text(text)
    result = runner.invoke(app, ["validate", "-q", "--data", str(folder)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {folder}/events.csv, {message}"


def test_duplicates_drop_keeps_one_of_each_row_and_counts_them(tmp_path, shop):
    once = write_dataset(tmp_path / "once", **shop)
    shop["events"] = pd.concat([shop["events"], shop["events"].iloc[:4]], ignore_index=True)
    twice = write_dataset(tmp_path / "twice", **shop)
    config = tmp_path / "drop.toml"
    config.write_text('[data]\nduplicates = "drop"\n')
    result = runner.invoke(app, ["validate", "--data", str(twice), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "events: 4 exact duplicate rows dropped" in result.output
    built = {}
    for name, folder in (("once", once), ("twice", twice)):
        out = tmp_path / f"{name}.parquet"
        args = ["features", "--data", str(folder), "--as-of", "2025-03-01", "--out", str(out)]
        assert runner.invoke(app, [*args, "--config", str(config)]).exit_code == 0
        built[name] = pd.read_parquet(out)
    pd.testing.assert_frame_equal(built["once"], built["twice"])


@pytest.mark.parametrize("name,other", [("dset[1]", "dset1"), ("st*r", "stXr"), ("q?x", "qax")])
def test_a_path_with_glob_characters_is_read_as_written(tmp_path, shop, name, other):
    folder = write_dataset(tmp_path / name, **shop)
    decoy = {k: v.iloc[:1] for k, v in shop.items()}
    write_dataset(tmp_path / other, **decoy)
    dataset = cg.load_dataset(folder)
    assert dataset.tables["events"].rows == len(shop["events"])
    code, output, out = _features_cli(folder, tmp_path)
    assert code == 0, output
    assert len(pd.read_parquet(out)) == 2


# -- the treatments table: decisions a team carried out --------------------------------------


def with_treatments(shop: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return shop | {
        "treatments": pd.DataFrame(
            {
                "customer_id": ["A", "B", "A"],
                "as_of": ["2025-03-01", "2025-03-01", "2025-04-01"],
                "intervention": ["support escalation", "re-engagement e-mail", "feedback survey"],
                "group": ["treated", "Holdout", "treated"],
                "cost": [30.0, 0.0, 5.0],
                "propensity": [0.9, 0.1, 0.9],
            }
        )
    }


def test_a_treatments_table_is_read_typed_with_the_groups_in_lower_case(tmp_path, shop):
    folder = write_dataset(tmp_path / "d", **with_treatments(shop))
    dataset = cg.load_dataset(
        folder, interventions=("support escalation", "re-engagement e-mail", "feedback survey")
    )
    frame = dataset.table("treatments").order_by(["customer_id", "as_of"]).to_pandas()
    assert list(frame["group"]) == ["treated", "treated", "holdout"]
    assert str(frame["as_of"].iloc[0]) == "2025-03-01 00:00:00"
    assert runner.invoke(app, ["validate", "--data", str(folder)]).exit_code == 0


@pytest.mark.parametrize(
    "row,column,value,message",
    [
        (
            1,
            "group",
            "control",
            "line 3, column 'group': expected a group: treated or holdout, got 'control'",
        ),
        (
            0,
            "intervention",
            "free lunch",
            "line 2, column 'intervention': expected an intervention of the catalogue (support",
        ),
        (
            2,
            "as_of",
            "2025-03-01",
            "line 2, column 'as_of': expected one decision per customer and as-of date",
        ),
        (
            1,
            "as_of",
            "next week",
            "line 3, column 'as_of': expected a date or date-time like 2025-01-31",
        ),
        (
            1,
            "as_of",
            "2025-03-01T10:00:00",
            "line 3, column 'as_of': expected an as-of date like 2025-01-31, without a time",
        ),
        (
            0,
            "propensity",
            "0",
            "line 2, column 'propensity': expected a propensity above 0 and at most 1, got '0'",
        ),
        (2, "cost", "-5", "line 4, column 'cost': expected a cost of 0 or more, got '-5'"),
        (
            2,
            "customer_id",
            "Z",
            "line 4, column 'customer_id': expected a customer_id listed in customers",
        ),
    ],
)
def test_each_bad_treatment_is_one_line_and_exit_2(tmp_path, shop, row, column, value, message):
    tables = with_treatments(shop)
    tables["treatments"] = tables["treatments"].astype(object)
    tables["treatments"].loc[row, column] = value
    folder = write_dataset(tmp_path / "d", **tables)
    before = file_tree(tmp_path)
    result = runner.invoke(app, ["validate", "-q", "--data", str(folder)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert file_tree(tmp_path) == before

"""As-of dates: joining rows to the dates whose window holds them."""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from churnguard.asof import at_dates, covering, dates_table, normalize_as_of

_DAY = dt.timedelta(days=1)


@st.composite
def _windows(draw: st.DrawFn) -> tuple[list[dt.datetime], int, int, list[dt.datetime]]:
    """As-of dates, a window ``[d - before, d - after)`` in days, and times on its edges (a
    second either side too) or anywhere near the dates."""
    start = dt.datetime(2024, 1, 1)
    days = draw(st.lists(st.integers(0, 60), min_size=1, max_size=6, unique=True))
    dates = normalize_as_of([start + d * _DAY for d in days])
    after, before = draw(st.integers(-20, 10)), draw(st.integers(-10, 60))
    edge = st.builds(
        lambda d, shift, second: d - shift * _DAY + dt.timedelta(seconds=second),
        st.sampled_from(dates),
        st.sampled_from([after, before]),
        st.sampled_from([0, -1, 1]),
    )
    anywhere = st.builds(
        lambda s: start + dt.timedelta(seconds=s), st.integers(-80 * 86_400, 130 * 86_400)
    )
    times = draw(st.lists(st.one_of(edge, anywhere), min_size=1, max_size=30))
    return dates, after, before, times


@settings(max_examples=40, deadline=None)
@given(window=_windows(), as_timestamps=st.booleans())
def test_rows_join_exactly_the_dates_whose_window_holds_them(window, as_timestamps):
    """Row ``v`` joins date ``d`` exactly when ``d - before <= v < d - after``: the inequality
    join the positions replace, empty spans and edges to the second included."""
    dates, after, before, times = window
    rows = ibis.memtable(
        {"row": range(len(times)), "ts": times}, schema={"row": "int64", "ts": "timestamp"}
    )
    value = rows.ts if as_timestamps else rows.ts.epoch_seconds()
    joined = at_dates(
        rows, covering(value, dates, after), covering(value, dates, before), dates_table(dates)
    )
    got = ibis.duckdb.connect().to_pandas(joined.select("row", "as_of"))
    expected = sorted(
        (row, pd.Timestamp(d))
        for row, t in enumerate(times)
        for d in dates
        if d - before * _DAY <= t < d - after * _DAY
    )
    assert sorted(zip(got["row"], got["as_of"], strict=True)) == expected

"""Retention KPIs: the textbook examples put through the real code path, and cohorts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import churnguard as cg
from churnguard.charts import retention_curve
from churnguard.config import ChurnConfig
from churnguard.kpis import cohort_retention, compute_kpis, write_kpis
from conftest import write_dataset

SUBSCRIPTION = ChurnConfig(definition="subscription", horizon_days=30)


def _data(tmp_path, n: int, *, subs=None, events=None, signup="2024-06-01"):
    ids = [f"c{i:04d}" for i in range(n)]
    tables = {"customers": pd.DataFrame({"customer_id": ids, "signup_date": signup})}
    tables["events"] = pd.DataFrame(
        events or [(ids[0], "2024-06-02", "login", None)],
        columns=["customer_id", "timestamp", "event_type", "value"],
    )
    if subs is not None:
        tables["subscriptions"] = pd.DataFrame(
            subs, columns=["customer_id", "start_date", "end_date", "mrr"]
        )
    return cg.load_dataset(write_dataset(tmp_path, **tables)), ids


def test_1000_customers_at_the_start_of_a_month_50_lost_is_5_percent_churn(tmp_path):
    ids = [f"c{i:04d}" for i in range(1000)]
    subs = [(c, "2024-12-01", "2025-01-15" if i < 50 else None, 10.0) for i, c in enumerate(ids)]
    data, _ = _data(tmp_path, 1000, subs=subs)
    report = compute_kpis(data, start="2025-01-01", end="2025-02-01", churn=SUBSCRIPTION)
    assert report.total.values["churn_rate"] == pytest.approx(5.0)
    assert report.total.counts["at_start"] == 1000 and report.total.counts["lost"] == 50


def test_100_at_start_5_lost_10_new_is_95_percent_retention(tmp_path):
    ids = [f"c{i:04d}" for i in range(110)]
    subs = [(c, "2024-06-01", "2025-03-01" if i < 5 else None, 10.0) for i, c in enumerate(ids)]
    subs = subs[:100] + [(c, "2025-05-01", None, 10.0) for c in ids[100:]]
    data, _ = _data(tmp_path, 110, subs=subs)
    report = compute_kpis(data, start="2025-01-01", end="2026-01-01", churn=SUBSCRIPTION)
    assert report.total.values["retention_rate"] == pytest.approx(95.0)
    assert report.total.values["churn_rate"] == pytest.approx(5.0)


def test_200_of_1000_buying_again_is_a_20_percent_repeat_purchase_rate(tmp_path):
    ids = [f"c{i:04d}" for i in range(1000)]
    events = [(c, "2025-02-03", "purchase", 20.0) for c in ids]
    events += [(c, "2025-03-04", "purchase", 20.0) for c in ids[:200]]
    data, _ = _data(tmp_path, 1000, events=events)
    report = compute_kpis(data, start="2025-01-01", end="2025-07-01", churn=ChurnConfig())
    assert report.total.values["repeat_purchase_rate"] == pytest.approx(20.0)


def test_50_a_purchase_4_times_a_year_for_5_years_is_a_clv_of_1000(tmp_path):
    ids = [f"c{i:04d}" for i in range(10)]
    # 20 % of customers leave in the year: an average lifespan of 5 years
    subs = [(c, "2024-01-01", "2025-12-15" if i < 2 else None, 10.0) for i, c in enumerate(ids)]
    events = [(c, f"2025-{m:02d}-10", "purchase", 50.0) for c in ids for m in (1, 4, 7, 10)]
    data, _ = _data(tmp_path, 10, subs=subs, events=events)
    report = compute_kpis(data, start="2025-01-01", end="2026-01-01", churn=SUBSCRIPTION)
    assert report.total.values["clv"] == pytest.approx(1000.0)


def test_nps_60_csat_80_and_mrr_5000(tmp_path):
    ids = [f"c{i:04d}" for i in range(500)]
    scores = [10] * 70 + [8] * 20 + [3] * 10
    events = [(ids[i], "2025-01-05", "nps", float(s)) for i, s in enumerate(scores)]
    events += [(c, "2025-01-06", "csat", 5.0 if i < 400 else 2.0) for i, c in enumerate(ids)]
    subs = [(c, "2024-12-01", None, 50.0) for c in ids[:100]]
    data, _ = _data(tmp_path, 500, subs=subs, events=events)
    report = compute_kpis(data, start="2025-01-01", end="2025-02-01", churn=SUBSCRIPTION)
    assert report.total.values["nps"] == pytest.approx(60.0)
    assert report.total.values["csat"] == pytest.approx(80.0)
    assert report.total.values["mrr"] == pytest.approx(5000.0)
    frame = report.to_frame()  # each score beside the customers who answered
    assert frame.loc[0, "period"] == "2025-01-01 to 2025-02-01"  # the whole period, by name
    assert (frame.loc[0, "nps_respondents"], frame.loc[0, "csat_respondents"]) == (100, 500)


def test_absent_inputs_are_unavailable_with_a_reason_not_zero(tmp_path):
    data, _ = _data(tmp_path, 3)
    report = compute_kpis(data, start="2025-01-01", end="2025-03-01", churn=ChurnConfig())
    assert report.total.values["nps"] is None
    assert report.total.unavailable["nps"] == "no nps answers in the period"
    assert report.total.unavailable["mrr"] == "the dataset has no subscriptions table"
    assert [p.start.isoformat() for p in report.breakdown] == ["2025-01-01", "2025-02-01"]


def test_cohorts_and_files_on_generated_data(tmp_path):
    cg.generate(tmp_path / "d", customers=600, days=240, seed=4)
    data = cg.load_dataset(tmp_path / "d")
    report = compute_kpis(
        data, start="2024-04-01", end="2024-08-01", churn=SUBSCRIPTION, freq="quarter"
    )
    cohorts = cohort_retention(data, churn=SUBSCRIPTION, until="2024-08-20")
    assert cohorts.loc["2024-03", "month_1"] >= cohorts.loc["2024-03", "month_3"] > 0
    assert pd.isna(cohorts.loc["2024-07", "month_2"])  # in the future of the data
    files = write_kpis(report, cohorts, tmp_path / "out")
    saved = json.loads(files["kpis.json"].read_text())
    assert list(saved)[:7] == [
        "churn_rate",
        "retention_rate",
        "repeat_purchase_rate",
        "clv",
        "nps",
        "csat",
        "mrr",
    ]
    assert [b["start"] for b in saved["breakdown"]] == ["2024-04-01", "2024-07-01"]
    assert files["cohort_retention.png"].read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(files["kpis.csv"])  # one unit, percent, named in every header
    assert {"churn_rate_pct", "retention_rate_pct", "csat_pct"} <= set(table.columns)
    assert table.loc[0, "churn_rate_pct"] == pytest.approx(report.total.values["churn_rate"])
    written = pd.read_csv(files["cohorts.csv"], index_col="cohort")
    assert written.loc["2024-03", "month_1_pct"] == pytest.approx(
        100 * cohorts.loc["2024-03", "month_1"]
    )


def test_cohorts_that_began_before_the_data_are_flagged_and_left_out_of_the_curve(tmp_path):
    ids = [f"c{i:04d}" for i in range(40)]
    subs = [(c, "2024-01-01", "2024-03-10" if i % 2 else None, 10.0) for i, c in enumerate(ids)]
    data, _ = _data(tmp_path, 40, subs=subs, signup="2024-01-01")
    early = cg.load_dataset(
        write_dataset(
            tmp_path / "early",
            customers=pd.DataFrame(
                {"customer_id": ids, "signup_date": ["2023-06-15"] * 20 + ["2024-01-01"] * 20}
            ),
            events=pd.DataFrame(
                [(ids[0], "2024-01-02", "login", None)],
                columns=["customer_id", "timestamp", "event_type", "value"],
            ),
            subscriptions=pd.DataFrame(
                subs, columns=["customer_id", "start_date", "end_date", "mrr"]
            ),
        )
    )
    cohorts = cohort_retention(early, churn=SUBSCRIPTION, until="2024-06-01")
    assert cohorts["before_data"].to_dict() == {"2023-06": True, "2024-01": False}
    curve = retention_curve(cohorts).axes[0].lines[0].get_ydata()
    alone = cohort_retention(data, churn=SUBSCRIPTION, until="2024-06-01")
    assert not alone["before_data"].any()
    assert list(curve) == list(retention_curve(alone).axes[0].lines[0].get_ydata())


@pytest.mark.parametrize(
    "end,at_start,lost,new,churn_rate",
    [("2025-03-01", 2, 1, 1, 50.0), ("2025-02-02", 2, 0, 0, 0.0)],
)
def test_inactivity_kpis_count_at_start_by_the_horizon_whatever_the_period(
    tmp_path, end, at_start, lost, new, churn_rate
):
    """At start: active in the 30 days before 1 February (a and b, not c). Lost: no longer
    active in the 30 days before the end (b, a month later; nobody, a day later)."""
    events = [
        ("c0000", "2025-01-10", "login", None),
        ("c0000", "2025-02-10", "login", None),
        ("c0001", "2025-01-20", "login", None),
        ("c0002", "2024-12-01", "login", None),
        ("c0003", "2025-02-15", "login", None),
    ]
    data, _ = _data(tmp_path, 4, events=events)
    inactivity = ChurnConfig(definition="inactivity", horizon_days=30)
    total = compute_kpis(data, start="2025-02-01", end=end, churn=inactivity).total
    assert (total.counts["at_start"], total.counts["lost"], total.counts["new"]) == (
        at_start,
        lost,
        new,
    )
    assert total.values["churn_rate"] == pytest.approx(churn_rate)
    assert total.values["churn_rate"] + total.values["retention_rate"] == pytest.approx(100.0)


def test_months_without_any_dated_row_cost_no_query_and_say_why(tmp_path):
    data, _ = _data(tmp_path, 2, subs=[("c0000", "2024-06-01", None, 10.0)])
    report = compute_kpis(data, start="1950-01-01", end="2100-01-01", churn=SUBSCRIPTION)
    assert len(report.breakdown) == 150 * 12
    empty = report.breakdown[0]
    assert all(v is None for v in empty.values.values())
    assert empty.unavailable["churn_rate"] == "no event or subscription date falls in the period"
    june = next(p for p in report.breakdown if p.start == pd.Timestamp("2024-06-01").date())
    assert "no event or subscription date" not in june.unavailable.get("nps", "")


def test_a_month_and_a_year_of_a_steady_business_give_the_same_clv(tmp_path):
    """Customers join evenly for seven years, leave at a constant 30 % a year and buy for 50
    four times a year while they stay (spread without randomness): the CLV of a month and of
    a year agree, near the true 50 x 4 / (1 - e^-0.3) = 771."""
    n, rate, every = 40_000, 0.3, 365.25 / 4
    first = pd.Timestamp("2019-01-01")
    order = (np.arange(n) * 7919) % n  # a lifetime quantile for each arrival, well spread
    start = first + pd.to_timedelta(np.arange(n) * 7 * 365.25 / n, unit="D")
    years = -np.log((order + 0.5) / n) / rate
    end = start + pd.to_timedelta(years * 365.25, unit="D")
    ids = [f"c{i:05d}" for i in range(n)]
    subs = pd.DataFrame(
        {
            "customer_id": ids,
            "start_date": start,
            "end_date": end.where(end < "2026-06-01"),
            "mrr": 10.0,
        }
    )
    phase = (np.arange(n) * 0.6180339887) % 1 * every
    buys = [
        (c, s + pd.Timedelta(days=float(p + k * every)))
        for c, s, e, p in zip(ids, start, end, phase, strict=True)
        for k in range(int((e - s).days / every) + 1)
        if s + pd.Timedelta(days=float(p + k * every)) < e
    ]
    events = pd.DataFrame(buys, columns=["customer_id", "timestamp"]).assign(
        event_type="purchase", value=50.0
    )
    customers = pd.DataFrame({"customer_id": ids, "signup_date": start})
    data = cg.load_dataset(
        write_dataset(tmp_path, "parquet", customers=customers, events=events, subscriptions=subs)
    )
    month = compute_kpis(data, start="2025-03-01", end="2025-04-01", churn=SUBSCRIPTION)
    year = compute_kpis(data, start="2025-01-01", end="2026-01-01", churn=SUBSCRIPTION)
    clv_month, clv_year = month.total.values["clv"], year.total.values["clv"]
    assert clv_month == pytest.approx(clv_year, rel=0.05)
    assert clv_year == pytest.approx(50 * 4 / (1 - np.exp(-rate)), rel=0.05)

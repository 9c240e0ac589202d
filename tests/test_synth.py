"""The simulated business: deterministic, behaviour-driven, plausible."""

from __future__ import annotations

import duckdb
import pytest

from churnguard.synth import generate


@pytest.fixture(scope="module")
def business(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = generate(out, customers=3_000, days=540, seed=3)
    return out, summary


def test_same_seed_gives_identical_files_and_another_seed_does_not(business, tmp_path):
    out, _ = business
    again = generate(tmp_path / "again", customers=3_000, days=540, seed=3)
    for name, path in again.files.items():
        assert path.read_bytes() == (out / path.name).read_bytes(), name
    other = generate(tmp_path / "other", customers=3_000, days=540, seed=4)
    assert other.files["events"].read_bytes() != (out / "events.parquet").read_bytes()


def test_churners_stop_acting_and_their_subscription_ends(business):
    out, summary = business
    con = duckdb.connect()
    after = con.execute(f"""
        SELECT count(*) FROM '{out}/events.parquet' e
        JOIN (SELECT DISTINCT customer_id, churn_date FROM '{out}/truth.parquet'
              WHERE churn_date IS NOT NULL) t USING (customer_id)
        WHERE CAST(e.timestamp AS DATE) > t.churn_date
    """).fetchall()[0][0]
    assert after == 0
    open_after_churn = con.execute(f"""
        SELECT count(*) FROM '{out}/subscriptions.parquet' s
        JOIN (SELECT DISTINCT customer_id, churn_date FROM '{out}/truth.parquet'
              WHERE churn_date IS NOT NULL) t USING (customer_id)
        WHERE s.end_date IS NULL OR s.end_date > t.churn_date
    """).fetchall()[0][0]
    assert open_after_churn == 0
    assert summary.churned > 0


def test_churn_rate_and_event_mix_are_those_of_a_subscription_business(business):
    out, summary = business
    con = duckdb.connect()
    mix = dict(
        con.execute(f"""
        SELECT event_type, count(*) / sum(count(*)) OVER () FROM '{out}/events.parquet' GROUP BY 1
    """).fetchall()
    )
    assert 0.60 <= mix["login"] <= 0.85
    assert 0.05 <= mix["purchase"] <= 0.25
    assert 0.01 <= mix["support_ticket"] <= 0.08
    assert 0.01 <= mix["nps"] + mix["csat"] <= 0.12
    assert mix["payment_failed"] < 0.03
    monthly = con.execute(f"""
        WITH m AS (SELECT DATE '2024-01-01' + CAST(30 * i AS INTEGER) AS d FROM range(3, 17) t(i)),
        s AS (SELECT * FROM '{out}/subscriptions.parquet'),
        act AS (SELECT DISTINCT m.d, customer_id FROM m JOIN s ON start_date <= m.d
                AND (end_date IS NULL OR end_date > m.d)),
        kept AS (SELECT DISTINCT m.d, customer_id FROM m JOIN s ON start_date <= m.d + 30
                 AND (end_date IS NULL OR end_date > m.d + 30))
        SELECT avg(CASE WHEN kept.customer_id IS NULL THEN 1.0 ELSE 0.0 END)
        FROM act LEFT JOIN kept USING (d, customer_id)
    """).fetchall()[0][0]
    assert 0.02 <= monthly <= 0.08
    per_customer = summary.events / summary.customers
    assert 25 <= per_customer <= 80  # 540 days; about 50 over two years


def test_the_true_hazard_ranks_churners_above_stayers(business):
    """The truth table carries real signal: hazard at a date predicts churn in the next 30 days."""
    out, _ = business
    from sklearn.metrics import roc_auc_score

    con = duckdb.connect()
    frame = con.execute(f"""
        SELECT hazard, (churn_date IS NOT NULL AND churn_date < date + 30)::INT AS churned
        FROM '{out}/truth.parquet' WHERE date = (SELECT min(date) + 364 FROM '{out}/truth.parquet')
    """).df()
    assert 0.65 <= roc_auc_score(frame.churned, frame.hazard) <= 0.95

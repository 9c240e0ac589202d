"""Customer value against what customers then paid: each customer's own lifetime against one
population-wide lifetime, and subscribers' purchases counted or not.

A subscription business of 20,000 customers over three years (``churnguard generate
--customers 20000 --days 1095 --seed 1``, cached under ``data/bench/``) is trained with the
demo config on snapshots to 2025-11-01 and scored with the nightly config on 2025-12-31, as
``churnguard score`` does. The year after that date is never read by either step; it holds
what each scored customer then did: the months they kept a subscription and what they paid
(MRR while subscribed, and purchases).

Both lifetimes are compared on the months of that year they predict, Σ_{t<12} (1 − m)^t for
a monthly churn rate m (m = 1 ÷ lifetime): per tenth of churn probability, and as the mean
absolute error per customer. Revenue is compared per customer and in total, with the monthly
revenue the scorer priced (``customer_value ÷ lifetime_months``) and with MRR alone.

    python benchmarks/value.py
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import churnguard as cg
from churnguard.training import train
from churnguard.value import DAYS_PER_MONTH, expected_lifetime_months

ROOT = Path(__file__).resolve().parent.parent
AS_OF = dt.date(2025, 12, 31)
YEAR = pd.Timedelta(days=365)


def within_a_year(months: np.ndarray) -> np.ndarray:
    """Expected months paid in the next 12 under a constant monthly rate of 1 ÷ ``months``."""
    rate = 1 / months
    return (1 - (1 - rate) ** 12) / rate


def realised(folder: Path, ids: pd.Index) -> pd.DataFrame:
    """Per customer, over the year after the as-of date: months subscribed, MRR paid and
    purchases, from the tables the model never read that far."""
    start = pd.Timestamp(AS_OF)
    subs = pd.read_parquet(folder / "subscriptions.parquet")
    begin = pd.to_datetime(subs["start_date"]).clip(lower=start)
    end = pd.to_datetime(subs["end_date"]).fillna(start + YEAR).clip(upper=start + YEAR)
    days = (end - begin).dt.days.clip(lower=0)
    subs = subs.assign(months=days / DAYS_PER_MONTH, paid=days / DAYS_PER_MONTH * subs["mrr"])
    events = pd.read_parquet(folder / "events.parquet")
    stamp = pd.to_datetime(events["timestamp"])
    bought = events[
        (events["event_type"] == "purchase") & (stamp >= start) & (stamp < start + YEAR)
    ]
    current = subs[(pd.to_datetime(subs["start_date"]) < start) & (days > 0)]
    out = pd.DataFrame(index=ids)
    out["months"] = subs.groupby("customer_id")["months"].sum()
    out["mrr_paid"] = subs.groupby("customer_id")["paid"].sum()
    out["purchases"] = bought.groupby("customer_id")["value"].sum()
    out["mrr_now"] = current.groupby("customer_id")["mrr"].sum()
    return out.fillna(0.0)


def main() -> None:
    folder = ROOT / "data" / "bench" / "c20000-d1095-s1"
    if not (folder / "events.parquet").exists():
        cg.generate(folder, customers=20_000, days=1095, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"data.path": folder, "model.registry": Path(tmp) / "models"}
        train(
            cg.load_config(
                ROOT / "pipelines" / "demo.toml", {**overrides, "train.end": "2025-11-01"}
            )
        )
        nightly = cg.load_config(
            ROOT / "pipelines" / "nightly.toml", {**overrides, "score.out": f"{tmp}/scores"}
        )
        run = cg.score(nightly, as_of=AS_OF)
        scores = pd.read_parquet(run.out / "scores.parquet").set_index("customer_id")
    horizon = nightly.churn.horizon_days
    p = scores["churn_probability"].to_numpy()
    own = scores["lifetime_months"].to_numpy()
    population = np.full(len(p), float(expected_lifetime_months(p.mean(), horizon)))
    truth = realised(folder, scores.index)
    frame = pd.DataFrame(
        {
            "probability": p,
            "stayed": truth["months"].to_numpy(),
            "own": within_a_year(own),
            "population": within_a_year(population),
        }
    )
    frame["tenth"] = pd.qcut(frame["probability"], 10, labels=False) + 1
    print(f"{len(frame):,} customers scored on {AS_OF}; months subscribed in the next 12:\n")
    print("| tenth of risk | mean churn probability | stayed | own lifetime | one population |")
    print("|---|---|---|---|---|")
    for tenth, g in frame.groupby("tenth"):
        print(
            f"| {tenth} | {g['probability'].mean():.3f} | {g['stayed'].mean():.2f} | "
            f"{g['own'].mean():.2f} | {g['population'].mean():.2f} |"
        )
    for name in ("own", "population"):
        error = (frame[name] - frame["stayed"]).abs().mean()
        print(f"\n{name:>10}: mean absolute error {error:.2f} months", end="")
    rho = spearmanr(frame["own"], frame["stayed"]).statistic
    print(f"; own lifetime's rank correlation with the months stayed {rho:.3f}\n")
    paid = truth["mrr_paid"] + truth["purchases"]
    monthly = scores["customer_value"] / scores["lifetime_months"]
    print(
        f"paid in the next 12 months: {paid.sum():,.0f} (MRR {truth['mrr_paid'].sum():,.0f}, "
        f"purchases {truth['purchases'].sum():,.0f})"
    )
    for name, per_month in (("MRR and purchases", monthly), ("MRR alone", truth["mrr_now"])):
        for lifetime in ("own", "population"):
            predicted = per_month.to_numpy() * frame[lifetime].to_numpy()
            error = np.abs(predicted - paid.to_numpy()).mean()
            print(
                f"predicted with {name:<17} × {lifetime:>10} lifetime: {predicted.sum():>12,.0f} "
                f"({predicted.sum() / paid.sum():.2f} of it), mean absolute error {error:,.0f}, "
                f"rank correlation {spearmanr(predicted, paid).statistic:.3f}"
            )


if __name__ == "__main__":
    main()

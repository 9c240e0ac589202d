"""Decision quality: the true value of each way of choosing whom to contact, with what.

For each seed and effect setting, a business is simulated with 13 monthly randomised campaigns
(``churnguard generate --campaigns 13``; the packaged true effects, "strong", or the same with
every strength halved, "mild"; both with sleeping dogs). A model is trained on the data before
the last campaign's date, the evaluation date, and at that date every policy chooses customers
and interventions within a budget. Its value is measured with the simulation's truth, never with
the assumptions it chose by: Σ (true churn without − true churn with) × customer value − cost.

Policies: random targeting; ranking by churn probability (each customer given the catalogue's
choice); today's list (the catalogue's assumed success rates, the knapsack allocation); uplift
learned (``churnguard outcomes`` then ``churnguard uplift``) from the 6 and from the 12
campaigns before the evaluation date, with the catalogue as a prior (``[uplift] prior``'s
default) and from the evidence alone, used whether or not it was promoted (the verdict is
reported beside it), and "as used": what ``[score] effects = "learned"`` does, the learned
effects once promoted and the assumed ones until then; today's list and the 12-campaign
learner again choosing with "one lifetime", the value of the release before (one
population-wide expected lifetime for everyone; the truth still prices with each customer's
own); and the oracle (true effects, the same allocation).

    python benchmarks/policy.py [--customers 20000] [--seeds 3] [--budgets 1000 2500 5000]
        [--reach SHARE] [--first-seed 500]

Prints one row per setting, budget and policy: mean value over seeds, its range, the share of
the oracle's value, and how often the learned effects were promoted.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import churnguard as cg
from churnguard.campaigns import campaign_days
from churnguard.config import load_config, load_effects, run_catalogue
from churnguard.interventions import allocate, best_cases, choose, fitting
from churnguard.labels import population as customers_at
from churnguard.policy import Effects
from churnguard.reasons import drivers_of
from churnguard.registry import find_model, load_model
from churnguard.treatment_log import outcomes
from churnguard.uplift import learn_uplift
from churnguard.value import expected_lifetime_months, values_at

START = dt.date(2024, 1, 1)
DAYS = 730
HORIZON = 30
CAMPAIGNS = 13
POLICIES = (
    "random",
    "probability",
    "assumed",
    "learned 6",
    "learned 12",
    "learned 12, as used",
    "learned 6, evidence only",
    "learned 12, evidence only",
    "assumed, one lifetime",
    "learned 12, one lifetime",
    "oracle",
)


def settings() -> dict[str, object]:
    strong = load_effects()
    mild = dataclasses.replace(
        strong,
        effects=tuple(dataclasses.replace(e, strength=e.strength / 2) for e in strong.effects),
    )
    return {"strong": strong, "mild": mild}


def world(root: Path, seed: int, effects, customers: int) -> dict[str, object]:
    """Simulate, train, learn; return what the policies need at the evaluation date."""
    data = root / "data"
    cg.generate(
        data, customers=customers, days=DAYS, seed=seed, campaigns=CAMPAIGNS, effects=effects
    )
    dates = [START + dt.timedelta(days=d) for d in campaign_days(CAMPAIGNS, DAYS, HORIZON)]
    when = dates[-1]
    config_file = root / "c.toml"
    config_file.write_text(
        f'[data]\npath = "{data}"\n[churn]\ndefinition = "subscription"\n'
        f"horizon_days = {HORIZON}\n"
        f'[train]\nstart = "{START + dt.timedelta(days=180)}"\n'
        f'end = "{when - dt.timedelta(days=HORIZON)}"\nevery_days = 30\n'
        f'[model]\nregistry = "{root / "models"}"\n'
    )
    config = load_config(config_file)
    cg.train(config)
    log = outcomes(config, out=root / "log.parquet", until=when).log
    log = log[pd.to_datetime(log["as_of"]) < pd.Timestamp(when)]
    learned = {}
    for count in (6, 12):
        kept = log[pd.to_datetime(log["as_of"]) >= pd.Timestamp(dates[-1 - count])]
        path = root / f"log{count}.parquet"
        kept.to_parquet(path)
        run = learn_uplift(config, log=path, out=root / f"uplift{count}")
        learned[f"learned {count}"] = run.effects
        alone = dataclasses.replace(
            config, uplift=dataclasses.replace(config.uplift, prior="none")
        )
        run = learn_uplift(alone, log=path, out=root / f"evidence{count}")
        learned[f"learned {count}, evidence only"] = run.effects

    model, metadata = load_model(find_model(None, config.model))
    dataset = cg.load_dataset(data, definition="subscription")
    plan = cg.plan_features(dataset)
    at = dt.datetime.combine(when, dt.time())
    population = cg.build_features(dataset, as_of=[at], plan=plan)
    who = customers_at(dataset, as_of=at, churn=config.churn)
    frame = population.semi_join(who, "customer_id").to_pandas()
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame = frame.sort_values("customer_id").reset_index(drop=True)
    p = model.churn_probability(frame)
    value = values_at(dataset, frame, p, plan=plan, as_of=at, horizon_days=HORIZON)
    truth = pd.read_parquet(data / "truth_uplift.parquet")
    truth = truth[pd.to_datetime(truth["as_of"]) == pd.Timestamp(when)]
    return {
        "when": when,
        "frame": frame,
        "p": p,
        "value": value,
        "model": model,
        "config": config,
        "truth": truth,
        "learned": learned,
    }


def true_gain(w: dict, names: list[str], cost: np.ndarray) -> np.ndarray:
    """Customers × interventions: true uplift × value − cost (NaN where the truth has none)."""
    truth = w["truth"].assign(uplift=lambda t: t["churn_without"] - t["churn_with"])
    table = truth.pivot(index="customer_id", columns="intervention", values="uplift")
    uplift = table.reindex(index=w["frame"]["customer_id"], columns=names).to_numpy(float)
    return uplift * w["value"][:, None] - cost[None, :]


def picks(w: dict, budget: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each policy's intervention per customer (-1: none) within ``budget``."""
    catalogue = run_catalogue(w["config"])
    names = [i.name for i in catalogue]
    cost = np.array([i.cost for i in catalogue])
    frame, p, value, model = w["frame"], w["p"], w["value"], w["model"]
    ids = frame["customer_id"].to_numpy()
    context = frame.assign(churn_probability=p, customer_value=value)
    fits = fitting(context, drivers_of(model, frame), model, catalogue)
    assumed, _ = best_cases(context, catalogue)
    assumed = np.where(fits, assumed, -np.inf)
    chosen = {}
    config = dataclasses.replace(
        w["config"], score=dataclasses.replace(w["config"].score, budget=budget)
    )
    # the value the release before priced with: one population-wide lifetime for everyone
    one = value / expected_lifetime_months(p, HORIZON)
    one *= expected_lifetime_months(p.mean(), HORIZON)

    def from_list(effects: Effects | None, worth: np.ndarray = value) -> np.ndarray:
        scores = pd.DataFrame(
            {
                "customer_id": ids,
                "churn_probability": p,
                "risk_tier": "",
                "customer_value": worth,
                "value_at_risk": p * worth,
            }
        )
        listed = choose(frame, scores, model, catalogue, config, as_of=w["when"], effects=effects)
        pick = np.full(len(ids), -1)
        where = pd.Index(ids).get_indexer(listed["customer_id"])
        pick[where] = [names.index(n) for n in listed["intervention"]]
        return pick

    chosen["assumed"] = from_list(None)
    for name, effects in w["learned"].items():
        chosen[name] = from_list(dataclasses.replace(effects, promote=True))
    # what [score] effects = "learned" does: learned effects only once promoted
    chosen["learned 12, as used"] = (
        chosen["learned 12"] if w["learned"]["learned 12"].promote else chosen["assumed"]
    )
    chosen["assumed, one lifetime"] = from_list(None, one)
    chosen["learned 12, one lifetime"] = from_list(
        dataclasses.replace(w["learned"]["learned 12"], promote=True), one
    )
    chosen["oracle"], _ = allocate(
        np.where(np.isnan(true := true_gain(w, names, cost)), -np.inf, true), cost, budget, ids
    )
    best = assumed.argmax(axis=1)
    worth = assumed[np.arange(len(ids)), best] > 0
    for name, order in (
        ("probability", np.argsort(-p, kind="stable")),
        ("random", rng.permutation(len(ids))),
    ):
        pick, left = np.full(len(ids), -1), budget
        for i in order:
            if worth[i] and cost[best[i]] <= left:
                pick[i], left = best[i], left - cost[best[i]]
        chosen[name] = pick
    return chosen


def value_of(pick: np.ndarray, gain: np.ndarray) -> float:
    rows = np.flatnonzero(pick >= 0)
    return float(np.nansum(gain[rows, pick[rows]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed",
        type=int,
        default=500,
        help="seed of the first world (worlds 100 to 102, 200 to 202, 300 to 302 and 400 to 402 "
        "were looked at while building)",
    )
    parser.add_argument("--budgets", type=float, nargs="+", default=[1_000, 2_500, 5_000])
    parser.add_argument(
        "--reach", type=float, default=None, help="share of active customers per campaign"
    )
    args = parser.parse_args()
    rows = []
    began = time.perf_counter()
    for setting, effects in settings().items():
        if args.reach is not None:
            effects = dataclasses.replace(effects, reach=args.reach)
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as tmp:
                w = world(Path(tmp), args.first_seed + seed, effects, args.customers)
                catalogue = run_catalogue(w["config"])
                names = [i.name for i in catalogue]
                gain = true_gain(w, names, np.array([i.cost for i in catalogue]))
                for budget in args.budgets:
                    chosen = picks(w, budget, np.random.default_rng(seed))
                    for policy in POLICIES:
                        promoted = (
                            w["learned"].get(policy, w["learned"][policy.split(",")[0]]).promote
                            if policy.startswith("learned")
                            else None
                        )
                        rows.append(
                            {
                                "setting": setting,
                                "seed": seed,
                                "budget": budget,
                                "policy": policy,
                                "value": value_of(chosen[policy], gain),
                                "contacted": int((chosen[policy] >= 0).sum()),
                                "promoted": promoted,
                            }
                        )
            print(f"{setting} seed {seed} done, {time.perf_counter() - began:.0f}s", flush=True)
    results = pd.DataFrame(rows)
    oracle = results[results["policy"] == "oracle"].set_index(["setting", "seed", "budget"])[
        "value"
    ]
    results["of_oracle"] = results["value"] / results.set_index(
        ["setting", "seed", "budget"]
    ).index.map(oracle)
    summary = (
        results.groupby(["setting", "budget", "policy"], sort=False)
        .agg(
            value=("value", "mean"),
            low=("value", "min"),
            high=("value", "max"),
            of_oracle=("of_oracle", "mean"),
            contacted=("contacted", "mean"),
            promoted=("promoted", lambda s: "" if s.isna().all() else f"{int(s.sum())}/{len(s)}"),
        )
        .reset_index()
    )
    print(
        f"\n{args.seeds} seeds x {args.customers:,} customers, {time.perf_counter() - began:.0f}s"
    )
    print(
        "| setting | budget | policy | true net value (mean, min to max) | of oracle "
        "| contacted | promoted |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in summary.itertuples():
        print(
            f"| {r.setting} | {r.budget:,.0f} | {r.policy} | {r.value:,.0f} ({r.low:,.0f} to "
            f"{r.high:,.0f}) | {r.of_oracle:.0%} | {r.contacted:,.0f} | {r.promoted} |"
        )


if __name__ == "__main__":
    main()

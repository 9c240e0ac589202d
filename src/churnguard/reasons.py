"""Reasons: a customer's strongest risk drivers as sentences a retention team can act on.

The model's per-customer contributions (LightGBM ``pred_contrib``, SHAP values on the log-odds)
say which features pushed this customer's risk up. The top ones that push it *up* become
sentences built from the feature's kind and the customer's actual value, e.g. "logins down 70 %
on the previous 30 days", "2 support tickets in the last 30 days", "last NPS answer 3
(detractor)", "no purchase since 2025-10-28", "failed payment on 2025-12-30".

A driver is a reason only when it is true and useful: who the customer is (attributes of the
customers table, plan, MRR) and how long they have been one (tenure) are never reasons when
the model also reads behaviour from events (an entity table's columns are all a model of one
knows, so there its attributes are reasons; tenure never is), and neither are summaries of the
whole history (totals since the first activity, a BG/NBD chance); a
trend only in the direction that raises risk (logins down, tickets up), never "up 0 %"; an
event that is bad news (a ticket, a failed payment) only while it is recent
(``[reasons] recent_days``), so a count over a longer window is none; and at most one reason
per topic (logins, tickets, payments, surveys, purchases), so three reasons say three things.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from churnguard.config import ReasonsConfig
from churnguard.features import FeatureSpec
from churnguard.model import ChurnModel

TOP = 3
#: Words of event types whose occurrence is the news ("failed payment on 2025-12-30"),
#: unlike activity, whose absence is ("no login since 2025-10-02").
_BAD_NEWS = (
    "ticket",
    "complaint",
    "fail",
    "refund",
    "return",
    "dispute",
    "error",
    "cancel",
    "downgrade",
)
#: Kinds of feature that say who the customer is, not what is happening: never reasons.
_WHO = ("category", "number", "days", "flag")
#: Summaries of the whole history (totals since the first activity, the spread of gaps, a
#: BG/NBD chance): what the customer's history is, not what is happening; the recent events
#: they summarise are features, and reasons, of their own.
_SUMMARIES = ("total", "probability", "spread")
#: A trend smaller than this reads as "0 %": no reason.
_FLAT = 0.005


def top_drivers(
    contributions: np.ndarray,
    features: list[FeatureSpec],
    values: pd.DataFrame,
    rules: ReasonsConfig | None = None,
    k: int = TOP,
) -> np.ndarray:
    """Per row, the indices of up to ``k`` features that raise risk most and make reasons (see
    the module docstring), largest first, one per topic; -1 fills the places left (ties by
    feature order: deterministic)."""
    rules = rules or ReasonsConfig()
    n = len(contributions)
    entity = not any(s.event_type for s in features)  # an export's columns are all it knows
    usable = np.column_stack(
        [_usable(s, values[s.name].to_numpy(), rules, entity) for s in features]
        or [np.zeros(n, dtype=bool)]
    )[:, : contributions.shape[1]]
    raising = np.where(usable & (contributions > 0), contributions, 0.0)
    order = np.argsort(-raising, axis=1, kind="stable")
    topics = [_topic(s) for s in features]
    out = np.full((n, k), -1)
    for row in range(n):
        seen: set[str] = set()
        for j in order[row]:
            if raising[row, j] <= 0 or len(seen) == k:
                break
            if topics[j] not in seen:
                out[row, len(seen)] = j
                seen.add(topics[j])
    return out


def drivers_of(
    model: ChurnModel, rows: pd.DataFrame, rules: ReasonsConfig | None = None
) -> np.ndarray:
    """The reasons of each row (:func:`top_drivers`) from the model's contributions."""
    return top_drivers(model.contributions(rows), model.features, rows, rules)


def _usable(
    spec: FeatureSpec, values: np.ndarray, rules: ReasonsConfig, entity: bool
) -> np.ndarray:
    """Rows where ``spec`` at its value makes a true, useful reason (``entity``: the model
    knows the customer by attributes alone, which then are reasons)."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
    bad = _bad_news(spec)
    who = spec.stat in _WHO or (spec.stat in ("amount", "mean_amount") and not spec.event_type)
    if spec.stat in _SUMMARIES or (who and not (entity and spec.stat in ("category", "number"))):
        return np.zeros(len(v), dtype=bool)
    with np.errstate(invalid="ignore"):
        if spec.stat == "trend":
            return v > _FLAT if bad else v < -_FLAT
        window = rules.window(spec.event_type or spec.name)
        if spec.stat == "recency" and bad:
            return v <= window
        if spec.stat == "count" and bad:
            return (v > 0) & ((spec.window_days or 0) <= window)
    return np.ones(len(v), dtype=bool)


def _bad_news(spec: FeatureSpec) -> bool:
    return any(word in (spec.event_type or spec.name) for word in _BAD_NEWS)


def _topic(spec: FeatureSpec) -> str:
    """What a reason is about: its event type (surveys together), activity, or itself."""
    if spec.event_type in ("nps", "csat"):
        return "survey"
    if spec.event_type:
        return spec.event_type
    return "activity" if "activ" in spec.name else spec.name


def describe(
    features: list[FeatureSpec],
    values: pd.DataFrame,
    drivers: np.ndarray,
    as_of: dt.date,
) -> list[list[str]]:
    """The sentences of each row's drivers (see :func:`top_drivers`), in order, events dated
    from ``as_of``."""
    columns = {j: values[features[j].name].to_numpy(object) for j in np.unique(drivers) if j >= 0}
    return [
        [sentence(features[j], columns[j][row], as_of) for j in picks if j >= 0]
        for row, picks in enumerate(drivers)
    ]


def sentence(spec: FeatureSpec, value: object, as_of: dt.date) -> str:
    """One plain sentence for ``spec`` at ``value`` on ``as_of``, e.g. ``no login since
    2025-10-02``."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if spec.stat == "category":
        label = spec.name.replace("_", " ")
        return f"no {label} recorded" if missing else f"{label} {value}"
    if spec.stat == "flag":
        return f"{'has' if not missing and value else 'no longer has'} {_flag_text(spec)}"
    event = _event(spec.event_type) if spec.event_type else None
    window = f"in the last {spec.window_days} days" if spec.window_days else ""
    if spec.stat == "recency":
        what = event or "activity"
        if missing:
            return f"no {what} ever"
        # the day it happened, from the fractional days since: a payment late on the day
        # before the as-of date is that day's, not "today"
        day = (dt.datetime.combine(as_of, dt.time()) - dt.timedelta(days=float(value))).date()  # type: ignore[arg-type]
        return f"{what} on {day}" if _bad_news(spec) else f"no {what} since {day}"
    if spec.stat == "trend":
        plural = _plural(event)
        previous = f"on the previous {spec.window_days} days"
        if missing:
            return f"no {plural} in the {spec.window_days} days before the last {spec.window_days}"
        change = float(value)  # type: ignore[arg-type]
        direction = "down" if change < 0 else "up"
        return f"{plural} {direction} {abs(change):.0%} {previous}".replace("%", " %")
    if spec.stat == "score":
        return _score(spec, value, missing)
    if missing and spec.stat == "gap":  # fewer than two activities to measure a gap
        return f"at most one activity {window}" if window else "no repeat activity yet"
    if missing:
        return f"{spec.description}: unknown"
    if spec.stat == "count" and event:
        count = float(value)  # type: ignore[arg-type]
        noun = event if count == 1 else _plural(event)
        return f"{'no' if count == 0 else _number(count)} {noun} {window}".strip()
    if spec.name.startswith("active_days_") and spec.window_days:
        return f"active on {_number(value)} of the last {spec.window_days} days"
    if spec.stat == "number":
        return f"{spec.name.replace('_', ' ')} {_number(value)}"
    if spec.stat == "days" and spec.name == "tenure_days":
        return f"customer for {_number(value)} days"
    if spec.stat == "gap":
        span = window or "since the first"
        return f"{float(value):.1f} days between activities on average, {span}"
    return f"{spec.description}: {_number(value)}"


def _score(spec: FeatureSpec, value: object, missing: bool) -> str:
    survey = (spec.event_type or "survey").replace("_", " ").upper()
    if spec.window_days:
        if missing:
            return f"no {survey} answer in the last {spec.window_days} days"
        return f"average {survey} answer {float(value):.1f} in the last {spec.window_days} days"
    if missing:
        return f"no {survey} answer yet"
    score = float(value)  # type: ignore[arg-type]
    text = f"last {survey} answer {_number(score)}"
    if spec.event_type == "nps":
        kind = "detractor" if score <= 6 else "passive" if score <= 8 else "promoter"
        return f"{text} ({kind})"
    if spec.event_type == "csat":
        return f"{text} of 5"
    return text


def _event(event_type: str) -> str:
    """``support_ticket`` → ``support ticket``; ``payment_failed`` → ``failed payment``."""
    words = event_type.split("_")
    if words[-1] == "failed":
        words = ["failed", *words[:-1]]
    if event_type in {"nps", "csat"}:
        return f"{event_type.upper()} answer"
    return " ".join(words)


def _plural(noun: str | None) -> str:
    noun = noun or "event"
    return noun if noun.endswith("s") else f"{noun}s"


def _flag_text(spec: FeatureSpec) -> str:
    return spec.description.removeprefix("has ").removeprefix("is ")


def _number(value: object) -> str:
    number = float(value)  # type: ignore[arg-type]
    return f"{number:,.0f}" if number == round(number) or abs(number) >= 100 else f"{number:,.2f}"

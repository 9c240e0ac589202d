"""Reasons: a customer's strongest risk drivers as sentences a retention team can act on.

The model's per-customer contributions (LightGBM ``pred_contrib``, SHAP values on the log-odds)
say which features pushed this customer's risk up. The top ones that push it *up* become
sentences built from the feature's kind and the customer's actual value, e.g. "logins down 70 %
on the previous 30 days", "2 support tickets in the last 30 days", "last NPS answer 3
(detractor)", "no purchase for 64 days".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from churnguard.features import FeatureSpec

TOP = 3
#: Event types whose recent occurrence is the news ("last complaint 3 days ago"), unlike
#: activity, whose absence is ("no login for 12 days").
_BAD_NEWS = ("ticket", "complaint", "fail", "refund", "return", "dispute", "error", "cancel")


def top_drivers(contributions: np.ndarray, k: int = TOP) -> np.ndarray:
    """Per row, the indices of the ``k`` features that raise risk most, largest first; -1 fills
    the places of features that do not raise it (ties by feature order: deterministic)."""
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    raising = np.take_along_axis(contributions, order, axis=1) > 0
    return np.where(raising, order, -1)


def describe(
    features: list[FeatureSpec], values: pd.DataFrame, drivers: np.ndarray
) -> list[list[str]]:
    """The sentences of each row's drivers (see :func:`top_drivers`), in order."""
    columns = {j: values[features[j].name].to_numpy(object) for j in np.unique(drivers) if j >= 0}
    return [
        [sentence(features[j], columns[j][row]) for j in picks if j >= 0]
        for row, picks in enumerate(drivers)
    ]


def sentence(spec: FeatureSpec, value: object) -> str:
    """One plain sentence for ``spec`` at ``value``, e.g. ``no login for 12 days``."""
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
        days = math.floor(float(value))  # type: ignore[arg-type]
        if any(word in what for word in _BAD_NEWS):
            ago = "today" if days == 0 else "1 day ago" if days == 1 else f"{days:,} days ago"
            return f"last {what} {ago}"
        return f"no {what} for {days:,} days"
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
    if missing:
        return f"{spec.description}: unknown"
    if spec.stat == "count" and event:
        count = float(value)  # type: ignore[arg-type]
        noun = event if count == 1 else _plural(event)
        return f"{'no' if count == 0 else _number(count)} {noun} {window}".strip()
    if spec.name.startswith("active_days_"):
        return f"active on {_number(value)} of the last {spec.window_days} days"
    if spec.stat == "number":
        return f"{spec.name.replace('_', ' ')} {_number(value)}"
    if spec.stat == "days" and spec.name == "tenure_days":
        return f"customer for {_number(value)} days"
    if spec.stat == "gap":
        return f"{float(value):.1f} days between activities on average, {window}".strip(", ")
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

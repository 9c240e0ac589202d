"""The evaluation report: one self-contained HTML page (charts embedded as PNG) per evaluation.

It is written beside the model at training (``report.html`` in the bundle) and wherever
``churnguard evaluate --out`` points. A reader sees the headline comparison first (model,
baseline and, on generated data, the true hazard), then warnings, then the charts.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from churnguard import charts
from churnguard.evaluation import Evaluation
from churnguard.io import atomic_path
from churnguard.measure import Z95
from churnguard.policy import Effects

#: (metric key, label, format) in the order the metrics table shows them.
_ROWS: tuple[tuple[str, str, str], ...] = (
    ("roc_auc_score", "ROC-AUC", "{:.4f}"),
    ("pr_auc_score", "PR-AUC", "{:.4f}"),
    ("log_loss", "log loss", "{:.4f}"),
    ("brier_loss", "Brier", "{:.4f}"),
    ("expected_calibration_error", "calibration error (ECE)", "{:.4f}"),
    ("lift_top_5pct", "lift, top 5 %", "{:.2f}"),
    ("lift_top_10pct", "lift, top 10 %", "{:.2f}"),
    ("lift_top_20pct", "lift, top 20 %", "{:.2f}"),
    ("capture_top_5pct", "churners caught, top 5 %", "{:.1%}"),
    ("capture_top_10pct", "churners caught, top 10 %", "{:.1%}"),
    ("capture_top_20pct", "churners caught, top 20 %", "{:.1%}"),
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
td, th { border-bottom: 1px solid #ddd; padding: 0.3rem 0.8rem; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.warn { background: #fff3cd; border-left: 4px solid #e0a800; padding: 0.5rem 1rem; }
img { max-width: 100%; margin: 0.5rem 0 1.5rem; }
"""


def render_report(
    ev: Evaluation,
    *,
    title: str,
    facts: Sequence[tuple[str, str]] = (),
    warnings: Sequence[str] = (),
) -> str:
    """The report as an HTML string: facts, warnings, metrics table, profit optimum, charts."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if facts:
        parts.append(table(["", ""], [[k, v] for k, v in facts], header=False))
    parts += [f'<p class="warn">{html.escape(w)}</p>' for w in warnings]
    parts.append("<h2>Out-of-time validation metrics</h2>")
    parts.append(_metrics_table(ev))
    size, profit = ev.best_list_size
    low, high = ev.best_list_range
    c = ev.campaign
    if ev.profit_basis == "catalogue":
        listable = int(ev.profit["list_size"].iloc[-1])
        parts.append(
            f"<p>Listing between the top {low:,} and {high:,} of the {listable:,} customers an "
            f"intervention fits keeps expected profit within 5 % of its best, {profit:,.0f} at "
            f"the top {size:,} ({size / ev.y_true.size:.1%} of {ev.y_true.size:,}). The list "
            "is priced as the nightly one: ranked by expected benefit, each customer with the "
            "catalogue's intervention that fits them best and their own value; a churner on it "
            "counts as kept at that intervention's assumed success rate, every contact at its "
            "cost.</p>"
        )
    else:
        parts.append(
            f"<p>Contacting between the top {low:,} and {high:,} of {ev.y_true.size:,} "
            f"customers keeps expected profit within 5 % of its best, {profit:,.0f} at the top "
            f"{size:,} ({size / ev.y_true.size:.1%}), for an intervention costing "
            f"{c.intervention_cost:g} that keeps {c.success_rate:.0%} of would-be churners "
            f"worth {c.customer_value:g} each.</p>"
        )
    if ev.ranking is not None:
        r = ev.ranking
        parts.append(
            f"<p>With a budget for {r['contacts']:,.0f} contacts ({r['budget']:,.0f}), and "
            f"<strong>assuming</strong> a contact keeps {r['success_rate']:.0%} of would-be "
            f"churners, the list ranked by expected benefit saves "
            f"{r['by_expected_benefit']:,.0f} in customer value net of cost (95 % bootstrap "
            f"interval {r['by_expected_benefit_low']:,.0f} to "
            f"{r['by_expected_benefit_high']:,.0f}); "
            f"the list ranked by churn probability alone saves {r['by_probability']:,.0f} "
            f"({r['by_probability_low']:,.0f} to {r['by_probability_high']:,.0f}). The success "
            "rate is not measured here: randomised holdouts measure it (churnguard outcomes).</p>"
        )
    if ev.measured is not None:
        parts.append("<h2>Measured against randomised holdouts</h2>")
        rows = [
            [
                r.intervention,
                f"{r.treated:,}",
                f"{r.holdout:,}",
                "n/a" if not (r.treated and r.holdout) else f"{r.saving:+.1%}",
                "n/a"
                if not (r.treated and r.holdout)
                else f"{r.saving_low:+.1%} to {r.saving_high:+.1%}",
            ]
            for r in ev.measured.itertuples()
        ]
        parts.append(
            table(["intervention", "treated", "holdout", "churn saved", "95 % interval"], rows)
        )
    figures = [
        ("ROC", charts.roc_chart(ev)),
        ("Precision and recall", charts.pr_chart(ev)),
        ("Calibration", charts.calibration_chart(ev)),
        ("Gains and lift", charts.gains_chart(ev)),
        ("Profit curve", charts.profit_chart(ev)),
    ]
    if "baseline" in ev.metrics:
        figures.append(("Baseline comparison", charts.baseline_chart(ev)))
    if ev.importance is not None:
        figures.append(("Feature importance", charts.importance_chart(ev.importance)))
    parts += [figure(caption, fig) for caption, fig in figures]
    if ev.importance is not None:
        parts.append("<h2>Features, by mean |SHAP|</h2>")
        rows = [
            [r.feature, r.description, f"{r.mean_abs_shap:.4f}", f"{r.gain_share:.1%}"]
            for r in ev.importance.itertuples()
        ]
        parts.append(table(["feature", "meaning", "mean |SHAP|", "gain"], rows))
    return page(title, parts)


def page(title: str, parts: Sequence[str]) -> str:
    """A self-contained HTML page titled ``title`` holding ``parts`` (HTML, its heading first)."""
    body = "\n".join(parts)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def figure(caption: str, fig: Figure) -> str:
    """A chart under its caption, embedded as a PNG (the page needs no other file)."""
    encoded = base64.b64encode(charts.png_bytes(fig)).decode("ascii")
    alt = html.escape(caption)
    return f'<h2>{alt}</h2><img alt="{alt}" src="data:image/png;base64,{encoded}">'


def write_report(path: Path, ev: Evaluation, **kwargs: object) -> Path:
    """Render the report (see :func:`render_report`) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(render_report(ev, **kwargs), encoding="utf-8")  # type: ignore[arg-type]
    return path


def _metrics_table(ev: Evaluation) -> str:
    columns = [who for who in ("model", "baseline", "bgnbd", "champion") if who in ev.metrics]
    rows = [
        [label, *(with_interval(ev, who, key, fmt) for who in columns)]
        for key, label, fmt in _ROWS
    ]
    for other in ("champion", "bgnbd", "baseline"):
        lead = ev.lead(other)
        if lead is not None:
            rows.insert(1, [f"model against {other}", lead, *([""] * (len(columns) - 1))])
    if "true_hazard" in ev.metrics:
        rows.insert(
            1,
            [
                "ROC-AUC of the true hazard (ceiling)",
                f"{ev.metrics['true_hazard']['roc_auc_score']:.4f}",
                *([""] * (len(columns) - 1)),
            ],
        )
    rows.append(
        ["churn rate", f"{ev.metrics['model']['churn_rate']:.1%}", *[""] * (len(columns) - 1)]
    )
    return table(["metric", *columns], rows)


def with_interval(ev: Evaluation, who: str, key: str, fmt: str) -> str:
    """A figure, followed by its 95 % bootstrap interval where one was computed."""
    figure = fmt.format(ev.metrics[who][key])
    bounds = ev.intervals.get(who, {}).get(key)
    if bounds is None:
        return figure
    return f"{figure} ({fmt.format(bounds[0])} to {fmt.format(bounds[1])})"


def table(columns: list[str], rows: list[list[str]], *, header: bool = True) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table>{head if header else ''}{body}</table>"


def render_uplift_report(effects: Effects, curves: dict[str, pd.DataFrame], *, log: str) -> str:
    """The uplift report as an HTML string: the verdict and the off-policy check first, then
    the measured effect of each intervention, the segments where help is shown and the Qini
    curves."""
    ev = effects.evaluation
    verdict = "promote" if effects.promote else "do not promote"
    parts = [
        f"<h1>Learned effects: {verdict}</h1>",
        f"<p>From the treatment log {html.escape(log)}.</p>",
    ]
    if ev:
        parts.append(
            f"<p>Checked on {ev['decisions']:,} decisions of {', '.join(ev['dates'])}, each "
            "run of dates with effects learned from the others. Value per decision (doubly "
            "robust, in the currency of customer value), 95 % interval:</p>"
        )
        rows = [
            [
                label,
                _money(ev[key]["per_decision"]),
                _money(ev[key]["low"]),
                _money(ev[key]["high"]),
                _money(ev[key].get("bound")),
            ]
            for key, label in (
                ("learned_vs_current", "learned policy minus today's list"),
                ("learned_vs_none", "learned policy minus contacting no one"),
                ("current_vs_none", "today's list minus contacting no one"),
            )
        ]
        parts.append(
            table(["comparison", "per decision", "low", "high", "one-sided 95 % bound"], rows)
        )
        parts.append(
            f"<p>The learned policy would contact {ev['contacted']['learned']:,} of them, today's "
            f"list {ev['contacted']['current']:,}. Promote only when the learned policy's "
            "one-sided 95 % bounds against both are above zero (whether it is better is a "
            "one-sided question; requiring both keeps the chance of promoting a policy that is "
            "not better within 5 %).</p>"
        )
    parts.append("<h2>Churn saved per intervention (holdout minus treated)</h2>")
    rows = []
    for r in effects.pooled.itertuples():
        needed = "" if pd.isna(r.needed_per_group) else f"{int(r.needed_per_group):,}"
        rows.append(
            [
                r.intervention,
                f"{int(r.treated):,}",
                f"{int(r.holdout):,}",
                _share(r.saving),
                f"{_share(r.low)} to {_share(r.high)}",
                _share(r.break_even),
                needed,
            ]
        )
    parts.append(
        table(
            [
                "intervention",
                "treated",
                "holdout",
                "saved",
                "95 % interval",
                "pays from",
                "customers a group to tell",
            ],
            rows,
        )
    )
    parts.append(
        "<p><em>pays from</em>: the drop in churn at which the intervention's cost is repaid "
        "by the value kept; <em>customers a group to tell</em>: how many treated and as many "
        "held-out customers a test needs to detect that drop (80 % power, 5 % level).</p>"
    )
    parts.append("<h2>Where help is shown</h2>")
    parts.append(
        "<p>Per intervention and problem, the change in the odds of churning when treated, "
        "at the treated customers' average risk (a logistic model with the churn model's "
        "log-odds as offset; below 1 helps), and how that change moves per unit of churn "
        "log-odds (above 1: the riskiest respond less). "
        + (
            "Each group's measured ratio is combined with the one the catalogue assumes "
            "(success rate s: 1 − s for the customers an intervention is meant for, 1 for the "
            "others), weighted by how far the groups stray from the catalogue beyond their "
            f"sampling error (a spread of {effects.prior['spread_sd']:.2f} in log-odds); help "
            "is shown where the combined ratio's one-sided 95 % bound is below 1.</p>"
            if effects.prior
            else "Help is shown at a 5 % false discovery rate over all the groups.</p>"
        )
    )
    prior = {(g["intervention"], g["problem"]): g for g in effects.prior.get("groups", [])}

    def ratio(log_odds: float | None) -> str:
        return "n/a" if log_odds is None or pd.isna(log_odds) else f"{math.exp(log_odds):.2f}"

    def combined_from(r: Any) -> list[str]:
        """The measured and assumed ratios the combined one came from (none without a prior)."""
        if not prior:
            return []
        group = prior[(r.intervention, bool(r.problem))]
        return [ratio(group["measured"]), ratio(group["assumed"])]

    rows = [
        [
            r.intervention,
            "yes" if r.problem else "no",
            f"{int(r.treated):,} / {int(r.holdout):,}",
            *combined_from(r),
            ratio(r.log_odds),
            "n/a"
            if pd.isna(r.log_odds)
            else f"{math.exp(r.log_odds - Z95 * r.log_odds_se):.2f} to "
            f"{math.exp(r.log_odds + Z95 * r.log_odds_se):.2f}",
            "n/a" if pd.isna(r.risk_slope) else f"×{math.exp(r.risk_slope):.2f}",
            "yes" if r.shown else "no",
        ]
        for r in effects.groups.itertuples()
    ]
    parts.append(
        table(
            [
                "intervention",
                "has the problem",
                "treated / holdout",
                *(["measured odds ratio", "assumed"] if prior else []),
                "odds ratio (combined)" if prior else "odds ratio",
                "95 % interval",
                "per unit of risk",
                "shown",
            ],
            rows,
        )
    )
    parts.append(figure("Qini curves", charts.qini_chart(curves)))
    return page(f"churnguard uplift: {verdict}", parts)


def write_uplift_report(
    path: Path, effects: Effects, curves: dict[str, pd.DataFrame], *, log: str
) -> Path:
    """Render :func:`render_uplift_report` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(render_uplift_report(effects, curves, log=log), encoding="utf-8")
    return path


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+,.2f}"


def _share(x: float) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{x:+.1%}"

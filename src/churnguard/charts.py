"""Charts as matplotlib figures (object API: no pyplot state, no display needed).

Each function returns a :class:`~matplotlib.figure.Figure`, so a notebook can show it and
:func:`save_png` or the HTML report can write it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from churnguard.evaluation import Evaluation
from churnguard.io import atomic_path


def save_png(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def png_bytes(fig: Figure) -> bytes:
    """``fig`` encoded as PNG, for embedding in a self-contained HTML page."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def cohort_heatmap(cohorts: pd.DataFrame) -> Figure:
    """Share retained per signup cohort (rows) and months since signup (columns)."""
    shares = cohorts.drop(columns=["customers", "before_data"])
    fig = Figure(figsize=(1.2 + 0.45 * shares.shape[1], 1.2 + 0.32 * len(shares)))
    ax = fig.subplots()
    image = ax.imshow(
        np.ma.masked_invalid(shares.to_numpy(float)), cmap="viridis", vmin=0, vmax=1, aspect="auto"
    )
    ax.set_xticks(range(shares.shape[1]), [c.removeprefix("month_") for c in shares.columns])
    ax.set_yticks(range(len(shares)), shares.index)
    ax.set_xlabel("months since signup")
    ax.set_ylabel("signup cohort")
    ax.set_title("Cohort retention")
    fig.colorbar(image, ax=ax, label="share still active")
    fig.tight_layout()
    return fig


def retention_curve(cohorts: pd.DataFrame) -> Figure:
    """Customer-weighted share still active after each month, over the cohorts that reached it
    and began after the data did (earlier ones look retained until the data starts)."""
    cohorts = cohorts[~cohorts["before_data"].astype(bool)]
    shares = cohorts.drop(columns=["customers", "before_data"])
    shares = shares.loc[:, shares.notna().any()]  # months no counted cohort has reached
    weights = cohorts["customers"].to_numpy(float)[:, None]
    known = ~np.isnan(shares.to_numpy(float))
    retained = np.nansum(shares.to_numpy(float) * weights, axis=0)
    curve = retained / np.where(known, weights, 0).sum(axis=0)
    months = [int(c.removeprefix("month_")) for c in shares.columns]
    fig, ax = _axes("Retention curve", "months since signup", "% still active")
    ax.plot(months, 100 * curve, marker="o")
    ax.set_ylim(0, 100)
    return fig


def _axes(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = (6, 4.2)):
    fig = Figure(figsize=size, layout="tight")
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _scores(ev: Evaluation) -> list[tuple[str, np.ndarray]]:
    """The score columns worth drawing: the model, the baselines, the true hazard."""
    scores = [("model", ev.probability)]
    if ev.baseline_probability is not None:
        scores.append(("baseline", ev.baseline_probability))
    if ev.bgnbd_probability is not None:
        scores.append(("bgnbd", ev.bgnbd_probability))
    if ev.true_hazard is not None:
        scores.append(("true hazard", ev.true_hazard))
    return scores


def roc_chart(ev: Evaluation) -> Figure:
    """ROC curves of the model, the baseline and (generated data) the true hazard."""
    fig, ax = _axes("ROC", "false positive rate", "true positive rate")
    for label, score in _scores(ev):
        known = ~np.isnan(score)
        fpr, tpr, _ = roc_curve(ev.y_true[known], score[known])
        auc = ev.metrics[label.replace(" ", "_")]["roc_auc_score"]
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    ax.legend(loc="lower right")
    return fig


def pr_chart(ev: Evaluation) -> Figure:
    """Precision against recall, with the churn rate as the no-skill line."""
    fig, ax = _axes("Precision and recall", "recall (share of churners found)", "precision")
    for label, score in _scores(ev)[:2]:
        precision, recall, _ = precision_recall_curve(ev.y_true, score)
        ap = ev.metrics[label]["pr_auc_score"]
        ax.plot(recall, precision, label=f"{label} (AP {ap:.3f})")
    ax.axhline(ev.y_true.mean(), color="grey", linestyle=":", label="churn rate")
    ax.legend(loc="upper right")
    return fig


def calibration_chart(ev: Evaluation) -> Figure:
    """Observed churn rate per bin of predicted probability (quantile bins); diagonal = perfect."""
    fig, ax = _axes("Calibration", "predicted churn probability", "observed churn rate")
    top = 0.0
    for label, score in _scores(ev)[:2]:
        observed, predicted = calibration_curve(ev.y_true, score, n_bins=10, strategy="quantile")
        ece = ev.metrics[label]["expected_calibration_error"]
        ax.plot(predicted, observed, marker="o", label=f"{label} (ECE {ece:.3f})")
        top = max(top, observed.max(), predicted.max())
    ax.plot([0, top], [0, top], color="grey", linestyle=":", label="perfect")
    ax.legend(loc="upper left")
    return fig


def gains_chart(ev: Evaluation) -> Figure:
    """Cumulative share of churners found against share of customers contacted, with lift."""
    fig = Figure(figsize=(11, 4.2), layout="tight")
    gains, lift = fig.subplots(1, 2)
    share = np.arange(1, ev.y_true.size + 1) / ev.y_true.size
    for label, score in _scores(ev)[:2]:
        ranked = ev.y_true[np.argsort(-score, kind="stable")]
        captured = np.cumsum(ranked) / ranked.sum()
        gains.plot(100 * share, 100 * captured, label=label)
        shown = share >= 0.01  # the first handful of customers make lift jump about
        lift.plot(100 * share[shown], (captured / share)[shown], label=label)
    gains.plot([0, 100], [0, 100], color="grey", linestyle=":", label="random")
    gains.set(title="Gains", xlabel="% of customers contacted", ylabel="% of churners found")
    lift.axhline(1, color="grey", linestyle=":")
    lift.set(title="Lift", xlabel="% of customers contacted", ylabel="lift over random")
    for ax in (gains, lift):
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    return fig


def profit_chart(ev: Evaluation) -> Figure:
    """Expected profit of contacting the top k (by expected benefit as the nightly list ranks,
    or by probability for the campaign); the best k and the sizes within 5 % are marked."""
    c = ev.campaign
    if ev.profit_basis == "catalogue":
        title = "Profit of the nightly list: the catalogue, each customer's value"
        order = "highest expected benefit first"
    else:
        title = (
            f"Profit: cost {c.intervention_cost:g}, success {c.success_rate:.0%}, "
            f"value {c.customer_value:g}"
        )
        order = "highest risk first"
    fig, ax = _axes(title, f"customers contacted ({order})", "expected profit")
    ax.plot(ev.profit["list_size"], ev.profit["expected_profit"])
    size, profit = ev.best_list_size
    low, high = ev.best_list_range
    ax.axvspan(low, high, color="tab:red", alpha=0.12, label=f"within 5 %: {low:,} to {high:,}")
    ax.axvline(size, color="tab:red", linestyle="--", label=f"best: top {size:,} ({profit:,.0f})")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.legend(loc="best")
    return fig


def importance_chart(importance: pd.DataFrame, top: int = 20) -> Figure:
    """The ``top`` features by mean |SHAP|, beside their share of the split gain."""
    rows = importance.head(top).iloc[::-1]
    fig = Figure(figsize=(11, 0.9 + 0.3 * len(rows)), layout="tight")
    shap, gain = fig.subplots(1, 2, sharey=True)
    shap.barh(rows["feature"], rows["mean_abs_shap"], color="tab:blue")
    shap.set(title="mean |SHAP| (log-odds)", xlabel="mean absolute contribution")
    gain.barh(rows["feature"], 100 * rows["gain_share"], color="tab:orange")
    gain.set(title="split gain", xlabel="% of total gain")
    for ax in (shap, gain):
        ax.grid(alpha=0.3, axis="x")
    return fig


def baseline_chart(ev: Evaluation) -> Figure:
    """Model against baseline on the headline metrics (higher is better for all shown)."""
    names = ["roc_auc_score", "pr_auc_score", "lift_top_10pct", "capture_top_20pct"]
    labels = ["ROC-AUC", "PR-AUC", "lift top 10 %", "capture top 20 %"]
    fig, ax = _axes("Model against the logistic baseline", "", "value", size=(7, 4))
    width = 0.38
    x = np.arange(len(names))
    for offset, who in ((-width / 2, "model"), (width / 2, "baseline")):
        values = [ev.metrics[who][n] for n in names]
        bars = ax.bar(x + offset, values, width, label=who)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(x, labels)
    ax.legend(loc="upper left")
    return fig


def qini_chart(curves: dict[str, pd.DataFrame]) -> Figure:
    """Per intervention, churners saved against the share of its decisions targeted in the
    order of the learned uplift, beside random targeting (the straight line)."""
    names = list(curves) or ["no decisions to check"]
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    fig = Figure(figsize=(4.2 * columns, 3.2 * rows))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        curve = curves.get(name)
        ax.set_title(name, fontsize=10)
        if curve is None or len(curve) < 2:
            ax.text(0.5, 0.5, "no decisions", ha="center", va="center", transform=ax.transAxes)
            continue
        share = curve["targeted"] / curve["targeted"].iloc[-1]
        ax.plot(share, curve["saved"], label="learned uplift")
        ax.plot([0, 1], [0, curve["saved"].iloc[-1]], linestyle="--", color="grey", label="random")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xlabel("share targeted")
        ax.set_ylabel("churners saved")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    fig.suptitle("Qini curves, each run of dates ranked by effects learned from the others")
    fig.tight_layout()
    return fig


def over_time(series: pd.DataFrame) -> Figure:
    """One panel per metric of ``series`` (``as_of, score, metric, value, low, high``): each
    score's value at each date, with its 95 % interval as a bar."""
    metrics = list(dict.fromkeys(series["metric"]))
    fig = Figure(figsize=(11, 3.2 * ((len(metrics) + 1) // 2)))
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot((len(metrics) + 1) // 2, 2, i + 1)
        of = series[series["metric"] == metric]
        for score, rows in of.groupby("score", sort=False):
            value = rows["value"].to_numpy(float)
            errors = np.vstack([value - rows["low"], rows["high"] - value])
            ax.errorbar(
                rows["as_of"],
                value,
                yerr=np.maximum(np.nan_to_num(errors), 0),
                marker="o",
                capsize=3,
                label=score,
            )
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30)
    fig.axes[0].legend(loc="best")
    fig.tight_layout()
    return fig

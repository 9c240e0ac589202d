"""Charts written as PNG files with matplotlib's object API (no pyplot state, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def cohort_heatmap(cohorts: pd.DataFrame, path: Path) -> None:
    """Share retained per signup cohort (rows) and months since signup (columns)."""
    shares = cohorts.drop(columns="customers")
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
    fig.savefig(path, format="png", dpi=100)


def retention_curve(cohorts: pd.DataFrame, path: Path) -> None:
    """Customer-weighted share still active after each month, over the cohorts that reached it."""
    shares = cohorts.drop(columns="customers")
    weights = cohorts["customers"].to_numpy(float)[:, None]
    known = ~np.isnan(shares.to_numpy(float))
    retained = np.nansum(shares.to_numpy(float) * weights, axis=0)
    curve = retained / np.where(known, weights, 0).sum(axis=0)
    months = [int(c.removeprefix("month_")) for c in shares.columns]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(months, 100 * curve, marker="o")
    ax.set_ylim(0, 100)
    ax.set_xlabel("months since signup")
    ax.set_ylabel("% still active")
    ax.set_title("Retention curve")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)

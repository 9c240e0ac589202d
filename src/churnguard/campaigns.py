"""Randomised retention campaigns inside the simulator, with every contact's true effect.

At each campaign date the simulator (:mod:`churnguard.synth`) hands the active customers to a
:class:`Campaigns`. A random ``reach`` share of them enter the campaign; each gets one
intervention at random (its arm: by default among those for a problem the customer has, see
:class:`~churnguard.config.CampaignsConfig`) and a ``holdout`` share of every arm is kept
back. For the horizon after the date a treated customer's churn hazard falls by ``strength ×
responsiveness`` if they had, at the date, the problem the arm addresses (see
:class:`~churnguard.config.EffectConfig`), and their log-odds gain the arm's ``backfire`` if
they were calm and disengaged.

Effects act only on the churn hazard, never on behaviour, and the simulator draws behaviour for
every customer who has signed up, churned or not: so each customer's behaviour, and so their
hazard path, is the same whatever anyone is given. That makes the truth exact: the chance that
a customer churns within the horizon, given their path, is ``1 − Π(1 − h_t)`` over its days,
for the untreated hazard (``churn_without``) and for each intervention's (``churn_with``).
Every draw is made for all customers of the chunk, so treating one customer moves no one
else's draws, and with zero effects the outcomes are exactly those of a run without campaigns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from churnguard.config import CampaignsConfig

#: Days between campaigns (at least the horizon, so a customer's effect windows never overlap).
MONTH_DAYS = 30
#: The largest share of the hazard an effect removes (a hazard never falls to zero).
MAX_REMOVED = 0.95


def campaign_days(count: int, days: int, horizon: int) -> list[int]:
    """Simulation days of ``count`` monthly campaigns, the last one a horizon before the end
    (so every campaign's outcome is in the data); [] when they do not fit after day 60."""
    every = max(MONTH_DAYS, horizon)
    last = days - horizon - 1
    first = last - every * (count - 1)
    return list(range(first, last + 1, every)) if count and first >= 60 else []


def responsiveness(engagement: np.ndarray) -> np.ndarray:
    """How much of an effect reaches a customer: about half at engagement −1.2, almost none
    below −2 (lost causes), almost all above 0."""
    return 1.0 / (1.0 + np.exp(-4.0 * (engagement + 1.2)))


@dataclass
class _Window:
    """One campaign's horizon: who was active, what each got, and their survival so far."""

    day: int
    members: np.ndarray  # chunk indices of every active customer (the truth covers them all)
    arm: np.ndarray  # intervention index per member, -1: not in the campaign
    choices: np.ndarray  # how many arms each member could have been given
    held_out: np.ndarray  # bool per member
    shift: np.ndarray  # members × arms: what each arm adds to the member's churn log-odds
    log_without: np.ndarray = field(init=False)
    log_with: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.log_without = np.zeros(self.members.size)
        self.log_with = np.zeros(self.shift.shape)


class Campaigns:
    """The campaigns of one chunk of ``n`` simulated customers."""

    def __init__(
        self, config: CampaignsConfig, days: list[int], horizon: int, n: int, seed: list[int]
    ):
        self.config, self.days, self.horizon, self.n = config, set(days), horizon, n
        self.rng = np.random.default_rng(seed)
        self.mechanisms = [e.acts_on for e in config.effects]
        self.strength = np.array([e.strength for e in config.effects])
        self.backfire = np.array([e.backfire for e in config.effects])
        self.open: list[_Window] = []
        self.closed: list[_Window] = []

    def start(
        self,
        day: int,
        active: np.ndarray,
        engagement: np.ndarray,
        calm: np.ndarray,
        problems: dict[str, np.ndarray],
    ) -> None:
        """Open a campaign on ``day`` over the ``active`` customers (chunk indices), given every
        customer's engagement, whether they have no open problem and, per mechanism, how much
        of that problem they have now (0 to 1)."""
        # Draws for all n customers, so who is active (which effects change) moves nobody's.
        reach, pick, group = (self.rng.random(self.n) for _ in range(3))
        e = engagement[active]
        sleeping = calm[active] & (e < -0.3)
        present = np.column_stack(
            [np.ones(active.size) if m == "any" else problems[m][active] for m in self.mechanisms]
        )
        eligible = np.ones_like(present, bool)
        if self.config.arms == "eligible":
            anyone = np.array([m == "any" for m in self.mechanisms])
            specific = (present > 0) & ~anyone
            eligible = np.where(specific.any(axis=1, keepdims=True), specific, anyone)
        choices = eligible.sum(axis=1)
        nth = (pick[active] * choices).astype(int)  # the nth eligible arm, counting from 0
        drawn = (np.cumsum(eligible, axis=1) > nth[:, None]).argmax(axis=1)
        arm = np.where((reach[active] < self.config.reach) & (choices > 0), drawn, -1)
        removed = np.minimum(
            responsiveness(e)[:, None] * self.strength[None, :] * present, MAX_REMOVED
        )
        self.open.append(
            _Window(
                day=day,
                members=active,
                arm=arm,
                choices=choices,
                held_out=group[active] < self.config.holdout,
                shift=np.log1p(-removed) + sleeping[:, None] * self.backfire[None, :],
            )
        )

    def apply(self, day: int, position: np.ndarray, logit: np.ndarray) -> np.ndarray:
        """The day's churn log-odds with the treated customers' effects applied.

        ``logit`` is aligned with the signed-up customers; ``position[i]`` is chunk customer
        ``i``'s place among them.
        """
        logit = logit.copy()
        for window in self.open:
            rows = position[window.members]
            base = logit[rows]
            treated_logit = base[:, None] + window.shift
            window.log_without -= np.logaddexp(0.0, base)  # log(1 − sigmoid)
            window.log_with -= np.logaddexp(0.0, treated_logit)
            treated = (window.arm >= 0) & ~window.held_out
            logit[rows[treated]] = treated_logit[treated, window.arm[treated]]
        still = [w for w in self.open if day + 1 < w.day + self.horizon]
        self.closed += [w for w in self.open if day + 1 >= w.day + self.horizon]
        self.open = still
        return logit

    def tables(
        self, ids: np.ndarray, epoch: np.datetime64
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The ``treatments`` and ``truth_uplift`` columns of every closed campaign."""
        names = np.array([e.intervention for e in self.config.effects], dtype=object)
        holdout = self.config.holdout
        treatments: dict[str, list[np.ndarray]] = {
            c: []
            for c in ("customer_id", "as_of", "intervention", "group", "propensity", "run_id")
        }
        truth: dict[str, list[np.ndarray]] = {
            c: [] for c in ("customer_id", "as_of", "intervention", "churn_without", "churn_with")
        }
        for number, window in enumerate(sorted(self.closed, key=lambda w: w.day), start=1):
            date = epoch + np.timedelta64(window.day, "D")
            entered = window.arm >= 0
            m = int(entered.sum())
            treatments["customer_id"].append(ids[window.members[entered]])
            treatments["as_of"].append(np.full(m, date))
            treatments["intervention"].append(names[window.arm[entered]])
            held = window.held_out[entered]
            treatments["group"].append(np.where(held, "holdout", "treated").astype(object))
            # the chance of the decision taken: this arm, treated; or no contact at all
            choices = window.choices[entered]
            treatments["propensity"].append(np.where(held, holdout, (1 - holdout) / choices))
            treatments["run_id"].append(np.full(m, f"campaign-{number}", dtype=object))
            size, k = window.log_with.shape
            truth["customer_id"].append(np.repeat(ids[window.members], k))
            truth["as_of"].append(np.full(size * k, date))
            truth["intervention"].append(np.tile(names, size))
            truth["churn_without"].append(np.repeat(-np.expm1(window.log_without), k))
            truth["churn_with"].append(-np.expm1(window.log_with).ravel())
        return (
            {c: _joined(parts) for c, parts in treatments.items()},
            {c: _joined(parts) for c, parts in truth.items()},
        )


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.array([], dtype=object)

"""The BG/NBD model of repeat activity and the Gamma-Gamma model of spend, fitted by maximum
likelihood with numpy and scipy.

BG/NBD (Fader, Hardie & Lee, 2005): while alive, a customer is active at rate ``λ ~ Gamma(r,
α)`` and, after each repeat activity, drops out for good with probability ``p ~ Beta(a, b)``.
A customer is summarised at an as-of date by ``x`` (repeat activities after the first), ``t_x``
(time from the first activity to the last) and ``T`` (time from the first activity to the
as-of date), all in days here. From that summary the model gives the probability that the
customer is still alive, the probability of no activity in the next ``h`` days (the
``inactivity`` churn event itself) and the expected number of activities.

Gamma-Gamma (Fader, Hardie & Lee, 2005b): each spend is ``Gamma(p, ν)`` around the customer's
own mean ``p / ν``, with ``ν ~ Gamma(q, γ)``; the expected mean spend of a customer with ``x``
spends averaging ``m`` shrinks ``m`` towards the population mean.

Both are fitted on weighted rows (identical summaries grouped, with their counts as weights),
so a million customers fit as fast as the distinct summaries they hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

#: Log-parameters stay within this range, so the fit stays finite on degenerate data.
_BOUND = 12.0


@dataclass(frozen=True)
class BGNBD:
    """Fitted BG/NBD parameters: ``r, alpha`` (activity rate), ``a, b`` (dropout)."""

    r: float
    alpha: float
    a: float
    b: float

    def log_likelihood(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Each customer's log-likelihood of the summary ``(x, t_x, T)``."""
        return _bgnbd_ll(np.array([self.r, self.alpha, self.a, self.b]), x, t_x, T)

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """The probability that each customer has not dropped out by the as-of date."""
        x, t_x, T = _arrays(x, t_x, T)
        ratio = np.exp((self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)))
        odds = np.where(x > 0, self.a / np.maximum(self.b + x - 1, 1e-12) * ratio, 0.0)
        return 1.0 / (1.0 + odds)

    def p_none(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, h: float) -> np.ndarray:
        """The probability of no activity in the ``h`` days after the as-of date.

        Dead customers never act; a live one stays alive until it acts, with its rate's
        posterior ``Gamma(r + x, α + T)``, so it stays silent with ``((α+T)/(α+T+h))^(r+x)``.
        """
        x, t_x, T = _arrays(x, t_x, T)
        alive = self.p_alive(x, t_x, T)
        silent = np.exp((self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + T + h)))
        return 1.0 - alive + alive * silent

    def expected(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, h: float) -> np.ndarray:
        """The expected number of activities in the ``h`` days after the as-of date."""
        x, t_x, T = _arrays(x, t_x, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = h / (alpha + T + h)
        silent = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + h)))
        growth = (a + b + x - 1) / (a - 1) * (1 - silent * hyp2f1(r + x, b + x, a + b + x - 1, z))
        return growth * self.p_alive(x, t_x, T)


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend parameters ``p, q, gamma``."""

    p: float
    q: float
    gamma: float

    def expected_spend(self, x: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Each customer's expected mean spend from ``x`` spends averaging ``mean``: the
        posterior mean, between the population mean and the customer's own."""
        x, mean = np.asarray(x, dtype=float), np.asarray(mean, dtype=float)
        p, q, g = self.p, self.q, self.gamma
        weight = p * x / (p * x + q - 1)
        return (1 - weight) * g * p / (q - 1) + weight * mean


def fit_bgnbd(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray | None = None
) -> BGNBD:
    """Maximum-likelihood BG/NBD parameters for the summaries, each counted ``weights`` times."""
    x, t_x, T = _arrays(x, t_x, T)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    scale = max(float(np.average(T, weights=w)), 1.0)

    def loss(theta: np.ndarray) -> float:
        return -float(np.dot(w, _bgnbd_ll(np.exp(theta), x, t_x, T))) / w.sum()

    start = np.log([1.0, scale / 10, 1.0, 1.0])
    r, alpha, a, b = np.exp(_minimize(loss, start))
    return BGNBD(float(r), float(alpha), float(a), float(b))


def fit_gamma_gamma(
    x: np.ndarray, mean: np.ndarray, weights: np.ndarray | None = None
) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters from customers' spend counts and means (both
    positive)."""
    x, mean = np.asarray(x, dtype=float), np.asarray(mean, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)

    def loss(theta: np.ndarray) -> float:
        p, q, g = np.exp(theta)
        px = p * x
        ll = (
            gammaln(px + q)
            - gammaln(px)
            - gammaln(q)
            + q * np.log(g)
            + (px - 1) * np.log(mean)
            + px * np.log(x)
            - (px + q) * np.log(x * mean + g)
        )
        return -float(np.dot(w, ll)) / w.sum()

    start = np.log([2.0, 3.0, float(np.average(mean, weights=w))])
    p, q, g = np.exp(_minimize(loss, start))
    return GammaGamma(float(p), float(q), float(g))


def _minimize(loss: object, start: np.ndarray) -> np.ndarray:
    result = minimize(loss, start, method="L-BFGS-B", bounds=[(-_BOUND, _BOUND)] * len(start))
    return result.x


def _bgnbd_ll(theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = theta
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    stay = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore"):
        left = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return head + np.logaddexp(stay, left)


def _arrays(*columns: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(c, dtype=float) for c in columns)

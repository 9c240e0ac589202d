"""The BG/NBD model of repeat activity, fitted by maximum likelihood with numpy and scipy.

BG/NBD (Fader, Hardie & Lee, 2005): while alive, a customer is active at rate ``λ ~ Gamma(r,
α)`` and, after each repeat activity, drops out for good with probability ``p ~ Beta(a, b)``.
A customer is summarised at an as-of date by ``x`` (repeat activities after the first), ``t_x``
(time from the first activity to the last) and ``T`` (time from the first activity to the
as-of date), all in days here. From that summary the model gives the probability that the
customer is still alive, the probability of no activity in the next ``h`` days (the
``inactivity`` churn event itself) and the expected number of activities.

It is fitted on weighted rows (identical summaries grouped, with their counts as weights), so a
million customers fit as fast as the distinct summaries they hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

#: Log-parameters stay within this range, so the fit stays finite on degenerate data.
_BOUND = 12.0


@dataclass(frozen=True)
class BGNBD:
    """Fitted BG/NBD parameters: ``r, alpha`` (activity rate), ``a, b`` (dropout)."""

    r: float
    alpha: float
    a: float
    b: float

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


def fit_bgnbd(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray | None = None
) -> BGNBD:
    """Maximum-likelihood BG/NBD parameters for the summaries, each counted ``weights`` times."""
    x, t_x, T = _arrays(x, t_x, T)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    scale = max(float(np.average(T, weights=w)), 1.0)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = _bgnbd_ll(np.exp(theta), x, t_x, T)
        return -float(np.dot(w, ll)) / w.sum(), -(grad @ w) / w.sum()

    start = np.log([1.0, scale / 10, 1.0, 1.0])
    found = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(-_BOUND, _BOUND)] * 4)
    r, alpha, a, b = np.exp(found.x)
    return BGNBD(float(r), float(alpha), float(a), float(b))


def _bgnbd_ll(
    theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's log-likelihood, and its gradient in the log-parameters (4 x rows): the fit
    then needs one evaluation per step instead of five for a numerical gradient."""
    r, alpha, a, b = theta
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    stay = -(r + x) * np.log(alpha + T)
    repeat = np.maximum(b + x - 1, 1e-300)
    with np.errstate(divide="ignore"):
        left = np.where(x > 0, np.log(a) - np.log(repeat) - (r + x) * np.log(alpha + t_x), -np.inf)
    tail = np.logaddexp(stay, left)
    # the shares of the two terms of the sum inside the log (the second is 0 where x = 0)
    w_stay, w_left = np.exp(stay - tail), np.exp(left - tail)
    d_r = (
        digamma(r + x)
        - digamma(r)
        + np.log(alpha)
        - w_stay * np.log(alpha + T)
        - w_left * np.log(alpha + t_x)
    )
    d_alpha = r / alpha - (r + x) * (w_stay / (alpha + T) + w_left / (alpha + t_x))
    d_a = digamma(a + b) - digamma(a + b + x) + w_left / a
    d_b = digamma(b + x) - digamma(a + b + x) - digamma(b) + digamma(a + b) - w_left / repeat
    grad = np.stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
    return head + tail, grad


def _arrays(*columns: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(c, dtype=float) for c in columns)

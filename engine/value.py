"""Customer value: BG/NBD for purchase counts and survival, Gamma-Gamma for spend, RFM.

Per customer the summary is `(x, t_x, T)` in days: repeat purchase days, time from first to last
purchase, and age since the first purchase, plus the mean spend `m`. Population parameters are
fitted by maximum likelihood (scipy) from a bounded sample of the live population; each
customer's figures follow from the parameters and their own summary, so they move with every
transaction and as the clock advances. Formulas: Fader, Hardie & Lee (2005), "Counting your
customers the easy way"; Fader & Hardie (2013), "The Gamma-Gamma model of monetary value".

>>> params = {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43}
>>> round(p_alive(params, x=2, t_x=30.43, T=38.86), 4)
0.7277
>>> round(p_alive(params, x=0, t_x=0, T=38.86), 1)
1.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

DAY = 86400.0
# parameters live in [e^-7, e^9]: degenerate data (no dropout seen, say) cannot push the fit to
# values where the closed forms overflow
LOG_BOUNDS = (-7.0, 9.0)
SEGMENTS = (  # (name, min R score, min F score): first match wins; scores are 1..5
    ("champions", 4, 4), ("loyal", 3, 4), ("potential_loyalist", 4, 2), ("new", 5, 1),
    ("promising", 4, 1), ("at_risk", 1, 3), ("needs_attention", 3, 2), ("about_to_sleep", 2, 1),
    ("hibernating", 1, 1),
)


def bgnbd_ll(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> float:
    """Mean negative log-likelihood of BG/NBD at `params = (r, alpha, a, b)`."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(-np.mean(a1 + a2 + np.logaddexp(a3, a4)))


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> dict[str, float]:
    """Maximum-likelihood BG/NBD parameters (fitted on log scale, so they stay positive)."""
    res = minimize(lambda p: bgnbd_ll(np.exp(p), x, t_x, T), np.log([0.5, 10.0, 1.0, 2.0]),
                   method="Nelder-Mead", bounds=[LOG_BOUNDS] * 4,
                   options={"maxiter": 3000, "xatol": 1e-6, "fatol": 1e-9})
    r, alpha, a, b = np.exp(res.x)
    return {"r": float(r), "alpha": float(alpha), "a": float(a), "b": float(b),
            "nll": float(res.fun), "n": len(x)}


def gg_ll(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> float:
    p, q, v = params
    ll = (gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(v)
          + (p * x - 1) * np.log(m) + (p * x) * np.log(x) - (p * x + q) * np.log(x * m + v))
    return float(-np.mean(ll))


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray) -> dict[str, float]:
    """Gamma-Gamma spend parameters from customers with repeat purchases (x > 0, m > 0)."""
    keep = (x > 0) & (m > 0)
    res = minimize(lambda p: gg_ll(np.exp(p), x[keep], m[keep]), np.log([1.0, 1.0, 1.0]),
                   method="Nelder-Mead", bounds=[LOG_BOUNDS] * 3, options={"maxiter": 3000})
    p, q, v = np.exp(res.x)
    return {"p": float(p), "q": float(q), "v": float(v), "n": int(keep.sum())}


def p_alive(params: dict[str, float], x: float, t_x: float, T: float) -> float:
    if x <= 0:
        return 1.0
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    ratio = math.exp((r + x) * (math.log(alpha + T) - math.log(alpha + t_x)))
    return 1.0 / (1.0 + (a / (b + x - 1)) * ratio)


def alive_until(params: dict[str, float], x: float, t_x: float, threshold: float) -> float | None:
    """Age T (days since the first purchase) at which `p_alive` falls to `threshold` if no
    purchase comes: p_alive falls as silence grows, so silence itself can raise the alert.
    None when it never does (no repeat purchase yet: BG/NBD holds such a customer alive).

    >>> bg = {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43}
    >>> T = alive_until(bg, 5, 100.0, 0.3)
    >>> round(p_alive(bg, 5, 100.0, T), 6), T > 100
    (0.3, True)
    """
    if x <= 0 or not 0 < threshold < 1:
        return None
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    k = (1.0 / threshold - 1.0) * (b + x - 1) / a
    if k <= 1.0:
        return t_x  # already below at the last purchase
    return (alpha + t_x) * math.exp(math.log(k) / (r + x)) - alpha


def expected_purchases(params: dict[str, float], t: float, x: float, t_x: float, T: float) -> float:
    """Expected purchases in the next `t` days given the customer's history."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    if abs(a - 1.0) < 1e-9:
        a = 1.0 + 1e-9  # the closed form has a removable singularity at a = 1
    hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    term = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
    num = (a + b + x - 1) / (a - 1) * term
    den = 1.0 + (x > 0) * (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return float(max(0.0, num / den))


def expected_spend(gg: dict[str, float], x: float, m: float, population_mean: float) -> float:
    """Gamma-Gamma conditional expected spend per purchase."""
    p, q, v = gg["p"], gg["q"], gg["v"]
    if x <= 0 or m <= 0 or q <= 1:
        return population_mean
    return (p * (v + x * m)) / (p * x + q - 1)


def summary(history: tuple[int, int, int] | None, spend_total: float, purchases: int,
            now: float) -> dict[str, float]:
    """The per-customer summary stored with the profile (days, mean spend), from the
    customer's (distinct purchase days, first day, last day)."""
    if not history:
        return {}
    days, first, last = history
    return {"x": days - 1, "t0": first * DAY, "tl": last * DAY,
            "m": round(spend_total / purchases, 4) if purchases else 0.0, "n": purchases}


def quintile(value: float, cuts: list[float], higher_is_better: bool = True) -> int:
    """1..5 against the population's quintile boundaries.

    >>> quintile(10, [1, 2, 3, 4]), quintile(10, [1, 2, 3, 4], higher_is_better=False)
    (5, 1)
    """
    score = 1 + sum(value > c for c in cuts)
    return score if higher_is_better else 6 - score


def segment(r: int, f: int) -> str:
    for name, min_r, min_f in SEGMENTS:
        if r >= min_r and f >= min_f:
            return name
    return "hibernating"


def at_horizon(v: dict[str, Any], horizon_days: float, params: dict[str, Any] | None,
               now: float) -> dict[str, Any]:
    """Value scores of one customer as of `now` over `horizon_days`."""
    out: dict[str, Any] = {"p_alive": None, "expected_purchases": None, "clv": None,
                           "rfm": None, "segment": None, "tier": None}
    if not v:
        out.update(segment="prospect", tier="none")
        return out
    x, T = float(v["x"]), max(0.0, (now - v["t0"]) / DAY)
    t_x = max(0.0, (v["tl"] - v["t0"]) / DAY)
    bg, gg = (params or {}).get("bgnbd"), (params or {}).get("gamma_gamma")
    if bg:
        out["p_alive"] = round(p_alive(bg, x, t_x, T), 4)
        ep = expected_purchases(bg, horizon_days, x, t_x, T)
        out["expected_purchases"] = round(ep, 4)
        mean = (params or {}).get("mean_spend", v["m"])
        spend = expected_spend(gg, x, v["m"], mean) if gg else v["m"]
        out["clv"] = round(ep * spend, 2)
    cuts = (params or {}).get("rfm")
    if cuts:
        recency = (now - v["tl"]) / DAY
        r = quintile(recency, cuts["recency"], higher_is_better=False)
        f = quintile(v["n"], cuts["frequency"])
        m = quintile(v["m"], cuts["monetary"])
        out["rfm"] = {"r": r, "f": f, "m": m, "score": f"{r}{f}{m}"}
        out["segment"] = segment(r, f)
        out["tier"] = "platinum" if r + f + m >= 13 else "gold" if r + f + m >= 10 else \
            "silver" if r + f + m >= 7 else "bronze"
    return out

"""Mean, spread and confidence intervals: how a difference is told from the seed (and the fold).

* :func:`summary`: mean, standard deviation (ddof=1; NaN with one value) and count;
* :func:`welch`: the difference of two independent groups' means (two deployments over their seeds) with a Welch t
  confidence interval;
* :func:`paired`: the mean difference of pairs trained alike (two recipes on the same folds and seeds) with a t
  confidence interval.

A difference counts only when its interval excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import stats

#: The confidence level of every interval.
LEVEL = 0.95
NO_INTERVAL = "n<2: no interval (one seed on a side)"


def values_of(x: Iterable[Any]) -> np.ndarray:
    """The finite values of ``x`` as floats (NaN and None left out)."""
    a = np.asarray([np.nan if v is None else float(v) for v in x], dtype=float)
    return a[np.isfinite(a)]


def summary(x: Iterable[Any]) -> tuple[float, float, int]:
    """(mean, std with ddof=1, n) of the finite values; std NaN when n < 2, mean NaN when n = 0."""
    a = values_of(x)
    n = len(a)
    mean = float(a.mean()) if n else math.nan
    std = float(a.std(ddof=1)) if n >= 2 else math.nan
    return mean, std, n


def welch(a: Iterable[Any], b: Iterable[Any], level: float = LEVEL) -> dict[str, Any]:
    """mean(a) − mean(b) with its Welch t confidence interval at ``level``. Returns mean_a, mean_b, diff, ci_low,
    ci_high, n_a, n_b, beyond_seed_spread (the interval excludes 0; NaN without an interval) and a note. With
    fewer than two finite values on either side there is no interval (NaN bounds, note 'n<2 ...'); with no
    spread on either side the interval shrinks to the difference itself."""
    xa, xb = values_of(a), values_of(b)
    ma = float(xa.mean()) if len(xa) else math.nan
    mb = float(xb.mean()) if len(xb) else math.nan
    out: dict[str, Any] = {
        "mean_a": ma,
        "mean_b": mb,
        "diff": ma - mb,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "n_a": len(xa),
        "n_b": len(xb),
        "beyond_seed_spread": math.nan,
        "note": "",
    }
    if len(xa) < 2 or len(xb) < 2:
        out["note"] = NO_INTERVAL
        return out
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    se = math.sqrt(va + vb)
    if se == 0.0:
        half, out["note"] = 0.0, "no spread over the seeds on either side"
    else:
        dof = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
        half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    out.update(ci_low=out["diff"] - half, ci_high=out["diff"] + half)
    out["beyond_seed_spread"] = bool(out["ci_low"] > 0 or out["ci_high"] < 0)
    return out


def paired(reference: Sequence[float], other: Sequence[float], level: float = LEVEL) -> dict[str, Any]:
    """``other - reference`` over pairs trained alike (the same fold and seed, in the same order): the mean
    difference with its t confidence interval at ``level`` (n - 1 degrees of freedom). ``beyond``: True when the
    interval excludes 0 (the difference is beyond the fold/seed spread), False when it holds 0, None with fewer
    than two pairs (no interval). With no spread at all the interval is the difference itself."""
    if len(reference) != len(other):
        raise ValueError(f"paired values: {len(reference)} reference values but {len(other)} others")
    d = np.asarray(other, dtype=float) - np.asarray(reference, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    out: dict[str, Any] = {"diff": float(d.mean()) if n else math.nan, "low": math.nan, "high": math.nan, "n": n}
    out["beyond"] = None
    if n >= 2:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
        out.update(low=out["diff"] - half, high=out["diff"] + half)
        out["beyond"] = bool(out["low"] > 0 or out["high"] < 0)
    return out

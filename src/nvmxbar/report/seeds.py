"""Statistics over seeds: every deployed model is trained (and mapped, noise-evaluated, costed) at several seeds.

* :func:`summary`: mean, standard deviation (ddof=1; NaN with one seed) and count of one quantity's per-seed values;
* :func:`welch`: the difference of two deployments' means with a Welch t confidence interval (unequal variances),
  and whether that interval excludes 0 (``beyond_seed_spread``); no interval with fewer than two seeds a side;
* :func:`mean_over_seeds`: a per-seed DataFrame reduced to one row per key (numbers averaged, the rest taken from
  the first seed), for the quantities that barely move with the seed (counts, area, energy);
* :func:`first_seed`: the rows of the lowest seed (what a figure of one trained network draws).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype, is_numeric_dtype
from scipy import stats

#: The confidence level of every interval in the report.
LEVEL = 0.95
#: A deployment, seed aside.
DEPLOYMENT = ["dataset", "variant", "bits"]
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


def mean_over_seeds(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per ``keys`` (in first-seen order): numeric columns averaged over the seeds (integers stay integers
    where every seed agrees), other columns from the first row, ``n_seeds`` the number of rows averaged. A frame
    without a ``seed`` column is returned as it is."""
    if "seed" not in df.columns:
        return df
    keys = [k for k in keys if k in df.columns]
    if df.empty:
        return df.drop(columns="seed").assign(n_seeds=pd.Series(dtype=int))
    rest = [c for c in df.columns if c not in keys and c != "seed"]
    num = [c for c in rest if is_numeric_dtype(df[c]) and not is_bool_dtype(df[c])]
    other = [c for c in rest if c not in num]
    g = df.groupby(keys, sort=False, dropna=False)
    out = pd.concat([g[num].mean(), g[other].first(), g.size().rename("n_seeds")], axis=1).reset_index()
    for c in num:
        if is_integer_dtype(df[c]) and np.allclose(out[c], out[c].round()):
            out[c] = out[c].round().astype(df[c].dtype)
    return out[[*keys, *rest, "n_seeds"]]


def first_seed(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the lowest seed (all rows when there is no ``seed`` column or no row)."""
    if "seed" not in df.columns or df.empty:
        return df
    return df[df.seed == df.seed.min()]


def seeds_text(seeds: Iterable[int]) -> str:
    """'0 1 2 3 4': the seeds as the tables write them."""
    return " ".join(str(int(s)) for s in sorted(set(seeds)))

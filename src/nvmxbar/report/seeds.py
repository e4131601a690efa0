"""Statistics over seeds: every deployed model is trained (and mapped, noise-evaluated, costed) at several seeds.

* :func:`summary`: mean, standard deviation (ddof=1; NaN with one seed) and count of one quantity's per-seed values;
* :func:`welch`: the difference of two deployments' means with a Welch t confidence interval (unequal variances),
  and whether that interval excludes 0 (``beyond_seed_spread``); no interval with fewer than two seeds a side;
* :func:`mean_over_seeds`: a per-seed DataFrame reduced to one row per key (numbers averaged, the rest taken from
  the first seed), for the quantities that barely move with the seed (counts, area, energy);
* :func:`first_seed`: the rows of the lowest seed (what a figure of one trained network draws).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype, is_numeric_dtype

#: A deployment, seed aside.
DEPLOYMENT = ["dataset", "variant", "bits"]


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

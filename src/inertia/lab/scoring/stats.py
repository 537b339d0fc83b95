"""The statistics of a comparison: medians, intervals, a rank test and Holm's correction.

Seeds are few (3 to 10), so every tool here is distribution-free and exact:

* **Median** over seeds, where a miss (never reached: time to target infinity) or a
  diverged run (final metric: the worst possible value) counts as the largest value.
* **Interval for the median**: the order statistics :math:`[x_{(k)}, x_{(n+1-k)}]`.
  Whatever the distribution, the median lies outside it only if at most :math:`k-1` of
  the :math:`n` seeds fall on one side, so its coverage is
  :math:`1 - 2\\,P(\\mathrm{Bin}(n, \\tfrac12) \\le k-1)`. We take the narrowest such
  interval with coverage at least 95%; with fewer than 6 seeds even :math:`[\\min, \\max]`
  covers less (75% for 3 seeds, 94% for 5), and the interval says so.
* **Rank test** of "A and B are equally good": the exact permutation distribution of the
  difference in mean ranks over all :math:`\\binom{n_A+n_B}{n_A}` splits of the pooled
  seeds (``scipy.stats.permutation_test``), two-sided. Ranks make it indifferent to
  outliers and infinities; the exact distribution handles ties. Its smallest possible
  p-value is :math:`2/\\binom{2n}{n}` for n seeds each: 0.1 for 3 seeds, 0.008 for 5.
* **Holm's correction** for testing m comparisons at once: sort the p-values,
  multiply the i-th smallest by :math:`m - i + 1` and keep them increasing. It controls the
  chance of *any* false "A beats B" at :data:`ALPHA`, whatever the dependence between tests.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95
#: fewer seeds per entry than this give no verdict words, whatever the p-values
MIN_SEEDS = 5
INF = math.inf


def median(values: Iterable[float]) -> float:
    """The median, where infinities count as the largest values (``np.median`` may give NaN); NaN are ignored."""
    v = sorted(float(x) for x in values if x == x)
    if not v:
        return math.nan
    mid = len(v) // 2
    if len(v) % 2:
        return v[mid]
    a, b = v[mid - 1], v[mid]
    if math.isinf(a) and math.isinf(b) and a == b:
        return a
    return INF if math.isinf(b) and b > 0 else (a + b) / 2


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(low, high, coverage)``: the order-statistic interval for the median (see the module docstring).

    ``coverage`` is the interval's exact confidence: at least ``confidence`` when the seeds
    allow it, else that of ``[min, max]``. NaN values are ignored; infinities are ordinary
    (largest or smallest) values.
    """
    from scipy import stats as sps  # scipy.stats takes most of a second to import: only when scoring

    v = sorted(float(x) for x in values if x == x)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan
    if n == 1:
        return v[0], v[0], 0.0
    best = 1
    for k in range(1, n // 2 + 1):
        if 1 - 2 * sps.binom.cdf(k - 1, n, 0.5) >= confidence:
            best = k
        else:
            break
    coverage = 1 - 2 * sps.binom.cdf(best - 1, n, 0.5)
    return v[best - 1], v[n - best], float(coverage)


def rank_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided exact permutation p-value of the difference in mean ranks of ``a`` and ``b``.

    Lower and higher values are just ranks here: orient the data first (times and
    lower-is-better metrics as they are; NaN must be mapped to the worst value by the caller).
    Identical samples give 1.
    """
    from scipy import stats as sps

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return math.nan
    ranks = sps.rankdata(np.concatenate([a, b]))
    ra, rb = ranks[:len(a)], ranks[len(a):]
    if np.ptp(ranks) == 0:
        return 1.0
    if min(len(a), len(b)) < 2:  # scipy wants two per side; the exact count is tiny here anyway
        return _exact_small(ranks, len(a))
    exact = math.comb(len(a) + len(b), len(a)) <= 200_000
    res = sps.permutation_test(
        (ra, rb), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        permutation_type="independent", alternative="two-sided", vectorized=True,
        n_resamples=np.inf if exact else 99_999, random_state=0)
    return float(min(1.0, res.pvalue))


def _exact_small(ranks: np.ndarray, n_a: int) -> float:
    """The same exact test by enumeration, for a side with a single seed."""
    from itertools import combinations

    total = ranks.sum()
    n_b = len(ranks) - n_a

    def stat(idx) -> float:
        sa = ranks[list(idx)].sum()
        return sa / n_a - (total - sa) / n_b

    observed = abs(stat(range(n_a)))
    splits = list(combinations(range(len(ranks)), n_a))
    return sum(abs(stat(c)) >= observed - 1e-12 for c in splits) / len(splits)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order (NaN stays NaN and is not counted)."""
    idx = [i for i, p in enumerate(pvalues) if p == p]
    m = len(idx)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest p-value :func:`rank_test` can give with these numbers of seeds."""
    return min(1.0, 2 / math.comb(n_a + n_b, n_a)) if n_a and n_b else 1.0


def seeds_needed(comparisons: int, alpha: float = ALPHA) -> int:
    """Seeds per entry below which no verdict is possible: :data:`MIN_SEEDS`, or more when even a
    complete separation cannot survive Holm's correction over ``comparisons`` tests."""
    n = 2
    while comparisons * smallest_p(n, n) >= alpha:
        n += 1
    return max(MIN_SEEDS, n)

"""Statistics of a Monte-Carlo evaluation over crossbar instances, and when a mean is no better than guessing.
Torch-free: the page and the store's readers use them too."""
from __future__ import annotations

import math

import numpy as np

from dse.domain.errors import DSEError

CHANCE_ACCURACY = 10.0  # CIFAR-10 has ten classes: guessing scores 10%
CHANCE_MARGIN = 3.0  # points above chance that still count as guessing


def at_chance(accuracy) -> bool:
    """A mean accuracy no better than guessing: the network has collapsed under these faults (a result,
    not an error)."""
    return accuracy is not None and accuracy == accuracy and float(accuracy) <= CHANCE_ACCURACY + CHANCE_MARGIN


def check_rate(rate, what: str = "drop-connect rate") -> float:
    """A probability in [0, 1) (a fault or drop-connect rate): 1 would drop every weight and divide by zero."""
    try:
        p = float(rate)
    except (TypeError, ValueError):
        raise DSEError(f"{what} must be a number in [0, 1), got {rate!r}") from None
    if not 0.0 <= p < 1.0:  # also rejects NaN
        raise DSEError(f"{what} must be in [0, 1), got {rate!r}")
    return p


def summarize(accs) -> dict:
    """mean, std, 95% CI (Student t), 5th percentile, worst and best of per-instance accuracies."""
    from scipy import stats

    a = np.asarray(accs, dtype=float)
    n = len(a)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else float("nan")
    # an accuracy lies in [0, 100]: a t interval from few crossbars can reach past either end
    return {"n": n, "mean": mean, "std": std, "ci95": half, "ci_low": float(np.clip(mean - half, 0.0, 100.0)),
            "ci_high": float(np.clip(mean + half, 0.0, 100.0)),
            "p5": float(np.percentile(a, 5)), "worst": float(a.min()), "best": float(a.max())}


# ------------------------------------------------------------------ chip yield
# A yield is a fraction in [0, 1] (the share of chips that work), and so are its interval's ends; accuracies
# and accuracy targets are percent, as everywhere in dse. Pages and commands print yields as percent.

def number_in(value, low: float, high: float, message: str, open_ends: bool = False) -> float:
    """`value` as a float in [low, high] ((low, high) with open_ends), else a one-line DSEError:
    `message` followed by the value given. NaN and non-numbers fail."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not (low < v < high if open_ends else low <= v <= high):
        raise DSEError(f"{message}{value!r}")
    return v


def _check_level(level) -> float:
    return number_in(level, 0.0, 1.0, "confidence level must be in (0, 1), e.g. 0.95; got ", open_ends=True)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided binomial interval for k successes in n trials, as fractions in
    [0, 1]: (Beta(a/2; k, n-k+1), Beta(1-a/2; k+1, n-k)) with a = 1 - level; the low end is 0 when k = 0 and
    the high end 1 when k = n (then the other end is the one-sided bound at a/2, e.g. 1 - (a/2)^(1/n))."""
    from scipy.stats import beta

    lv = _check_level(level)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DSEError(f"number of chips n must be a positive integer, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise DSEError(f"number of chips meeting the target k must be an integer in [0, {n}], got {k!r}")
    a = 1.0 - lv
    low = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return low, high


def chip_yield(accuracies, target: float, level: float = 0.95) -> dict:
    """The share of chips (crossbar instances, one accuracy in percent each) whose accuracy is >= `target`
    (percent, in [0, 100]): yield = k/n as a fraction, with its Clopper-Pearson interval (low, high) at `level`."""
    t = number_in(target, 0.0, 100.0, "accuracy target must be a percentage in [0, 100], got ")
    lv = _check_level(level)
    try:
        a = np.asarray(accuracies, dtype=float).ravel()
    except (TypeError, ValueError):
        raise DSEError(f"chip accuracies must be numbers (percent), got {accuracies!r}") from None
    if a.size == 0:
        raise DSEError("no chip accuracies (n = 0): a yield needs at least one evaluated chip")
    if not np.isfinite(a).all():
        raise DSEError(f"chip accuracies must be finite numbers (percent), got {a[~np.isfinite(a)][0]!r}")
    n, k = int(a.size), int((a >= t).sum())
    low, high = clopper_pearson(k, n, lv)
    return {"yield": k / n, "k": k, "n": n, "low": low, "high": high, "target": t, "level": lv}


def chips_needed(min_yield: float, level: float = 0.95, limit: int = 1_000_000) -> int:
    """The fewest chips n whose all-pass result (n of n meeting the target) has an exact two-sided
    Clopper-Pearson lower bound at `level` of at least `min_yield` (a fraction in [0, 1)): that bound is
    (a/2)^(1/n) with a = 1 - level, so n = ceil(ln(a/2) / ln(min_yield)); 36 chips for 0.9 and 72 for 0.95
    at the 95% level. Fewer chips cannot prove the claim whatever they score."""
    y = number_in(min_yield, 0.0, 1.0, "minimum yield must be a fraction in [0, 1), e.g. 0.9; got ")
    lv = _check_level(level)
    if y >= 1.0:
        raise DSEError("a minimum yield of 100% can never be proved by a finite number of chips; choose below 1")
    if y <= 0.0:
        return 1
    n = max(1, math.ceil(math.log((1.0 - lv) / 2) / math.log(y) - 1e-9))
    while n > 1 and clopper_pearson(n - 1, n - 1, lv)[0] >= y:  # guard the float edge both ways
        n -= 1
    while clopper_pearson(n, n, lv)[0] < y:
        n += 1
        if n > limit:
            raise DSEError(f"a minimum yield of {y:.4%} needs more than {limit:,} chips")
    return n


def provable_yield(n: int, level: float = 0.95) -> float:
    """The most that n chips can prove: the lower bound when all n meet the target (0.832 for 20 chips)."""
    return clopper_pearson(int(n), int(n), level)[0]

"""Statistics of a Monte-Carlo evaluation over crossbar instances, and when a mean is no better than guessing.
Torch-free: the page and the store's readers use them too."""
from __future__ import annotations

import math

import numpy as np

CHANCE_ACCURACY = 10.0  # CIFAR-10 has ten classes: guessing scores 10%
CHANCE_MARGIN = 3.0  # points above chance that still count as guessing


def at_chance(accuracy) -> bool:
    """A mean accuracy no better than guessing: the network has collapsed under these faults (a result,
    not an error)."""
    return accuracy is not None and accuracy == accuracy and float(accuracy) <= CHANCE_ACCURACY + CHANCE_MARGIN


def summarize(accs) -> dict:
    """mean, std, 95% CI (Student t), 5th percentile, worst and best of per-instance accuracies."""
    from scipy import stats

    a = np.asarray(accs, dtype=float)
    n = len(a)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "std": std, "ci95": half, "ci_low": mean - half, "ci_high": mean + half,
            "p5": float(np.percentile(a, 5)), "worst": float(a.min()), "best": float(a.max())}

"""Paired comparison of two arms on the same cases: Wilcoxon signed-rank test and bootstrap CI."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 10000
BOOTSTRAP_SEED = 0
METHOD = (
    "paired per-case differences (arm minus reference); two-sided Wilcoxon signed-rank test "
    "(scipy.stats.wilcoxon, default options; p = 1 when every difference is 0); "
    f"{100 * CONFIDENCE:g}% bootstrap confidence interval of the mean difference "
    f"(scipy.stats.bootstrap, percentile method, {RESAMPLES} resamples, random_state={BOOTSTRAP_SEED}; "
    "none with fewer than 2 cases)"
)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of paired differences, its bootstrap confidence interval, and the Wilcoxon p-value."""

    cases: int
    mean: float
    ci: Optional[Tuple[float, float]]
    p_value: float

    def to_json(self) -> Dict[str, Any]:
        """As JSON-ready data."""
        return {**asdict(self), "ci": list(self.ci) if self.ci is not None else None}


def paired_difference(differences: Sequence[float]) -> PairedDifference:
    """Summarise per-case differences: mean, bootstrap CI of the mean, Wilcoxon signed-rank p."""
    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        raise ValueError("no paired differences to summarise")
    # scipy returns NaN (with a warning) when every difference is 0: there is no evidence of a change.
    p_value = 1.0 if not np.any(values) else float(stats.wilcoxon(values).pvalue)
    ci = None
    if values.size >= 2:
        interval = stats.bootstrap(
            (values,),
            np.mean,
            confidence_level=CONFIDENCE,
            n_resamples=RESAMPLES,
            method="percentile",
            random_state=BOOTSTRAP_SEED,
        ).confidence_interval
        ci = (float(interval.low), float(interval.high))
    return PairedDifference(int(values.size), float(values.mean()), ci, p_value)

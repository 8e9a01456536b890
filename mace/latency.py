"""The one summary of run times: `run`, `benchmark`, `demo`, reports, the tuner and the benchmarks
all read their medians and spreads here (a base-layer module, so the tuner can use it too)."""
from __future__ import annotations

import numpy as np


def latency_stats(samples_s, *, with_samples: bool = True) -> dict:
    """Milliseconds: runs, median, p10, p90, p99, mean, std, min, max, IQR and the relative
    spread (p90 - p10) / median, from run times in seconds; the samples themselves unless
    `with_samples=False`. No samples gives `{"runs": 0}`."""
    a = np.asarray(samples_s, dtype=np.float64) * 1e3
    if a.size == 0:
        return {"runs": 0, "samples_ms": []} if with_samples else {"runs": 0}
    p10, p25, p50, p75, p90, p99 = np.percentile(a, [10, 25, 50, 75, 90, 99])
    out = {"runs": int(a.size), "median_ms": float(p50), "p10_ms": float(p10), "p90_ms": float(p90),
           "p99_ms": float(p99), "mean_ms": float(a.mean()), "std_ms": float(a.std()),
           "min_ms": float(a.min()), "max_ms": float(a.max()), "iqr_ms": float(p75 - p25),
           "spread": float((p90 - p10) / p50) if p50 > 0 else 0.0}
    if with_samples:
        out["samples_ms"] = a.tolist()
    return out

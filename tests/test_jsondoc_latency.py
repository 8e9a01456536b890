"""The one JSON encoding and the one latency summary."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mace.jsondoc import dumps, jsonable
from mace.latency import latency_stats


class _Obj:
    def to_dict(self):
        return {"k": np.int64(3)}


def test_dumps_numpy_paths_objects():
    doc = {"i": np.int32(7), "f": np.float32(0.5), "b": np.bool_(True), "a": np.arange(3),
           "p": Path("/x/y"), "o": _Obj(), "s": {1, 2} and frozenset([1])}
    back = json.loads(dumps(doc))
    assert back["i"] == 7 and back["f"] == 0.5 and back["b"] is True and back["a"] == [0, 1, 2]
    assert back["p"] == "/x/y" and back["o"] == {"k": 3} and back["s"] == "frozenset({1})"
    assert "\n" in dumps({"a": 1}) and "\n" not in dumps({"a": [1, 2]}, indent=None)
    assert jsonable(np.float64(2.0)) == 2.0 and type(jsonable(np.float64(2.0))) is float


def test_latency_stats_values():
    s = latency_stats([0.001, 0.002, 0.003, 0.004, 0.010])
    assert s["runs"] == 5
    assert s["median_ms"] == pytest.approx(3.0)
    assert s["min_ms"] == pytest.approx(1.0) and s["max_ms"] == pytest.approx(10.0)
    assert s["mean_ms"] == pytest.approx(4.0)
    assert s["p90_ms"] == pytest.approx(np.percentile([1, 2, 3, 4, 10], 90))
    assert s["p10_ms"] == pytest.approx(np.percentile([1, 2, 3, 4, 10], 10))
    assert s["spread"] == pytest.approx((s["p90_ms"] - np.percentile([1, 2, 3, 4, 10], 10)) / 3.0)
    assert s["samples_ms"] == pytest.approx([1, 2, 3, 4, 10])
    assert "samples_ms" not in latency_stats([0.001], with_samples=False)


def test_latency_stats_empty():
    assert latency_stats([]) == {"runs": 0, "samples_ms": []}
    assert latency_stats([], with_samples=False) == {"runs": 0}


def test_latency_stats_is_the_only_percentile_summary():
    """The tuner, tools and benchmarks take their medians and spreads from mace.latency: no
    other module computes percentiles of run times itself."""
    root = Path(__file__).resolve().parents[1]
    found = [p.relative_to(root).as_posix() for d in ("mace", "benchmarks") for p in sorted((root / d).rglob("*.py"))
             if "percentile(" in p.read_text()]
    assert found == ["mace/latency.py"]

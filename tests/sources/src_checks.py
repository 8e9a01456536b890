"""Convert a source model and validate it on both runtimes against its own framework."""
from __future__ import annotations

import mace
from mace.convert import convert
from mace.tools.validate import validate

COSINE = 0.999


def convert_and_validate(source, out, runtimes=("cpu", "gpu"), **kw):
    graph = convert(source, out, **kw)
    results = {}
    for runtime in runtimes:
        with mace.Engine(out, runtime=runtime) as engine:
            res = validate(engine, source, threshold=COSINE, seed=0)
        assert res["passed"], (runtime, res)
        assert all(o["cosine"] >= COSINE for o in res["outputs"].values()), res
        results[runtime] = res
    return graph, results

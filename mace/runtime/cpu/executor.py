"""The CPU executor: runs the graph node by node with the NumPy kernels."""
from __future__ import annotations

import numpy as np

from mace.errors import MaceError
from mace.ir.graph import Graph
from mace.runtime.cpu import registry


class CpuExecutor:
    def __init__(self, graph: Graph):
        self.graph = graph
        kernels = registry.kernels()
        missing = sorted({n.op_type for n in graph.nodes if n.op_type not in kernels})
        if missing:
            raise MaceError(f"the CPU runtime has no kernel for {', '.join(missing)}")
        self._steps = [(kernels[n.op_type], n) for n in graph.nodes]
        self._weights = {k: np.asarray(v) for k, v in graph.weights.items()}
        last = {}
        for i, n in enumerate(graph.nodes):
            for v in n.inputs:
                last[v] = i
        keep = set(graph.outputs)
        self._free_after = [[v for v in set(n.inputs) if v and last.get(v) == i and v not in keep
                             and v not in self._weights] for i, n in enumerate(graph.nodes)]

    def run(self, inputs: dict[str, np.ndarray], profile: bool = False):
        import time
        values: dict[str, np.ndarray] = dict(self._weights)
        for name in self.graph.inputs:
            values[name] = np.ascontiguousarray(inputs[name], dtype=np.float32)
        times = []
        for i, (fn, node) in enumerate(self._steps):
            t0 = time.perf_counter() if profile else 0.0
            outs = fn(node, [values[v] if v else None for v in node.inputs])
            for name, arr in zip(node.outputs, outs):
                if name:
                    values[name] = arr
            if profile:
                times.append((node, time.perf_counter() - t0))
            for v in self._free_after[i]:
                values.pop(v, None)
        outs = {name: np.asarray(values[name], dtype=np.float32) for name in self.graph.outputs}
        return (outs, times) if profile else outs

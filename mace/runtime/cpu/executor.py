"""The CPU executor: runs the graph node by node with the NumPy kernels.

With prepared steps, zero Pads feeding a Conv are folded into it first (`fold`).
Kernels with a `prepare(node, weights, graph)` attribute get a per-node step built once here
(prepacked weights, persistent output / scratch buffers sized from the graph's static shapes);
the step has the kernel's signature and falls back to the plain kernel on unexpected inputs.
A prepared producer whose only reader is a prepared step with a padded input buffer writes into
that buffer directly (`set_target`). Persistent buffers are overwritten by the next run, so
graph outputs are copied before they are returned; one run at a time (a lock).
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from mace.errors import MaceError
from mace.ir.graph import Graph
from mace.runtime.cpu import fold, helpers, registry
from mace.runtime.cpu import kernels as compiled

log = logging.getLogger("mace")


class CpuExecutor:
    def __init__(self, graph: Graph, prepare: bool = True, threads: int | None = None):
        """threads: how many threads one run's kernels use (None: the physical cores)."""
        graph = fold.fold_pads(graph) if prepare else graph
        self.graph = graph
        self.threads = threads or helpers.THREADS
        kernels = registry.kernels()
        missing = sorted({n.op_type for n in graph.nodes if n.op_type not in kernels})
        if missing:
            raise MaceError(f"the CPU runtime has no kernel for {', '.join(missing)}")
        self._weights = {k: np.asarray(v) for k, v in graph.weights.items()}
        self._types = {v: np.dtype(graph.dtypes.get(v, "float32")) for v in [*graph.inputs, *graph.outputs]}
        self._build_steps(prepare)
        last = {}
        for i, n in enumerate(graph.nodes):
            for v in n.inputs:
                last[v] = i
        keep = set(graph.outputs)
        self._free_after = [[v for v in set(n.inputs) if v and last.get(v) == i and v not in keep
                             and v not in self._weights] for i, n in enumerate(graph.nodes)]
        self._lock = threading.Lock()

    def _build_steps(self, prepare: bool) -> None:
        """The steps of a run. Prepared steps choose their compiled or NumPy kernels here: steps
        built while the compiled kernels compile in the background are built again once they are
        ready (`run`)."""
        self.compiled_kernels = compiled.available()  # never waits: see jit.start
        self._prepare_steps = prepare
        self._steps = []
        self.prepared = {}
        for n in self.graph.nodes:
            fn = registry.kernel_for(n.op_type, [self._dtype(v) if v else None for v in n.inputs])
            step = self._prepare(fn, n) if prepare else None
            if step is not None:
                self.prepared[n.name] = step
            self._steps.append((step or fn, n))
        if prepare:
            self._link_targets()

    def _dtype(self, v: str) -> np.dtype:
        w = self._weights.get(v)
        return w.dtype if w is not None else np.dtype(self.graph.dtypes.get(v, "float32"))

    def _prepare(self, fn, node):
        prep = getattr(fn, "prepare", None)
        if prep is None:
            return None
        try:
            return prep(node, self._weights, self.graph)
        except Exception as exc:  # noqa: BLE001 - the plain kernel still runs the node
            log.debug("CPU: no prepared step for %s (%s): %s", node.name, node.op_type, exc)
            return None

    def _link_targets(self) -> None:
        graph = self.graph
        producers = {o: self.prepared.get(n.name) for n in graph.nodes for o in n.outputs}
        consumers = graph.consumers()
        outputs = set(graph.outputs)
        for n in graph.nodes:
            step = self.prepared.get(n.name)
            view = getattr(step, "in_view", None)
            if view is None or not n.inputs:
                continue
            v = n.inputs[0]
            prod = producers.get(v)
            if (prod is None or not hasattr(prod, "set_target") or v in outputs
                    or len(consumers.get(v, [])) != 1 or getattr(prod, "target", None) is not None
                    or tuple(view.shape) != tuple(getattr(prod, "out_shape", ()))):
                continue
            prod.set_target(view)
        # pointwise convs read a prepared producer's ones-augmented buffer (bias inside the sgemm)
        for n in graph.nodes:
            step = self.prepared.get(n.name)
            if not hasattr(step, "use_aug_input") or not n.inputs:
                continue
            prod = producers.get(n.inputs[0])
            if getattr(prod, "aug", None) is not None and getattr(prod, "target", None) is None:
                step.use_aug_input(prod.out, prod.aug)

    def release(self) -> None:
        """Drop prepared steps and their buffers now (`Engine.close`)."""
        with self._lock:
            self._steps, self.prepared, self._weights = [], {}, {}

    def run(self, inputs: dict[str, np.ndarray], profile: bool = False):
        with self._lock, helpers.blas_single:
            if not self.compiled_kernels and self._steps and compiled.available():
                self._build_steps(self._prepare_steps)   # the background compile is done: switch to it
            helpers.set_threads(self.threads)
            try:
                return self._run(inputs, profile)
            finally:
                helpers.set_threads(None)
                if not self.compiled_kernels:
                    compiled.first_result_done()

    def _run(self, inputs, profile):
        values: dict[str, np.ndarray] = dict(self._weights)
        for name in self.graph.inputs:
            values[name] = np.asarray(inputs[name], dtype=self._types[name], order="C")  # 0-d stays 0-d
        times = []
        perf = time.perf_counter
        for i, (fn, node) in enumerate(self._steps):
            t0 = perf() if profile else 0.0
            outs = fn(node, [values[v] if v else None for v in node.inputs])
            for name, arr in zip(node.outputs, outs):
                if name:
                    values[name] = arr
            if profile:
                times.append((node, perf() - t0))
            for v in self._free_after[i]:
                values.pop(v, None)
        # copies: prepared steps reuse their buffers in the next run
        outs = {name: np.array(values[name], dtype=self._types[name], copy=True) for name in self.graph.outputs}
        return (outs, times) if profile else outs

"""Checking one ONNX node on both mace runtimes against onnxruntime.

`check` builds a one-node ONNX model, converts it with mace's converter (so the frontend's
normalization and passes are exercised too), runs it on the requested runtimes and compares with
onnxruntime. Tolerances: fp32 `rtol`/`atol` as given (default 1e-4 / 1e-4 absolute on values of
order 1), i.e. tighter than the cosine 0.999 a model must reach.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import mace
from mace.convert import convert

OPSET = 17


def make_model(op_type: str, inputs: dict[str, np.ndarray], attrs: dict | None = None,
               initializers: dict[str, np.ndarray] | None = None, n_outputs: int = 1,
               input_order: list[str] | None = None, opset: int = OPSET, domain: str = "") -> onnx.ModelProto:
    """A one-node model: `inputs` become graph inputs, `initializers` constants; node inputs are
    `input_order` (names, "" for an omitted optional input) or inputs then initializers."""
    initializers = initializers or {}
    order = input_order or (list(inputs) + list(initializers))
    outs = [f"out{k}" for k in range(n_outputs)]
    node = helper.make_node(op_type, order, outs, **(attrs or {}))
    g_inputs = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                for k, v in inputs.items()]
    g_outputs = [helper.make_empty_tensor_value_info(o) for o in outs]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()]
    g = helper.make_graph([node], f"test_{op_type}", g_inputs, g_outputs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid(domain, opset)])
    m.ir_version = 8
    return m


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_mace(model: onnx.ModelProto, feeds: dict[str, np.ndarray], runtime: str,
             data_type: str = "fp32_fp32") -> list[np.ndarray]:
    graph = convert(model, data_type=data_type)
    engine = mace.Engine(graph, runtime=runtime, use_program_cache=False)
    outs = engine.run(feeds)
    return [outs[o] for o in graph.outputs]


def check_model(model: onnx.ModelProto, feeds: dict[str, np.ndarray], runtimes=("cpu", "gpu"),
                rtol: float = 1e-4, atol: float = 1e-4, data_type: str = "fp32_fp32") -> None:
    want = reference(model, feeds)
    for rt in runtimes:
        got = run_mace(model, feeds, rt, data_type)
        assert len(got) == len(want), rt
        for g, w in zip(got, want):
            assert g.shape == w.shape, f"{rt}: shape {g.shape} != {w.shape}"
            np.testing.assert_allclose(g, w.astype(np.float32), rtol=rtol, atol=atol, err_msg=f"runtime={rt}")


def rand(rng: np.random.Generator, *shape, lo=-1.0, hi=1.0) -> np.ndarray:
    return rng.uniform(lo, hi, shape).astype(np.float32)


def check_graph(model: onnx.ModelProto, feeds: dict[str, np.ndarray], runtimes=("cpu", "gpu"),
                rtol: float = 1e-4, atol: float = 1e-4, data_type: str = "fp32_fp32",
                gpu_native: bool = True):
    """`check_model`, converting once, plus: no GPU node falls back to the CPU runtime."""
    want = reference(model, feeds)
    graph = convert(model, data_type=data_type)
    for rt in runtimes:
        engine = mace.Engine(graph, runtime="cpu+gpu" if rt == "gpu" and not gpu_native else rt,
                             use_program_cache=False)
        if rt == "gpu" and gpu_native:
            assert not engine.executor.fallback_nodes, f"fell back to the CPU: {engine.executor.fallback_nodes}"
        outs = engine.run(feeds)
        got = [outs[o] for o in graph.outputs]
        assert len(got) == len(want), rt
        for g, w in zip(got, want):
            assert g.shape == w.shape, f"{rt}: shape {g.shape} != {w.shape}"
            np.testing.assert_allclose(g, w.astype(np.float32), rtol=rtol, atol=atol, err_msg=f"runtime={rt}")
    return graph


def check(op_type, inputs, attrs=None, initializers=None, input_order=None, opset=OPSET, n_outputs=1, **kw):
    """A one-node model through `check_graph`."""
    model = make_model(op_type, inputs, attrs, initializers, n_outputs, input_order, opset)
    return check_graph(model, inputs, **kw)


def run_with_local_sizes(model, feeds, cap):
    """Run on the GPU with every launch given a local size of at most `cap` per dim that divides
    its global size (as the tuner does): the kernels must not depend on their local size."""
    engine = mace.Engine(convert(model), runtime="gpu", use_program_cache=False)
    ex = engine.executor
    for name, op in ex.ops.items():
        if op is None or op.alias:
            continue
        launches = ex.rebind(name)
        ex.rebind(name, [tuple(max(d for d in range(1, min(g, cap) + 1) if g % d == 0) for g in ln.gws)
                         for ln in launches])
    assert ex.launches and all(ln.lws for ln in ex.launches)
    return engine.run(feeds)


def module_rng() -> np.random.Generator:
    """A fresh seed for a module-scoped fixture (printed: `-s` or a failure's captured output)."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"module seed={seed}")
    return np.random.default_rng(seed)


class Batch:
    """Many one-node cases in one model, converted once and run once per runtime (one engine
    each, so every program is compiled once): `add` a node with its inputs, `run` it, then
    `check(name)` compares one case's outputs with onnxruntime's on every runtime. Cases are
    independent graph inputs and outputs, so a failure names its own node."""

    def __init__(self, opset: int = OPSET):
        self.opset, self.nodes, self.feeds, self.inits, self.outs = opset, [], {}, [], {}
        self.results: dict[str, dict] = {}

    def add(self, name: str, op_type: str, inputs: dict[str, np.ndarray], attrs: dict | None = None,
            initializers: dict[str, np.ndarray] | None = None, input_order: list[str] | None = None,
            n_outputs: int = 1) -> str:
        """A node named `name`; input and initializer names are prefixed with it ("" stays omitted).
        Output k > 0 of a node is case `name/k`."""
        ren = {k: f"{name}.{k}" for k in list(inputs) + list(initializers or {})}
        self.feeds.update({ren[k]: v for k, v in inputs.items()})
        self.inits += [numpy_helper.from_array(np.asarray(v), ren[k]) for k, v in (initializers or {}).items()]
        order = [ren.get(k, k) for k in (input_order or list(inputs) + list(initializers or {}))]
        self.outs[name] = f"{name}.out"
        for k in range(1, n_outputs):
            self.outs[f"{name}/{k}"] = f"{name}.out{k}"
        outs = [self.outs[name]] + [self.outs[f"{name}/{k}"] for k in range(1, n_outputs)]
        self.nodes.append(helper.make_node(op_type, order, outs, name=name, **(attrs or {})))
        return name

    def model(self) -> onnx.ModelProto:
        g_in = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                for k, v in self.feeds.items()]
        g_out = [helper.make_empty_tensor_value_info(o) for o in self.outs.values()]
        g = helper.make_graph(self.nodes, "batch", g_in, g_out, initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = 8
        return m

    def run(self, runtimes=("cpu", "gpu"), data_type: str = "fp32_fp32") -> Batch:
        """Convert once, run every runtime once (runtime gpu: no node may fall back to the CPU)."""
        model = self.model()
        want = dict(zip(self.outs.values(), reference(model, self.feeds)))
        graph = convert(model, data_type=data_type)
        got, self.gpu_kernels = {}, []
        for rt in runtimes:
            engine = mace.Engine(graph, runtime=rt, use_program_cache=False)
            if rt == "gpu":
                assert not engine.executor.fallback_nodes, f"fell back to the CPU: {engine.executor.fallback_nodes}"
                self.gpu_kernels = [ln.kernel.function_name for ln in engine.executor.launches]
            got[rt] = engine.run(self.feeds)
            engine.close()
        self.graph, self.want, self.got = graph, want, got
        return self

    def check(self, name: str, rtol: float = 1e-4, atol: float = 1e-5, nonzero: bool = True) -> None:
        out = self.outs[name]
        w = np.asarray(self.want[out], dtype=np.float32)
        if nonzero:
            assert w.size == 0 or np.abs(w).max() > 0, f"{name}: the reference output is all zeros"
        for rt, outs in self.got.items():
            g = outs[out]
            assert g.shape == w.shape, f"{name} {rt}: shape {g.shape} != {w.shape}"
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{name} runtime={rt}")

    def check_typed(self, name: str, rtol: float = 1e-5, atol: float = 1e-6) -> None:
        """`check` with element types: the reference's dtype, integer and bool values equal."""
        want = np.asarray(self.want[self.outs[name]])
        assert np.any(want != 0), f"{name}: the reference output is all zeros"
        for rt, outs in self.got.items():
            g = outs[self.outs[name]]
            assert g.dtype == want.dtype and g.shape == want.shape, f"{name} {rt}: {g.dtype}{g.shape} != {want.dtype}{want.shape}"
            if want.dtype.kind == "f":
                np.testing.assert_allclose(g, want, rtol=rtol, atol=atol, err_msg=f"{name} runtime={rt}")
            else:
                np.testing.assert_array_equal(g, want, err_msg=f"{name} runtime={rt}")


def check_typed(op_type, inputs, attrs=None, initializers=None, n_outputs=1, opset=OPSET,
                runtimes=("cpu",), rtol: float = 1e-5, atol: float = 1e-6, input_order=None):
    """A one-node model on mace against onnxruntime, element types included: every output has the
    reference's dtype and shape, integer and bool outputs are equal, float32 ones within
    rtol/atol; at least one output has a non-zero value (a kernel returning zeros cannot pass)."""
    model = make_model(op_type, inputs, attrs, initializers, n_outputs, input_order, opset)
    want = reference(model, inputs)
    assert any(np.any(np.asarray(w) != 0) for w in want), "the reference is all zeros: draw other inputs"
    graph = convert(model)
    for rt in runtimes:
        outs = mace.Engine(graph, runtime=rt, use_program_cache=False).run(inputs)
        for o, w in zip(graph.outputs, want):
            g = outs[o]
            assert g.dtype == w.dtype and g.shape == w.shape, f"{rt}: {g.dtype}{g.shape} != {w.dtype}{w.shape}"
            if w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"runtime={rt}")
            else:
                np.testing.assert_array_equal(g, w, err_msg=f"runtime={rt}")
    return graph


def rand_int(rng: np.random.Generator, dtype, *shape, lo=None, hi=None, nonzero=False) -> np.ndarray:
    """Random values of an integer type over its range (or [lo, hi)), or random bools. `nonzero`
    draws no 0, for ops whose output can be a single input element (an exclusive CumSum over two)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    info = np.iinfo(dtype)
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    x = rng.integers(lo, hi, shape, dtype=dtype, endpoint=False)
    if nonzero:
        x[x == 0] = 1 if hi > 1 else -1
    return x

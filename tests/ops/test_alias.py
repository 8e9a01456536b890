"""The shape aliases (Reshape / Flatten / Squeeze / Unsqueeze / Identity) on both runtimes against
onnxruntime: their canonical attributes, no GPU launch (the output shares the input's buffer),
the Identity copy the converter keeps, and aliases between kernels.

Tolerances: an alias copies nothing, so fp32 storage is compared exactly (rtol 0, atol 0; the chain
with a Softmax rtol 1e-5 / atol 1e-6); fp16 storage (data_type fp16_fp32, GPU only) within rtol 1e-2 /
atol 1e-2. Every GPU check also asserts the node ran on the GPU runtime (no CPU fallback).
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import mace
from tests import ophelpers
from tests.ophelpers import OPSET, make_model, rand, reference

FP16 = dict(data_type="fp16_fp32", runtimes=("gpu",), rtol=1e-2, atol=1e-2)


def check_graph(model, feeds, **kw):
    """Aliases are exact: tolerance 0 unless a test says otherwise."""
    return ophelpers.check_graph(model, feeds, **{"rtol": 0.0, "atol": 0.0, **kw})


def i64(*v):
    return np.array(v, dtype=np.int64)


ALIASES = [
    ("Reshape", {}, {"shape": i64(3, -1, 0)}, (3, 4, 5), ["x", "shape"]),
    ("Flatten", {"axis": 2}, {}, (2, 3, 4, 5), ["x"]),
    ("Flatten", {"axis": -1}, {}, (2, 3, 4), ["x"]),
    ("Squeeze", {}, {"axes": i64(1, -1)}, (3, 1, 4, 1), ["x", "axes"]),
    ("Squeeze", {}, {}, (1, 3, 1, 4), ["x"]),
    ("Unsqueeze", {}, {"axes": i64(0, -1)}, (3, 4), ["x", "axes"]),
    ("Identity", {}, {}, (2, 3), ["x"]),
]


@pytest.mark.parametrize("op,attrs,inits,shape,order", ALIASES, ids=[a[0] + str(i) for i, a in enumerate(ALIASES)])
def test_shape_alias(rng, op, attrs, inits, shape, order):
    model = make_model(op, {"x": rand(rng, *shape)}, attrs, inits, 1, order)
    x = rand(rng, *shape)
    graph = check_graph(model, {"x": x})
    engine = mace.Engine(graph, runtime="gpu", use_program_cache=False)
    assert engine.executor.launches == []  # an alias: no kernel
    # the canonical form: only the static output shape (an input -> output Identity kept by the
    # converter as a copy node has none)
    want = {} if op == "Identity" else {"shape": list(reference(model, {"x": x})[0].shape)}
    assert graph.nodes[0].attrs == want
    if op == "Identity":  # the converter keeps it as a copy so the output never aliases the input
        assert not np.shares_memory(mace.Engine(graph, runtime="cpu").run({"x": x})["out0"], x)


def test_alias_between_kernels(rng):
    """Transpose -> Reshape -> Softmax -> Flatten: the aliases share buffers with kernels around them."""
    x = rand(rng, 2, 3, 4, 5)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "shape"], ["r"]),
             helper.make_node("Softmax", ["r"], ["s"], axis=-1),
             helper.make_node("Flatten", ["s"], ["y"], axis=1)]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    graph = check_graph(m, {"x": x}, rtol=1e-5, atol=1e-6)
    engine = mace.Engine(graph, runtime="gpu", use_program_cache=False)
    assert len(engine.executor.launches) == 2
    check_graph(m, {"x": x}, **FP16)

"""Run-time element types (mace.ops.dtypes): integer and bool values on the CPU runtime and on
the GPU for the ops whose GPU class declares them, the GPU runtime refusing (runtime gpu) or
handing to the CPU (cpu+gpu) a node with a value type its GPU kernels lack, inputs checked and
cast to their declared type, outputs returned in it."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import mace
from mace.convert import convert
from mace.errors import DeviceError, InputError
from tests.ophelpers import rand, reference


def _mixed_model():
    """x float32 -> Gather(idx int64, computed) -> Relu (GPU) -> y; ArgMax(y) -> k int64."""
    nodes = [helper.make_node("Gather", ["x", "idx"], ["g"], axis=1), helper.make_node("Relu", ["g"], ["y"]),
             helper.make_node("ArgMax", ["y"], ["k"], axis=1, keepdims=0)]
    g = helper.make_graph(nodes, "mixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6]),
                                           helper.make_tensor_value_info("idx", TensorProto.INT64, [3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3]),
                           helper.make_tensor_value_info("k", TensorProto.INT64, [4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.fixture(scope="module")
def mixed():
    return _mixed_model(), convert(_mixed_model())


def test_cpu_and_gpu_fallback_compute_integer_values(rng, mixed):
    model, graph = mixed
    feeds = {"x": rand(rng, 4, 6), "idx": np.array([5, -6, 2], np.int64)}
    want = reference(model, feeds)
    for rt in ("cpu", "cpu+gpu"):
        engine = mace.Engine(graph, runtime=rt, use_program_cache=False)
        out = engine.run(feeds)
        np.testing.assert_allclose(out["y"], want[0], rtol=1e-6, err_msg=rt)
        assert out["k"].dtype == np.int64 and np.array_equal(out["k"], want[1]), rt
        if rt == "cpu+gpu":  # Gather and ArgMax have GPU kernels on integer values
            assert engine.executor.fallback_nodes == []


def test_gpu_runtime_refuses_integer_values_without_a_gpu_kernel(rng):
    """ScatterND has no GPU kernel: `gpu` refuses it by name, `cpu+gpu` runs it on the CPU."""
    node = helper.make_node("ScatterND", ["x", "idx", "u"], ["y"])
    g = helper.make_graph([node], "scatter", [helper.make_tensor_value_info("x", TensorProto.INT64, [4, 3]),
                                              helper.make_tensor_value_info("idx", TensorProto.INT64, [2, 1]),
                                              helper.make_tensor_value_info("u", TensorProto.INT64, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, [4, 3])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    graph = convert(model)
    with pytest.raises(DeviceError, match=r"1 op\(s\).*ScatterND_0 \(ScatterND\)"):
        mace.Engine(graph, runtime="gpu", use_program_cache=False)
    feeds = {"x": np.arange(12, dtype=np.int64).reshape(4, 3), "idx": np.array([[3], [0]], np.int64),
             "u": np.full((2, 3), -7, np.int64)}
    out = mace.Engine(graph, runtime="cpu+gpu", use_program_cache=False).run(feeds)["y"]
    assert np.array_equal(out, reference(model, feeds)[0])


def test_inputs_are_cast_to_their_type_only_when_exact(rng, mixed):
    engine = mace.Engine(mixed[1], runtime="cpu", use_program_cache=False)
    x = rand(rng, 4, 6)
    out = engine.run({"x": x, "idx": np.array([0, 1, 2], np.int32)})  # int32 -> int64 is exact
    assert np.array_equal(out["y"], np.maximum(x[:, :3], 0))
    with pytest.raises(InputError, match="idx.*int64"):
        engine.run({"x": x, "idx": np.array([0.5, 1, 2])})
    dummy = engine.dummy_inputs()
    assert dummy["idx"].dtype == np.int64 and dummy["x"].dtype == np.float32
    engine.run(dummy)

"""A `quantize: 1` model on the GPU runtime with each per-tensor FakeQuantize that only reads a
conv's output applied in that conv's epilogue (`mace.runtime.opencl.fqfuse`): fewer launches, and
the values of the unfused run bit for bit (same math: x * (1/scale)), in every conv variant
(those without the epilogue run the FakeQuantize in place), and of the CPU runtime."""
from __future__ import annotations

import numpy as np
import pytest

import mace
from mace.convert import convert
from mace.runtime.opencl import fqfuse

from .conftest import convert_quantized


@pytest.fixture(scope="module")
def quantized(quantized_models, tmp_path_factory):
    return convert_quantized(quantized_models["float"], tmp_path_factory.mktemp("fqfuse"), 4)


def _input():
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print("seed", seed)
    # uniform in [0, 1): the model's input range, so every layer sees a spread of values
    return np.random.default_rng(seed).uniform(0, 1, (1, 3, 16, 16)).astype(np.float32)


def _engine(path, monkeypatch, fuse: str):
    monkeypatch.setenv("MACE_FQ_FUSE", fuse)
    return mace.Engine(path, runtime="gpu", use_program_cache=False)


def test_fused_equals_unfused_and_cpu(quantized, monkeypatch):
    x = _input()
    with mace.Engine(quantized, runtime="cpu") as cpu:
        want = cpu.run({"input": x})["output"]
    assert np.ptp(want) > 0
    with _engine(quantized, monkeypatch, "0") as plain, _engine(quantized, monkeypatch, "1") as eng:
        ex, ex0 = eng.executor, plain.executor
        fused = {n for n, op in ex.ops.items() if op is not None and getattr(op, "fused_into", None)}
        convs = [n for n, op in ex.ops.items() if op is not None and op.node.op_type == "Conv"]
        assert len(fused) == len(convs) == 4  # every conv here feeds one FakeQuantize only
        assert len(ex.steps) == len(ex0.steps) - len(fused)
        got = eng.run({"input": x})["output"]
        np.testing.assert_array_equal(got, plain.run({"input": x})["output"])
        step = float(np.ravel(next(n for n in reversed(ex.graph.nodes) if n.op_type == "FakeQuantize")
                              .attrs["scale"])[0])
        assert np.abs(got - want).max() <= step * 1.001  # within one quantization step of the CPU runtime
        # the defaults above: conv2d (direct, im2col, pointwise) and depthwise; then the tiled GEMM
        # (implicit and dense), the per-pixel depthwise kernel and Winograd (in-place FakeQuantize)
        for name in convs:
            for v in set(ex.ops[name].variants()) & {"gpu_direct", "gpu_gemm", "gpu_depthwise", "winograd"}:
                for e in (ex, ex0):
                    e.ops[name].use_variant(v)
                    launches = e.rebind(name)
                fq = [la for la in launches if la.name.endswith("/fq:FakeQuantize")]
                assert not fq  # the unfused engine's conv
                assert any(la.name.endswith("/fq:FakeQuantize") for la in ex.launches_of(name)) == (v in fqfuse.NO_FQ)
                assert ("-DFQ" in ex.ops[name].key) == (v not in fqfuse.NO_FQ), (name, v)
                np.testing.assert_array_equal(eng.run({"input": x})["output"], plain.run({"input": x})["output"],
                                              err_msg=f"{name} {v}")


def test_add_applies_the_fake_quantize(monkeypatch):
    """An Add of two same-shape tensors applies the FakeQuantize that alone reads its output."""
    from onnx import TensorProto, helper, numpy_helper
    shape = (1, 4, 6, 10)
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)  # noqa: E731
    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["s"]),
                           helper.make_node("QuantizeLinear", ["s", "sc", "zp"], ["q"]),
                           helper.make_node("DequantizeLinear", ["q", "sc", "zp"], ["d"]),
                           helper.make_node("Sigmoid", ["d"], ["y"])], "addq", [vi("a"), vi("b")], [vi("y")],
                          initializer=[numpy_helper.from_array(np.asarray(0.05, np.float32), "sc"),
                                       numpy_helper.from_array(np.asarray(128, np.uint8), "zp")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    graph = convert(m)
    x = _input().reshape(-1)[:240].reshape(shape) * 8 - 4  # spans the grid [-6.4, 6.35]
    feeds = {"a": x, "b": x[..., ::-1].copy()}
    with mace.Engine(graph, runtime="cpu") as cpu:
        want = cpu.run(feeds)["y"]
    with _engine(graph, monkeypatch, "0") as plain, _engine(graph, monkeypatch, "1") as eng:
        ops = eng.executor.ops
        assert [ops[op.fused_into].node.op_type for op in ops.values() if op.node.op_type == "FakeQuantize"] == ["Add"]
        assert len(eng.executor.steps) == len(plain.executor.steps) - 1
        got = eng.run(feeds)["y"]
        np.testing.assert_array_equal(got, plain.run(feeds)["y"])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

"""The CPU runtime's compiled (numba) kernels: depthwise conv of every specialised shape against
onnxruntime, the fused epilogue's activations, threads, and the kernel cache's rules (keyed
directory, an unreadable cache moved aside and compiled again, NumPy kernels when numba fails).
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

import mace
from mace.convert import convert
from mace.errors import MaceError
from mace.runtime.cpu import activation, jit, kernels
from mace.runtime.cpu.helpers import plane
from tests.ophelpers import make_model, rand, reference

DIGITS = Path(__file__).resolve().parents[1] / "mace" / "examples" / "digits" / "digits_cnn.onnx"

DW_CASES = {
    # name: (kernel, strides, dilations, pads, activation node)
    "3x3_s1_clip": (3, 1, 1, [1, 1, 1, 1], "Clip"),
    "3x3_s2_asym_relu": (3, 2, 1, [0, 0, 1, 1], "Relu"),
    "5x5_s1": (5, 1, 1, [2, 2, 2, 2], None),
    "5x5_s2_relu": (5, 2, 1, [1, 2, 2, 1], "Relu"),
    "7x7_s2_generic_leaky": (7, 2, 1, [3, 3, 3, 3], "LeakyRelu"),
    "3x3_dilated_generic": (3, 1, 2, [2, 2, 2, 2], "Clip"),
}


@pytest.fixture(autouse=True, scope="module")
def _compiled_kernels():
    """These tests check the compiled kernels: where this machine's cache is cold, wait for them."""
    assert kernels.wait(timeout=600), jit.report().summary_line()


def _dw_model(rng, c, h, w, k, s, d, pads, act):
    x = rand(rng, 1, c, h, w)
    model = make_model("Conv", {"X": x}, {"group": c, "strides": [s, s], "dilations": [d, d], "pads": pads},
                       {"W": rand(rng, c, 1, k, k), "B": rand(rng, c)})
    if act:
        g = model.graph
        g.node[0].output[0] = "conv_out"
        inputs = ["conv_out"]
        if act == "Clip":
            g.initializer.extend([helper.make_tensor("lo", 1, [], [0.0]), helper.make_tensor("hi", 1, [], [0.5])])
            inputs += ["lo", "hi"]
        g.node.append(helper.make_node(act, inputs, ["out0"], **({"alpha": 0.1} if act == "LeakyRelu" else {})))
    return model, x


@pytest.mark.parametrize("case", sorted(DW_CASES))
def test_depthwise_kernels_match_onnxruntime(rng, case):
    k, s, d, pads, act = DW_CASES[case]
    c, h, w = int(rng.integers(3, 9)), int(rng.integers(k + 2, 30)), int(rng.integers(k + 2, 45))
    model, x = _dw_model(rng, c, h, w, k, s, d, pads, act)
    graph = convert(model)
    engine = mace.Engine(graph, runtime="cpu")
    step = engine.executor.prepared[graph.nodes[0].name]
    assert step.mode == "dwk", "the compiled depthwise kernel did not run"
    got = engine.run({"X": x})[graph.outputs[0]]
    np.testing.assert_allclose(got, reference(model, {"X": x})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("w", [9, 40])   # rows shorter / longer than kernels._VEC_MIN
@pytest.mark.parametrize("act", ["Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", None])
def test_epilogue_matches_numpy(rng, act, w):
    """bias + residual + activation from a cropped (strided) accumulator into the interior of a
    padded buffer: every activation code against the NumPy math (itself checked against
    onnxruntime by the op tests)."""
    from mace.runtime.cpu.helpers import compiled_epilogue
    params = {"Clip": (-0.3, 0.4), "LeakyRelu": (0.1,), "HardSigmoid": (0.2, 0.5)}.get(act, ())
    c, h = 5, 7
    acc = rng.standard_normal((c, h * (w + 3))).astype(np.float32)
    view = acc.reshape(1, c, h, w + 3)[:, :, :, :w]
    bias, res = rand(rng, c), rand(rng, 1, c, h, w)
    buf = np.full((1, c, h + 2, w + 2), 7.0, np.float32)
    target = buf[:, :, 1:-1, 1:-1]
    want = activation.apply(view + bias.reshape(1, c, 1, 1) + res, act, params)
    assert compiled_epilogue(view, act, params, target, res, bias)
    np.testing.assert_allclose(target, want, rtol=1e-5, atol=1e-6)
    assert (buf[:, :, 0] == 7).all() and (buf[:, :, :, -1] == 7).all(), "wrote outside the view"
    flat = np.empty((1, c, h, w), np.float32)   # rows back to back: one run per channel
    assert compiled_epilogue(acc[:, :h * w].reshape(1, c, h, w), act, params, flat, res, bias)
    want = activation.apply(acc[:, :h * w].reshape(1, c, h, w) + bias.reshape(1, c, 1, 1) + res, act, params)
    np.testing.assert_allclose(flat, want, rtol=1e-5, atol=1e-6)


def test_plane_views():
    buf = np.zeros((1, 4, 6, 8), np.float32)
    flat, off, cs, rs = plane(buf[:, :, 1:5, 2:7])
    assert flat.base is not None and (off, cs, rs) == (8 + 2, 48, 8)
    assert plane(buf[:, :, :, ::2]) is None                    # rows not contiguous
    ro = np.zeros((4, 6, 8), np.float32)
    ro.setflags(write=False)
    assert plane(ro) is None                                    # read-only (a memory-mapped weight)


def test_threads_same_outputs_and_reported(digits_cpu_graph):
    graph, x = digits_cpu_graph
    one = mace.Engine(graph, runtime="cpu", threads=1)
    two = mace.Engine(graph, runtime="cpu", threads=2)
    np.testing.assert_array_equal(one.run({"input": x})["output"], two.run({"input": x})["output"])
    info = two.summary()["cpu_kernels"]
    assert info["threads"] == 2 and info["compiled_kernels"] is True
    assert "CPU kernel cache" in two.cpu_kernel_report.summary_line()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(MaceError, match="threads="):
            mace.Engine(graph, runtime="cpu", threads=bad)


def test_numpy_kernels_when_numba_fails(digits_cpu_graph, monkeypatch):
    graph, x = digits_cpu_graph
    want = mace.Engine(graph, runtime="cpu").run({"input": x})["output"]
    monkeypatch.setitem(jit._state, "error", "numba failed to compile the CPU kernels (test)")
    engine = mace.Engine(graph, runtime="cpu")
    assert not any(getattr(s, "mode", "") == "dwk" for s in engine.executor.prepared.values())
    assert engine.cpu_kernel_report.summary_line().startswith("CPU kernels: NumPy (numba failed")
    np.testing.assert_allclose(engine.run({"input": x})["output"], want, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def digits_cpu_graph():
    graph = convert(DIGITS)
    x = np.random.default_rng(0).uniform(0, 1, graph.shape("input")).astype(np.float32)
    return graph, x


_CHILD = """
import json, sys, numpy as np, mace
from mace.convert import convert
from mace.runtime.cpu import kernels
assert kernels.wait(timeout=300), "the compiled kernels did not become ready"
g = convert(sys.argv[1])
e = mace.Engine(g, runtime="cpu")
y = e.run({"input": np.ones(g.shape("input"), np.float32)})["output"]
print(json.dumps(dict(e.cpu_kernel_report.to_dict(), y=float(y.sum()))))
"""


def test_unreadable_kernel_cache_is_moved_aside(tmp_path):
    """A damaged index in a copy of this machine's warm cache: the next process moves that kernel's
    files aside, compiles it again, runs right; the process after it loads everything from the cache."""
    src = jit.cache_dir()
    assert src is not None and kernels.available()
    root = tmp_path / "kernels"
    shutil.copytree(src, root / src.name)
    from mace.runtime.cpu.kernels import binary_act
    # this checkout's entry: numba keys a cache subdirectory by the source file's path
    own = Path(binary_act._cache._cache_file._index_path).relative_to(src)
    index = [root / src.name / own]
    assert index[0].is_file(), "the warm cache holds no index to damage"
    with open(index[0], "rb") as f:   # keep numba's version header: damage what follows it
        pickle.load(f)
        header = f.tell()
    index[0].write_bytes(index[0].read_bytes()[:header] + b"\x00garbage")
    model = str(DIGITS)
    env = dict(os.environ, MACE_CPU_KERNEL_CACHE=str(root))
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", _CHILD, model], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["compiled_kernels"] and first["moved_aside"] and first["compiled"] == 1
    assert any((root / src.name).rglob("*.binary_act-*.nbi.damaged-*"))
    assert second["compiled"] == 0 and second["from_cache"] == len(jit._SIGS) and second["moved_aside"] is None
    assert first["y"] == second["y"]


def test_cli_threads(tmp_path):
    from click.testing import CliRunner

    from mace.cli import cli
    model = tmp_path / "digits.mace"
    assert CliRunner().invoke(cli, ["convert", str(DIGITS), "-o", str(model)]).exit_code == 0
    res = CliRunner().invoke(cli, ["run", str(model), "--runtime", "cpu", "--threads", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["cpu_kernels"]["threads"] == 2
    bad = CliRunner().invoke(cli, ["run", str(model), "--runtime", "cpu", "--threads", "0"])
    assert bad.exit_code == 2 and "--threads" in bad.output


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_binary_kernel_matches_onnxruntime(rng, op):
    """Same-shape element-wise ops with a fused Relu run in the compiled kernel (Div by zero: inf)."""
    a, b = rand(rng, 1, 3, 5, 7), rand(rng, 1, 3, 5, 7)
    b[0, 0, 0, :2] = 0.0
    node = helper.make_node(op, ["A", "B"], ["t"])
    relu = helper.make_node("Relu", ["t"], ["out0"])
    vi = [helper.make_tensor_value_info(n, 1, a.shape) for n in ("A", "B")]
    g = helper.make_graph([node, relu], "bin", vi, [helper.make_empty_tensor_value_info("out0")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    graph = convert(model)
    engine = mace.Engine(graph, runtime="cpu")
    (step,) = engine.executor.prepared.values()
    assert step.op is not None, "the compiled element-wise kernel did not run"
    got = engine.run({"A": a, "B": b})[graph.outputs[0]]
    np.testing.assert_allclose(got, reference(model, {"A": a, "B": b})[0], rtol=1e-5, atol=1e-6)


POOL_CASES = {
    # name: (kernel, strides, pads, ceil_mode)
    "3x3_s2_ceil": ([3, 3], [2, 2], [0, 0, 0, 0], 1),
    "2x2_s2": ([2, 2], [2, 2], [0, 0, 0, 0], 0),
    "3x3_s1_pads": ([3, 3], [1, 1], [1, 1, 1, 1], 0),
    "5x3_s2x1_asym": ([5, 3], [2, 1], [1, 0, 2, 1], 0),
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_max_pool_kernel_matches_onnxruntime(rng, case, monkeypatch):
    """The separable compiled max pooling (-inf padding, ceil mode, asymmetric pads) is exact."""
    k, s, pads, ceil = POOL_CASES[case]
    x = rand(rng, 1, int(rng.integers(2, 6)), int(rng.integers(9, 30)), int(rng.integers(9, 40)))
    model = make_model("MaxPool", {"X": x}, {"kernel_shape": k, "strides": s, "pads": pads, "ceil_mode": ceil})
    graph = convert(model)
    calls = []
    real = kernels.maxpool_sep
    monkeypatch.setattr(kernels, "maxpool_sep", lambda *a: calls.append(1) or real(*a))
    got = mace.Engine(graph, runtime="cpu").run({"X": x})[graph.outputs[0]]
    assert calls, "the compiled max pooling did not run"
    np.testing.assert_array_equal(got, reference(model, {"X": x})[0])


@pytest.mark.parametrize("group,value,readers", [(4, 0.0, 1), (1, 0.0, 1), (4, 0.5, 1), (1, 0.0, 2)])
def test_zero_pad_folded_into_conv(rng, group, value, readers):
    """A zero Pad whose one reader is a Conv becomes the Conv's pads (no Pad step left); a
    non-zero Pad or one with another reader stays. Outputs match onnxruntime either way."""
    x = rand(rng, 1, 4, 11, 13)
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    inits = [helper.make_tensor("p", 7, [8], i64(0, 0, 0, 1, 0, 0, 1, 2)), helper.make_tensor("v", 1, [], [value]),
             helper.make_tensor("W", 1, [4, 4 // group, 3, 3], rand(rng, 4, 4 // group, 3, 3).ravel()),
             helper.make_tensor("B", 1, [4], rand(rng, 4))]
    nodes = [helper.make_node("Pad", ["X", "p", "v"], ["padded"]),
             helper.make_node("Conv", ["padded", "W", "B"], ["out0"], group=group, pads=[1, 0, 0, 1], strides=[2, 1])]
    outs = [helper.make_empty_tensor_value_info("out0")]
    if readers == 2:
        nodes.append(helper.make_node("Relu", ["padded"], ["out1"]))
        outs.append(helper.make_empty_tensor_value_info("out1"))
    g = helper.make_graph(nodes, "padconv", [helper.make_tensor_value_info("X", 1, x.shape)], outs, inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    graph = convert(model)
    engine = mace.Engine(graph, runtime="cpu")
    folded = "Pad" not in [n.op_type for n in engine.executor.graph.nodes]
    assert folded == (value == 0.0 and readers == 1)
    assert "Pad" in [n.op_type for n in graph.nodes], "the engine's own graph was changed"
    got = engine.run({"X": x})
    for name, want in zip(graph.outputs, reference(model, {"X": x})):
        np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=1e-5)


def test_average_pool_whole_map_matches_onnxruntime(rng):
    x = rand(rng, 1, 6, 7, 5)
    model = make_model("AveragePool", {"X": x}, {"kernel_shape": [7, 5]})
    graph = convert(model)
    got = mace.Engine(graph, runtime="cpu").run({"X": x})[graph.outputs[0]]
    np.testing.assert_allclose(got, reference(model, {"X": x})[0], rtol=1e-5, atol=1e-6)

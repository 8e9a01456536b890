"""BatchNormalization (inference form, standalone: its input is a graph input so nothing folds
it into a Conv) on both runtimes against onnxruntime, ranks 2 to 5, with a fused activation,
and fp16 storage.

Tolerances: fp32 rtol 1e-4 / atol 1e-4; fp16 storage (GPU only) rtol 1e-2 / atol 1e-2.
No GPU node may fall back to the CPU.
"""
from __future__ import annotations

import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.ophelpers import OPSET, make_model, rand
from tests.ops.test_conv import _r, check_graph


def _params(rng, c):
    return {"scale": rand(rng, c), "bias": rand(rng, c), "mean": rand(rng, c),
            "var": rand(rng, c, lo=0.1, hi=2.0)}


@pytest.mark.parametrize("rank", [2, 3, 4, 5])
def test_batchnorm(rng, rank):
    c = _r(rng, 1, 24)
    shape = (_r(rng, 1, 3), c) + tuple(_r(rng, 1, 19) for _ in range(rank - 2))
    x = rand(rng, *shape, lo=-3, hi=3)
    eps = float(rng.choice([1e-5, 1e-3]))
    check_graph(make_model("BatchNormalization", {"X": x}, {"epsilon": eps}, _params(rng, c)), {"X": x})


def _bn_act_model(rng, x, act):
    c = x.shape[1]
    inits = [numpy_helper.from_array(v, k) for k, v in _params(rng, c).items()]
    nodes = [helper.make_node("BatchNormalization", ["X", "scale", "bias", "mean", "var"], ["b"]),
             helper.make_node(act, ["b"], ["Y"])]
    g = helper.make_graph(nodes, "bn_act", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("act", ["Relu", "Sigmoid"])
def test_batchnorm_fused_activation(rng, act):
    x = rand(rng, 1, _r(rng, 2, 10), _r(rng, 3, 12), _r(rng, 3, 30), lo=-3, hi=3)
    graph = check_graph(_bn_act_model(rng, x, act), {"X": x})
    assert [n.op_type for n in graph.nodes] == ["BatchNormalization"]
    assert graph.nodes[0].attrs["activation"] == act


def test_batchnorm_fp16(rng):
    x = rand(rng, 2, 6, _r(rng, 3, 12), _r(rng, 3, 30), lo=-3, hi=3)
    check_graph(make_model("BatchNormalization", {"X": x}, {}, _params(rng, 6)), {"X": x}, runtimes=("gpu",),
                data_type="fp16_fp32", rtol=1e-2, atol=1e-2)


# -- folding rules (mace.ops.batchnorm) ---------------------------------------------------------------------
def test_scale_shift_and_conv_folding_match_the_formula(rng):
    import numpy as np

    from mace.ops.batchnorm import bn_scale_shift, fold_into_conv
    c, eps = 6, 1e-3
    p = _params(rng, c)
    x = rand(rng, 5, c)
    want = p["scale"] * (x - p["mean"]) / np.sqrt(p["var"] + eps) + p["bias"]
    scale, shift = bn_scale_shift(p["scale"], p["bias"], p["mean"], p["var"], eps)
    np.testing.assert_allclose(x * scale + shift, want, rtol=1e-5, atol=1e-5)
    w, b = rand(rng, c, 3), rand(rng, c)  # a 1x1 conv as (M, C) @ x
    xin = rand(rng, 3, 4)
    conv = w @ xin + b[:, None]
    want = (p["scale"][:, None] * (conv - p["mean"][:, None]) / np.sqrt(p["var"][:, None] + eps)
            + p["bias"][:, None])
    for bias in (b, None):
        wf, bf = fold_into_conv(w, bias, p["scale"], p["bias"], p["mean"], p["var"], eps)
        assert wf.dtype == bf.dtype == np.float32
        ref = want if bias is not None else want - p["scale"][:, None] * b[:, None] / np.sqrt(p["var"][:, None] + eps)
        np.testing.assert_allclose(wf @ xin + bf[:, None], ref, rtol=1e-5, atol=1e-5)

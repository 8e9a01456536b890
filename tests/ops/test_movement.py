"""Data-movement ops on both runtimes against onnxruntime: Transpose, Slice, Pad, Concat, Split, Expand,
and the conversion error for an op neither runtime has (the shape aliases: test_alias.py).

Tolerances: these ops copy values, so fp32 storage is compared exactly (rtol 0, atol 0); fp16
storage (data_type fp16_fp32, GPU only) within rtol 1e-2 / atol 1e-2 (one half rounding). Every
GPU check also asserts the node ran as a GPU kernel (no CPU fallback).
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from mace.convert import convert
from mace.errors import ConversionError
from tests import ophelpers
from tests.ophelpers import OPSET, Batch, make_model, module_rng, rand, reference, run_with_local_sizes

EXACT = dict(rtol=0.0, atol=0.0)
FP16 = dict(data_type="fp16_fp32", runtimes=("gpu",), rtol=1e-2, atol=1e-2)



def check_graph(model, feeds, **kw):
    """Data movement is exact: tolerance 0 unless a test says otherwise."""
    return ophelpers.check_graph(model, feeds, **{"rtol": 0.0, "atol": 0.0, **kw})


def check(op_type, inputs, *args, **kw):
    return ophelpers.check(op_type, inputs, *args, **{"rtol": 0.0, "atol": 0.0, **kw})


def rshape(rng, lo_rank=1, hi_rank=5, lo=1, hi=6):
    return tuple(int(d) for d in rng.integers(lo, hi + 1, size=int(rng.integers(lo_rank, hi_rank + 1))))


def i64(*v):
    return np.array(v, dtype=np.int64)


# -- Transpose -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5, 6])
def test_transpose(rng, rank):
    for _ in range(2):
        shape = rshape(rng, rank, rank, hi=5)
        check("Transpose", {"x": rand(rng, *shape)}, {"perm": [int(p) for p in rng.permutation(rank)]})


def test_transpose_default_perm_and_fp16(rng):
    x = rand(rng, 2, 3, 4)
    check("Transpose", {"x": x})
    check("Transpose", {"x": rand(rng, 2, 3, 4, 5)}, {"perm": [0, 2, 3, 1]}, **FP16)


# -- Slice ---------------------------------------------------------------------------------------------
def random_slice(rng, shape):
    """(starts, ends, axes, steps) over a random subset of axes, negative values included; the
    output is never empty."""
    rank = len(shape)
    while True:
        axes = [int(a) for a in rng.choice(rank, size=int(rng.integers(1, rank + 1)), replace=False)]
        starts, ends, steps = [], [], []
        for a in axes:
            d = shape[a]
            st = int(rng.choice([-3, -2, -1, 1, 2, 3]))
            starts.append(int(rng.integers(-d - 2, d + 3)))
            ends.append(int(rng.choice([rng.integers(-d - 2, d + 3), 2**31 - 1 if st > 0 else -2**31])))
            steps.append(st)
        if all(len(range(shape[a])[slice(s, e, st)]) for a, s, e, st in zip(axes, starts, ends, steps)):
            return starts, ends, [a - rank if rng.random() < 0.5 else a for a in axes], steps


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_slice_random(rng, rank):
    for _ in range(4):
        shape = rshape(rng, rank, rank, hi=7)
        starts, ends, axes, steps = random_slice(rng, shape)
        check("Slice", {"x": rand(rng, *shape)},
              initializers={"s": i64(*starts), "e": i64(*ends), "a": i64(*axes), "st": i64(*steps)})


def test_slice_negative_steps(rng):
    x = rand(rng, 2, 5, 6, 7)
    check("Slice", {"x": x}, initializers={"s": i64(-1, 4), "e": i64(-100, 0), "a": i64(-1, 1), "st": i64(-1, -2)})
    check("Slice", {"x": x}, initializers={"s": i64(5, 2), "e": i64(-8, 9), "a": i64(2, 3), "st": i64(-3, 2)})


def test_slice_without_axes_and_steps(rng):
    x = rand(rng, 4, 6, 5)
    check("Slice", {"x": x}, initializers={"s": i64(1, -4), "e": i64(3, 100)})
    check("Slice", {"x": x}, {"starts": [1, -3], "ends": [4, 1000], "axes": [0, 2]}, opset=9)


def test_slice_fp16(rng):
    check("Slice", {"x": rand(rng, 3, 8, 9)},
          initializers={"s": i64(7, 1), "e": i64(0, 9), "a": i64(1, 2), "st": i64(-2, 3)}, **FP16)


# -- Pad ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_pad_modes(rng, mode, rank):
    shape = rshape(rng, rank, rank, lo=2, hi=5)
    hi = [d - 1 for d in shape] if mode == "reflect" else [3] * rank  # reflect needs pad < dim
    pads = [int(rng.integers(0, h + 1)) for h in hi] + [int(rng.integers(0, h + 1)) for h in hi]
    inits = {"p": i64(*pads)}
    if mode == "constant":
        inits["v"] = np.float32(rng.uniform(-2, 2))
    check("Pad", {"x": rand(rng, *shape)}, {"mode": mode}, initializers=inits)


def test_pad_default_value_and_negative_pads(rng):
    x = rand(rng, 2, 5, 6, 4)
    check("Pad", {"x": x}, initializers={"p": i64(0, 1, 2, 0, 0, 0, 3, 1)})
    check("Pad", {"x": x}, initializers={"p": i64(0, -1, 2, -2, 1, 0, -3, 3)})  # negative pads crop


def test_pad_axes_input(rng):  # opset 18: pads for the listed axes only (negative axes allowed)
    check("Pad", {"x": rand(rng, 3, 4, 5)}, {"mode": "edge"}, initializers={"p": i64(1, 2, 3, 0), "ax": i64(-1, 1)},
          input_order=["x", "p", "", "ax"], opset=18)


def test_pad_wrap(rng):  # opset 19
    check("Pad", {"x": rand(rng, 2, 3, 4, 5)}, {"mode": "wrap"}, initializers={"p": i64(0, 1, 2, 3, 1, 2, 3, 4)},
          opset=19)


def test_pad_rank6_and_fp16(rng):
    x = rand(rng, 2, 3, 2, 3, 2, 3)
    check("Pad", {"x": x}, {"mode": "reflect"}, initializers={"p": i64(1, 0, 1, 2, 0, 1, 0, 1, 1, 1, 1, 2)})
    check("Pad", {"x": rand(rng, 2, 3, 4, 5)}, {"mode": "constant"},
          initializers={"p": i64(0, 0, 1, 2, 0, 0, 2, 1), "v": np.float32(0.5)}, **FP16)
    check("Pad", {"x": rand(rng, 2, 3, 4, 5)}, {"mode": "reflect"}, initializers={"p": i64(0, 0, 1, 2, 0, 0, 2, 1)},
          **FP16)


# -- Concat ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_concat(rng, rank):
    shape = rshape(rng, rank, rank, hi=5)
    axis = int(rng.integers(-rank, rank))
    inputs = {}
    for k in range(int(rng.integers(1, 5))):
        s = list(shape)
        s[axis] = int(rng.integers(1, 5))
        inputs[f"x{k}"] = rand(rng, *s)
    check("Concat", inputs, {"axis": axis})


def test_concat_with_constant_input(rng):
    a, c = rand(rng, 2, 3, 4), rand(rng, 2, 2, 4)
    check("Concat", {"a": a}, {"axis": 1}, initializers={"c": c}, input_order=["c", "a"])
    check("Concat", {"a": a, "b": rand(rng, 2, 3, 3)}, {"axis": -1}, **FP16)
    check("Concat", {"a": rand(rng, 4, 3), "b": rand(rng, 4, 3)}, {"axis": 0})  # contiguous: vec4 copies


# -- Split ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rank", [1, 2, 3, 4])
def test_split_sizes(rng, rank):
    shape = list(rshape(rng, rank, rank, lo=2, hi=6))
    axis = int(rng.integers(-rank, rank))
    n = shape[axis]
    cuts = sorted(rng.choice(np.arange(1, n), size=int(rng.integers(1, n)), replace=False))
    sizes = np.diff([0, *cuts, n]).astype(np.int64)
    check("Split", {"x": rand(rng, *shape)}, {"axis": axis}, initializers={"split": sizes}, n_outputs=len(sizes))


def test_split_equal_and_num_outputs(rng):
    check("Split", {"x": rand(rng, 2, 6, 5)}, {"axis": 1}, n_outputs=3)
    check("Split", {"x": rand(rng, 2, 7, 5)}, {"axis": -2, "num_outputs": 3}, n_outputs=3, opset=18)
    check("Split", {"x": rand(rng, 8, 3)}, {"axis": 0}, initializers={"s": i64(4, 4)}, n_outputs=2, **FP16)


@pytest.fixture(scope="module")
def expands():
    """Expand to random broadcast targets: lower rank, size-1 dims anywhere, a scalar, a target of
    lower rank than the input (the output keeps the input's dims)."""
    rng = module_rng()
    b = Batch()
    for k in range(6):
        out = rshape(rng, 2, 5, lo=2, hi=5)
        src = tuple(d if rng.random() < 0.5 else 1 for d in out[int(rng.integers(0, len(out))):])
        if src == out:   # an Expand to its own shape is a plain copy (copy4): broadcast one dim
            src = (1,) + src[1:]
        b.add(f"expand{k}", "Expand", {"x": rand(rng, *src)}, initializers={"shape": i64(*out)})
    b.add("expand_scalar", "Expand", {"x": rand(rng, 1)}, initializers={"shape": i64(3, 4)})
    b.add("expand_lower_target", "Expand", {"x": rand(rng, 2, 1, 5)}, initializers={"shape": i64(3, 1)})
    return b.run()


def test_expand(expands):
    for case in expands.outs:
        expands.check(case, **EXACT)
    assert expands.gpu_kernels == ["strided_copy"] * len(expands.outs)


@pytest.mark.parametrize("cap", [1, 3, 8])
def test_any_local_size(rng, cap):
    cases = [("Transpose", {"x": rand(rng, 2, 3, 4, 5)}, {"perm": [0, 3, 1, 2]}, None, 1),
             ("Pad", {"x": rand(rng, 2, 3, 4, 5)}, {"mode": "reflect"}, {"p": i64(0, 1, 2, 1, 0, 2, 1, 3)}, 1),
             ("Concat", {"a": rand(rng, 2, 3, 4), "b": rand(rng, 2, 5, 4)}, {"axis": 1}, None, 1),
             ("Split", {"x": rand(rng, 6, 5)}, {"axis": 1}, {"s": i64(2, 3)}, 2)]
    for op, feeds, attrs, inits, n_out in cases:
        model = make_model(op, feeds, attrs, inits, n_out)
        want = reference(model, feeds)
        got = run_with_local_sizes(model, feeds, cap)
        for k, w in enumerate(want):
            np.testing.assert_array_equal(got[f"out{k}"], w, err_msg=op)


# -- an op neither runtime has --------------------------------------------------------------------------
def test_unsupported_op_is_a_conversion_error(rng):
    model = make_model("Det", {"a": rand(rng, 2, 3, 3)})
    model.graph.node[0].name = "my_det"
    with pytest.raises(ConversionError) as exc:
        convert(model)
    assert "Det" in str(exc.value) and "my_det" in str(exc.value) and "not supported" in str(exc.value)


def test_custom_domain_op_is_a_conversion_error(rng):
    node = helper.make_node("FancyWarp", ["x"], ["y"], name="warp1", domain="com.example")
    g = helper.make_graph([node], "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.example", 1)])
    m.ir_version = 8
    with pytest.raises(ConversionError) as exc:
        convert(m)
    assert "FancyWarp" in str(exc.value) and "warp1" in str(exc.value) and "not supported" in str(exc.value)


def test_pad_mode_ids_match_the_kernel():
    """The GPU passes a Pad mode as its position in mace.ops.movement.PAD_MODES: movement.cl's
    PAD_* defines must say the same."""
    import re
    from pathlib import Path

    from mace.ops.movement import PAD_MODES
    from mace.runtime.opencl.ops import movement
    cl = (Path(movement.__file__).parent / "movement.cl").read_text()
    defines = {m.group(1).lower(): int(m.group(2)) for m in re.finditer(r"#define PAD_(\w+) (\d+)", cl)}
    assert defines == {m: i for i, m in enumerate(PAD_MODES)}

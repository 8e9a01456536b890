"""Gather (computed indices), GatherElements, GatherND, ArgMax/ArgMin and TopK against
onnxruntime: exact (indices, and values that are selected, not computed); negative indices and
random axes; an index out of range is an InputError at run time, never a crash."""
from __future__ import annotations

import numpy as np
import pytest

import mace
from mace.convert import convert
from mace.errors import InputError
from tests.ophelpers import Batch, check_typed, make_model, module_rng, rand, rand_int


def _shape(rng, lo_rank=1, hi_rank=4):
    return tuple(int(d) for d in rng.integers(2, 5, size=int(rng.integers(lo_rank, hi_rank + 1))))


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_gather_computed_indices(rng, dtype):
    shape = _shape(rng)
    axis = int(rng.integers(-len(shape), len(shape)))
    n = shape[axis]
    if dtype == "bool":
        data = rng.random(shape) < 0.9
    else:
        data = rand(rng, *shape) if dtype == "float32" else rand_int(rng, dtype, *shape, lo=1, hi=9)
    idx = rng.integers(-n, n, size=_shape(rng, 0, 2)).astype(rng.choice(["int32", "int64"]))
    while dtype == "bool" and not np.take(data, idx, axis=axis).any():  # an all-false reference tests nothing
        data = rng.random(shape) < 0.9
    check_typed("Gather", {"data": data, "idx": idx}, {"axis": axis})


def test_gather_elements(rng):
    shape = _shape(rng, 2, 3)
    axis = int(rng.integers(-len(shape), len(shape)))
    idx_shape = tuple(int(rng.integers(1, d + 1)) for d in shape)
    idx = rng.integers(-shape[axis], shape[axis], size=idx_shape).astype(np.int64)
    check_typed("GatherElements", {"data": rand(rng, *shape), "idx": idx}, {"axis": axis})


@pytest.mark.parametrize("batch_dims", [0, 1])
def test_gather_nd(rng, batch_dims):
    shape = (3, 4, 5)
    k = int(rng.integers(1, 3 - batch_dims))
    cols = [rng.integers(0, shape[batch_dims + j], size=(3, 2)) for j in range(k)]
    idx = np.stack(cols, axis=-1).astype(np.int64)
    check_typed("GatherND", {"data": rand(rng, *shape), "idx": idx}, {"batch_dims": batch_dims})


@pytest.mark.parametrize("runtime", ["cpu", "gpu"])
def test_gather_index_out_of_range_is_an_input_error(rng, runtime):
    """On the GPU too (the kernel records it; the engine raises after the run), and a later run
    with good indices is right again."""
    model = make_model("Gather", {"data": rand(rng, 3, 4), "idx": np.array([0, 2], np.int64)})
    engine = mace.Engine(convert(model), runtime=runtime, use_program_cache=False)
    data = rand(rng, 3, 4)
    for bad in (5, -4):
        with pytest.raises(InputError, match=f"index {bad} is out of range"):
            engine.run({"data": data, "idx": np.array([0, bad], np.int64)})
    np.testing.assert_array_equal(engine.run({"data": data, "idx": np.array([2, -1], np.int64)})["out0"], data[[2, 2]])


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_arg_extreme(rng, op, dtype):
    shape = _shape(rng, 1, 4)
    attrs = {"axis": int(rng.integers(-len(shape), len(shape))), "keepdims": int(rng.integers(0, 2)),
             "select_last_index": int(rng.integers(0, 2))}
    fn = np.argmax if op == "ArgMax" else np.argmin
    x = np.zeros(shape)
    ax, last = attrs["axis"], attrs["select_last_index"]
    while not np.any(shape[ax] - 1 - fn(np.flip(x, ax), ax) if last else fn(x, ax)):  # some index is not 0
        x = np.round(rand(rng, *shape) * 2) if dtype == "float32" else rand_int(rng, dtype, *shape, lo=-3, hi=3)
    check_typed(op, {"x": x.astype(dtype)}, attrs)


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_top_k(rng, largest, dtype):
    shape = _shape(rng, 1, 3)
    axis = int(rng.integers(-len(shape), len(shape)))
    x = rand(rng, *shape) if dtype == "float32" else rand_int(rng, dtype, *shape, lo=-1000, hi=1000)
    k = int(rng.integers(1, shape[axis] + 1))
    check_typed("TopK", {"x": x}, {"axis": axis, "largest": largest}, initializers={"k": np.array([k])}, n_outputs=2)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_elements(rng, reduction):
    shape = (3, 4, 5)
    axis = int(rng.integers(-3, 3))
    idx_shape = tuple(int(rng.integers(1, d + 1)) for d in shape)
    if reduction == "none":  # distinct indices along the axis: the result does not depend on write order
        idx = np.argsort(rng.random((*idx_shape[:axis % 3], shape[axis], *idx_shape[axis % 3 + 1:])), axis=axis)
        idx = np.take(idx, np.arange(idx_shape[axis]), axis=axis)
    else:
        idx = rng.integers(-shape[axis], shape[axis], size=idx_shape)
    check_typed("ScatterElements", {"data": rand(rng, *shape), "idx": idx.astype(np.int64),
                                    "upd": rand(rng, *idx_shape)}, {"axis": axis, "reduction": reduction}, opset=18)


@pytest.mark.parametrize("reduction", ["none", "add"])
def test_scatter_nd(rng, reduction):
    data = rand(rng, 4, 5, 6)
    k = int(rng.integers(1, 3))
    n = 3
    flat = rng.choice(int(np.prod(data.shape[:k])), size=n, replace=False)  # distinct tuples
    idx = np.stack(np.unravel_index(flat, data.shape[:k]), axis=-1).astype(np.int64)
    check_typed("ScatterND", {"data": data, "idx": idx, "upd": rand(rng, n, *data.shape[k:])},
                {"reduction": reduction}, opset=18)


# -- the GPU kernels (opencl/ops/index.py): every case in one model, one engine per runtime ---------
@pytest.fixture(scope="module")
def index_batch():
    """Gather of float32/int64/bool data by int64/int32 indices (negative ones too) on a random
    axis, and of a constant table (an embedding); GatherElements; ArgMax/ArgMin of float32 and
    int32 values with many ties (random axis, keepdims, select_last_index); TopK of float32 and
    int64 values (largest and smallest, random axis and k)."""
    rng = module_rng()
    b = Batch()
    for dtype, itype in (("float32", "int64"), ("int64", "int32"), ("bool", "int64")):
        shape = _shape(rng, 2, 4)
        axis = int(rng.integers(-len(shape), len(shape)))
        data = (rng.random(shape) < 0.7 if dtype == "bool" else
                rand(rng, *shape) if dtype == "float32" else rand_int(rng, dtype, *shape, lo=1, hi=9))
        idx = rng.integers(-shape[axis], shape[axis], size=_shape(rng, 0, 2)).astype(itype)
        while dtype == "bool" and not np.take(data, idx, axis=axis).any():  # never an all-false reference
            data = rng.random(shape) < 0.7
        b.add(f"gather_{dtype}", "Gather", {"data": data, "idx": idx}, {"axis": axis})
    b.add("gather_table", "Gather", {"idx": rng.integers(0, 10, (2, 5)).astype(np.int64)},
          initializers={"table": rand(rng, 10, 6)}, input_order=["table", "idx"])
    for k in range(2):
        shape = _shape(rng, 2, 3)
        axis = int(rng.integers(-len(shape), len(shape)))
        idx_shape = tuple(int(rng.integers(1, d + 1)) for d in shape)
        idx = rng.integers(-shape[axis], shape[axis], size=idx_shape).astype(np.int64)
        b.add(f"gather_elements{k}", "GatherElements", {"data": rand(rng, *shape), "idx": idx}, {"axis": axis})
    for op in ("ArgMax", "ArgMin"):
        for dtype in ("float32", "int32"):
            shape = _shape(rng, 2, 4)
            attrs = {"axis": int(rng.integers(-len(shape), len(shape))), "keepdims": int(rng.integers(0, 2)),
                     "select_last_index": int(rng.integers(0, 2))}
            fn, ax, last = np.argmax if op == "ArgMax" else np.argmin, attrs["axis"], attrs["select_last_index"]
            x = rng.integers(-2, 3, shape).astype(dtype)   # ties in most rows
            while not np.any(shape[ax] - 1 - fn(np.flip(x, ax), ax) if last else fn(x, ax)):  # some index is not 0
                x = rng.integers(-2, 3, shape).astype(dtype)
            b.add(f"{op}_{dtype}", op, {"x": x}, attrs)
    for dtype in ("float32", "int64"):
        for largest in (0, 1):
            shape = _shape(rng, 1, 3)
            axis = int(rng.integers(-len(shape), len(shape)))
            k = int(rng.integers(1, shape[axis] + 1))
            x = np.zeros(shape, dtype)
            while not (x.any() and np.take(np.argsort(-x if largest else x, axis, kind="stable"), range(k), axis).any()):
                x = rand(rng, *shape) if dtype == "float32" else rng.integers(-3, 4, shape).astype(dtype)
            b.add(f"top_k_{dtype}_{largest}", "TopK", {"x": x}, {"axis": axis, "largest": largest},
                  initializers={"k": np.array([k])}, n_outputs=2)
    return b.run()


@pytest.mark.parametrize("prefix", ["gather_", "gather_elements", "ArgMax", "ArgMin", "top_k"])
def test_gpu_index_matches_onnxruntime(index_batch, prefix):
    """Exact (indices, and values selected, not computed); no node falls back to the CPU."""
    cases = [c for c in index_batch.outs if c.startswith(prefix)]
    assert cases
    for case in cases:
        index_batch.check_typed(case)

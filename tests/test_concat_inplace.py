"""In-place Concat on the GPU runtime: producers write straight into their slice of the concat
output (a sub-buffer), and the Concat copies only the inputs that could not be placed. Every
graph is checked against onnxruntime; the placement itself is checked on the executor."""
from __future__ import annotations

import numpy as np
import pyopencl as cl
import pytest
from onnx import TensorProto, helper, numpy_helper

import mace
from mace.runtime.opencl.caps import subbuffers_safe
from tests.ophelpers import OPSET, check_graph, rand

FP16 = dict(data_type="fp16_fp32", runtimes=("gpu",), rtol=1e-2, atol=1e-2)


def make(nodes, inputs: dict[str, np.ndarray], outputs: list[str], weights: dict[str, np.ndarray]):
    g = helper.make_graph(
        nodes, "concat_inplace",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    return m


def conv_relu(rng, weights, x, y, cin, cout, k=1):
    """Conv (k x k, same padding) -> Relu from x to y; its weights go into `weights`."""
    weights[f"{y}_w"] = rand(rng, cout, cin, k, k, lo=-0.5, hi=0.5)
    weights[f"{y}_b"] = rand(rng, cout, lo=-0.1, hi=0.1)
    return [helper.make_node("Conv", [x, f"{y}_w", f"{y}_b"], [f"{y}_c"], pads=[k // 2] * 4),
            helper.make_node("Relu", [f"{y}_c"], [y])]


def relu(x, y):
    return [helper.make_node("Relu", [x], [y])]


def executor(graph, data_type="fp32_fp32"):
    """The GPU executor; nodes without a GPU kernel run on the CPU runtime (cpu+gpu)."""
    ex = mace.Engine(graph, runtime="cpu+gpu", use_program_cache=False).executor
    assert ex.data_type == data_type
    return ex


def concats(graph):
    return [n for n in graph.nodes if n.op_type == "Concat"]


def assert_placed(ex, node, placed: set[int]) -> None:
    """Exactly the inputs `placed` are sub-buffers at their slice of the concat output's slot,
    and the Concat launches one copy for each other input (every input copies on drivers whose
    sub-buffers are unsafe)."""
    if not subbuffers_safe(ex.device):
        placed = set()
    op = ex.ops[node.name]
    assert op.in_place == placed
    assert len(ex.launches_of(node.name)) == len(node.inputs) - len(placed)
    out = node.outputs[0]
    slot = ex.slots[ex.plan.slot_of[out]]
    base = ex.plan.offset_of.get(out, 0)
    itemsize = ex.store_dtype.itemsize
    for k, v in enumerate(node.inputs):
        at = base + op.slice_offsets()[k] * itemsize if op.slice_offsets() else None
        in_slice = ex.plan.slot_of[v] == ex.plan.slot_of[out] and ex.plan.offset_of.get(v) == at
        assert in_slice == (k in placed), v
        if k in placed:
            buf = ex.buffers[v]
            assert buf.get_info(cl.mem_info.ASSOCIATED_MEMOBJECT) == slot, v
            assert buf.get_info(cl.mem_info.OFFSET) == at, v
            assert buf.size == int(np.prod(ex.graph.shape(v))) * itemsize, v


def fire(rng, order, c=8):
    """SqueezeNet's fire module: squeeze 1x1 -> Relu, expand 1x1 and 3x3 -> Relu, channel concat.
    16x16 maps: the second slice starts at 8 * 256 elements, a multiple of 512 bytes (NVIDIA's
    4096-bit sub-buffer alignment) in fp16 and fp32, so every device places both inputs."""
    x = rand(rng, 1, c, 16, 16)
    w: dict = {}
    nodes = conv_relu(rng, w, "x", "s", c, 4) + conv_relu(rng, w, "s", "e1", 4, 8) \
        + conv_relu(rng, w, "s", "e3", 4, 8, k=3) \
        + [helper.make_node("Concat", order, ["cat"], axis=1)] + conv_relu(rng, w, "cat", "y", 16, 8)
    return make(nodes, {"x": x}, ["y"], w), {"x": x}


@pytest.mark.parametrize("order", [["e1", "e3"], ["e3", "e1"]])  # slices written in and out of order
def test_fire_module(rng, order):
    model, feeds = fire(rng, order)
    graph = check_graph(model, feeds)
    ex = executor(graph)
    (node,) = concats(graph)
    assert_placed(ex, node, {0, 1})
    assert any(l.name.startswith(node.name + ":") for l in ex.launches) == (not subbuffers_safe(ex.device))


def test_fire_module_fp16(rng):
    model, feeds = fire(rng, ["e1", "e3"])
    graph = check_graph(model, feeds, **FP16)
    (node,) = concats(graph)
    assert_placed(executor(graph, "fp16_fp32"), node, {0, 1})


def test_offset_alignment_follows_the_storage_type(rng):
    """32 floats before the second slice: 128 bytes in fp32, 64 in fp16; whether it is placed
    follows the device's mem_base_addr_align and the itemsize, and both results are right."""
    a, b = rand(rng, 1, 2, 4, 4), rand(rng, 1, 3, 4, 4)
    model = make(relu("a", "ra") + relu("b", "rb") + [helper.make_node("Concat", ["ra", "rb"], ["y"], axis=1),
                                                      helper.make_node("Relu", ["y"], ["z"])],
                 {"a": a, "b": b}, ["z"], {})
    for data_type, kw in (("fp32_fp32", {}), ("fp16_fp32", FP16)):
        graph = check_graph(model, {"a": a, "b": b}, **kw)
        ex = executor(graph, data_type)
        align = ex.device.mem_base_addr_align // 8
        (node,) = concats(graph)
        assert_placed(ex, node, {0} | ({1} if 32 * ex.store_dtype.itemsize % align == 0 else set()))


def test_misaligned_offset_is_copied(rng):
    """A 1x3x3 first slice puts the second at byte 36: no device aligns sub-buffers that finely."""
    a, b = rand(rng, 1, 1, 3, 3), rand(rng, 1, 2, 3, 3)
    model = make(relu("a", "ra") + relu("b", "rb") + [helper.make_node("Concat", ["ra", "rb"], ["y"], axis=1),
                                                      helper.make_node("Relu", ["y"], ["z"])],
                 {"a": a, "b": b}, ["z"], {})
    graph = check_graph(model, {"a": a, "b": b})
    ex = executor(graph)
    assert 36 % (ex.device.mem_base_addr_align // 8)
    (node,) = concats(graph)
    assert_placed(ex, node, {0})


def test_input_read_after_the_concat(rng):
    """`e1` is read again after the concat (by a residual add, and through a Flatten): the concat's
    slot must outlive it, although the ops after the concat would like to reuse that slot."""
    x = rand(rng, 1, 8, 8, 8)
    w: dict = {}
    nodes = conv_relu(rng, w, "x", "e1", 8, 4) + conv_relu(rng, w, "x", "e2", 8, 4, k=3) \
        + [helper.make_node("Concat", ["e1", "e2"], ["cat"], axis=1)] \
        + conv_relu(rng, w, "cat", "d", 8, 8) + [helper.make_node("Mul", ["d", "d"], ["e"])] \
        + conv_relu(rng, w, "e", "f", 8, 4) \
        + [helper.make_node("Add", ["f", "e1"], ["y"]), helper.make_node("Flatten", ["e1"], ["flat"]),
           helper.make_node("Sigmoid", ["flat"], ["y2"])]
    graph = check_graph(make(nodes, {"x": x}, ["y", "y2"], w), {"x": x})
    ex = executor(graph)
    (node,) = concats(graph)
    assert_placed(ex, node, {0, 1})
    (flat,) = [n.outputs[0] for n in graph.nodes if n.op_type == "Flatten"]
    if subbuffers_safe(ex.device):
        assert ex.plan.offset_of[flat] == ex.plan.offset_of[node.inputs[0]]  # an alias of a slice


def test_graph_input_is_copied(rng):
    x, a = rand(rng, 1, 8, 4, 4), rand(rng, 1, 8, 4, 4)
    w: dict = {}
    model = make(conv_relu(rng, w, "x", "e", 8, 8) + [helper.make_node("Concat", ["a", "e"], ["cat"], axis=1)]
                 + relu("cat", "y"), {"x": x, "a": a}, ["y"], w)
    graph = check_graph(model, {"x": x, "a": a})
    (node,) = concats(graph)
    assert_placed(executor(graph), node, {1})


def test_same_value_twice(rng):
    x = rand(rng, 1, 8, 4, 4)
    w: dict = {}
    model = make(conv_relu(rng, w, "x", "e", 8, 8) + conv_relu(rng, w, "x", "g", 8, 8)
                 + [helper.make_node("Concat", ["e", "g", "e"], ["cat"], axis=1)] + relu("cat", "y"),
                 {"x": x}, ["y"], w)
    graph = check_graph(model, {"x": x})
    (node,) = concats(graph)
    assert_placed(executor(graph), node, {1})


def test_graph_output_and_host_step(rng):
    """A slice read by a node on the CPU runtime (a rank-7 alternating broadcast Mul), a host-step
    output as a concat input (copied), and a graph output as a concat input (copied)."""
    a, b, z = rand(rng, *[2] * 7), rand(rng, *[2] * 7), rand(rng, 2, 1, 2, 1, 2, 1, 2)
    model = make(relu("a", "ra") + relu("b", "rb")
                 + [helper.make_node("Mul", ["ra", "z"], ["m"]),
                    helper.make_node("Concat", ["ra", "rb", "m"], ["cat"], axis=0),
                    helper.make_node("Concat", ["rb", "ra"], ["cat2"], axis=0)] + relu("cat", "y"),
                 {"a": a, "b": b, "z": z}, ["y", "rb", "cat2"], {})
    graph = check_graph(model, {"a": a, "b": b, "z": z}, gpu_native=False)
    ex = executor(graph)
    assert [graph.producers()[o].op_type for n in ex.fallback_nodes
            for o in next(x for x in graph.nodes if x.name == n).outputs] == ["Mul"]
    first, second = concats(graph)
    assert_placed(ex, first, {0})
    assert_placed(ex, second, set())  # rb is a graph output, ra already sits in the first concat


def test_not_contiguous_is_copied(rng):
    """Batch 2, channel concat: each input is two ranges of the output, so both are copied."""
    x = rand(rng, 2, 8, 4, 4)
    w: dict = {}
    model = make(conv_relu(rng, w, "x", "e", 8, 8) + conv_relu(rng, w, "x", "g", 8, 8)
                 + [helper.make_node("Concat", ["e", "g"], ["cat"], axis=1)] + relu("cat", "y"),
                 {"x": x}, ["y"], w)
    graph = check_graph(model, {"x": x})
    ex = executor(graph)
    (node,) = concats(graph)
    assert ex.ops[node.name].slice_offsets() is None
    assert_placed(ex, node, set())


def test_axis_0_batch_1(rng):
    """Stacking batch-1 tensors on axis 0: every input is one range of the output."""
    x = rand(rng, 1, 8, 4, 4)
    w: dict = {}
    model = make(conv_relu(rng, w, "x", "e", 8, 8) + conv_relu(rng, w, "x", "g", 8, 8, k=3)
                 + [helper.make_node("Concat", ["e", "g"], ["cat"], axis=0)] + relu("cat", "y"),
                 {"x": x}, ["y"], w)
    graph = check_graph(model, {"x": x})
    (node,) = concats(graph)
    assert_placed(executor(graph), node, {0, 1})


def test_nested_concat(rng):
    """inner = concat(a, b) is itself a slice of outer = concat(d, inner): a and b are sub-buffers
    of the outer slot (OpenCL has no sub-buffers of sub-buffers) at composed offsets."""
    x = rand(rng, 1, 8, 8, 8)  # 8x8 maps: every slice offset is a multiple of 512 bytes (see fire)
    w: dict = {}
    model = make(conv_relu(rng, w, "x", "a", 8, 4) + conv_relu(rng, w, "x", "b", 8, 4, k=3)
                 + conv_relu(rng, w, "x", "d", 8, 8)
                 + [helper.make_node("Concat", ["a", "b"], ["inner"], axis=1),
                    helper.make_node("Concat", ["d", "inner"], ["outer"], axis=1)] + relu("outer", "y"),
                 {"x": x}, ["y"], w)
    for data_type, kw in (("fp32_fp32", {}), ("fp16_fp32", FP16)):
        graph = check_graph(model, {"x": x}, **kw)
        ex = executor(graph, data_type)
        inner, outer = concats(graph)
        assert_placed(ex, outer, {0, 1})
        assert_placed(ex, inner, {0, 1})
        if subbuffers_safe(ex.device):
            assert ex.plan.offset_of[inner.inputs[1]] == (8 + 4) * 64 * ex.store_dtype.itemsize
            assert not ex.launches_of(inner.name) and not ex.launches_of(outer.name)

"""Element-wise ops on both runtimes against onnxruntime: activations, Add/Sub/Mul/Div with full
broadcasting (constant operand on either side, fused activation) and PRelu.

Tolerances: fp32 storage rtol 1e-4 / atol 1e-4 (values of order 1; Div denominators kept in
[0.5, 2] in magnitude); fp16 storage (data_type fp16_fp32, GPU only) rtol 1e-2 / atol 1e-2.
Every GPU check also asserts the node ran as a GPU kernel (no CPU fallback), and the broadcast
fast paths are checked to pick the intended kernel variant.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from onnx import TensorProto, helper

import mace
from mace.convert import convert
from tests.ophelpers import OPSET, Batch, check, check_graph, make_model, module_rng, rand, reference

FP16 = dict(data_type="fp16_fp32", runtimes=("gpu",), rtol=1e-2, atol=1e-2)




def rshape(rng, lo_rank=1, hi_rank=5, hi=6):
    return tuple(int(d) for d in rng.integers(1, hi + 1, size=int(rng.integers(lo_rank, hi_rank + 1))))


def gpu_kernels(model, data_type="fp32_fp32") -> list[str]:
    engine = mace.Engine(convert(model, data_type=data_type), runtime="gpu", use_program_cache=False)
    return [ln.kernel.function_name for ln in engine.executor.launches]


# -- activations ---------------------------------------------------------------------------------
ACTIVATIONS = [
    ("Relu", {}), ("Sigmoid", {}), ("Tanh", {}), ("HardSwish", {}),
    ("LeakyRelu", {}), ("LeakyRelu", {"alpha": 0.37}),
    ("HardSigmoid", {}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
]


@pytest.mark.parametrize("op,attrs", ACTIVATIONS, ids=[f"{o}{a}" for o, a in ACTIVATIONS])
def test_activation(rng, op, attrs):
    for shape in (rshape(rng), (2, 3, 4, 4), (7,)):  # random, a multiple of 4 (vec4 path), odd
        check(op, {"x": rand(rng, *shape, lo=-5, hi=5)}, attrs)


@pytest.mark.parametrize("bounds", ["both", "min", "max", "none"])
def test_clip(rng, bounds):
    lo, hi = np.float32(rng.uniform(-1, 0)), np.float32(rng.uniform(0, 1))
    inits = {"lo": lo, "hi": hi}
    order = {"both": ["x", "lo", "hi"], "min": ["x", "lo"], "max": ["x", "", "hi"], "none": ["x"]}[bounds]
    inits = {k: v for k, v in inits.items() if k in order}
    check("Clip", {"x": rand(rng, *rshape(rng), lo=-2, hi=2)}, initializers=inits, input_order=order)


def test_clip_opset6_attributes(rng):
    check("Clip", {"x": rand(rng, *rshape(rng), lo=-2, hi=2)}, {"min": -0.25, "max": 0.75}, opset=6)


# -- binary ops: broadcasting ----------------------------------------------------------------------
BINARY = ["Add", "Sub", "Mul", "Div"]


def operand(rng, shape, op, which):
    if op == "Div" and which == "b":  # keep denominators away from 0
        return np.asarray(rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape), dtype=np.float32)
    return np.asarray(rand(rng, *shape), dtype=np.float32)


PATTERNS = {  # name: (a shape, b shape, GPU kernel variant)
    "same": ((2, 3, 4, 5), (2, 3, 4, 5), "binary_same4"),
    "same_odd": ((3, 5, 7), (3, 5, 7), "binary_same"),
    "scalar_b": ((2, 3, 5), (), "binary_scalar"),
    "scalar4": ((2, 4, 3), (1,), "binary_scalar4"),
    "channel4": ((2, 6, 4, 4), (6, 1, 1), "binary_channel4"),
    "scalar_a": ((1,), (2, 3, 5), "binary_scalar"),
    "channel_b": ((2, 6, 3, 5), (6, 1, 1), "binary_channel"),
    "channel_a": ((1, 6, 1, 1), (2, 6, 3, 5), "binary_channel"),
    "last_dim": ((4, 3, 7), (7,), "binary_channel"),
    "first_dim": ((5, 1, 1), (5, 3, 2), "binary_channel"),
    "two_sided": ((3, 1, 5), (4, 1), "binary_bcast"),
    "middle": ((2, 3, 4, 5), (1, 3, 1, 5), "binary_bcast"),
    "rank6": ((2, 1, 3, 1, 2, 3), (1, 2, 1, 3, 2, 1), "binary_bcast"),
}


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_binary_broadcast(rng, op, pattern):
    sa, sb, _ = PATTERNS[pattern]
    check(op, {"a": operand(rng, sa, op, "a"), "b": operand(rng, sb, op, "b")})


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_binary_gpu_variant(rng, pattern):
    sa, sb, kernel = PATTERNS[pattern]
    model = make_model("Sub", {"a": rand(rng, *sa), "b": rand(rng, *sb)})
    assert gpu_kernels(model) == [kernel]


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("const_side", ["a", "b"])
def test_binary_constant_operand(rng, op, const_side):
    shape = rshape(rng, 2, 4)
    small = tuple(d if rng.random() < 0.5 else 1 for d in shape)
    a, b = operand(rng, shape, op, "a"), operand(rng, small, op, "b")
    if const_side == "a":  # the constant is the first operand: a swapped non-commutative op
        a, b = operand(rng, small, op, "a"), operand(rng, shape, op, "b")
        check(op, {"b": b}, initializers={"a": a}, input_order=["a", "b"])
    else:
        check(op, {"a": a}, initializers={"b": b})


def run_with(engine, feeds, variant=None, lws_cap=None):
    """Run after switching every op to `variant` (where offered) and/or giving every launch a
    local size of at most `lws_cap` per dim (as the tuner does); returns the outputs."""
    ex = engine.executor
    for name, op in ex.ops.items():
        if op is None or op.alias:
            continue
        if variant is not None and variant in op.variants() and op.variant != variant:
            op.use_variant(variant)
        launches = ex.rebind(name)
        if lws_cap is not None:
            ex.rebind(name, [tuple(max(d for d in range(1, min(g, lws_cap) + 1) if g % d == 0) for g in ln.gws)
                             for ln in launches])
    return engine.run(feeds)


@pytest.mark.parametrize("pattern", ["same", "scalar4", "channel4", "two_sided"])
def test_binary_tuning_variants_and_local_sizes(rng, pattern):
    sa, sb, kernel = PATTERNS[pattern]
    feeds = {"a": rand(rng, *sa), "b": rand(rng, *sb)}
    model = make_model("Mul", feeds)
    want = reference(model, feeds)[0]
    engine = mace.Engine(convert(model), runtime="gpu", use_program_cache=False)
    op = next(iter(engine.executor.ops.values()))
    assert op.variants() == (["vec4", "scalar"] if kernel.endswith("4") else ["scalar"])
    for variant, cap in (("scalar", None), ("scalar", 7), (op.variants()[0], 3)):
        np.testing.assert_allclose(run_with(engine, feeds, variant, cap)["out0"], want, rtol=1e-5, atol=1e-6)
        assert engine.executor.launches[0].kernel.function_name == kernel.rstrip("4") + \
            ("4" if variant == "vec4" else "")


def test_activation_variants(rng):
    x = rand(rng, 2, 4, 6, lo=-3, hi=3)
    model = make_model("HardSwish", {"x": x})
    engine = mace.Engine(convert(model), runtime="gpu", use_program_cache=False)
    want = reference(model, {"x": x})[0]
    for variant, cap in (("vec4", None), ("scalar", 5), ("vec4", 4)):
        np.testing.assert_allclose(run_with(engine, {"x": x}, variant, cap)["out0"], want, rtol=1e-5, atol=1e-6)


def test_binary_rank7_falls_back_to_cpu(rng):
    # 7 alternating broadcast dims cannot be merged below the GPU kernel's 6: CPU fallback
    a, b = rand(rng, 2, 1, 2, 1, 2, 1, 2), rand(rng, 1, 2, 1, 2, 1, 2, 1)
    graph = check("Mul", {"a": a, "b": b}, gpu_native=False)
    engine = mace.Engine(graph, runtime="cpu+gpu", use_program_cache=False)
    assert engine.executor.fallback_nodes == [graph.nodes[0].name]
    # runtime gpu refuses it, naming the op and the way out
    with pytest.raises(mace.errors.DeviceError, match=r"runtime gpu: 1 op\(s\).*Mul_0 \(Mul\).*cpu\+gpu"):
        mace.Engine(graph, runtime="gpu", use_program_cache=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=6, max_side=4),
       op=st.sampled_from(BINARY), seed=st.integers(0, 2**32 - 1))
def test_binary_broadcast_hypothesis_cpu(shapes, op, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    assume(shapes.result_shape != ())  # the CPU executor turns a rank-0 graph input into shape (1,)
    check(op, {"a": operand(rng, sa, op, "a"), "b": operand(rng, sb, op, "b")}, runtimes=("cpu",))


@settings(max_examples=20, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=5, max_side=5),
       op=st.sampled_from(BINARY), seed=st.integers(0, 2**32 - 1))
def test_binary_broadcast_hypothesis_gpu(shapes, op, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    check(op, {"a": operand(rng, sa, op, "a"), "b": operand(rng, sb, op, "b")}, runtimes=("gpu",))


# -- PRelu -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1,), (5,), (2, 3, 4, 5), (1, 3, 1, 1), (4, 1)])
@pytest.mark.parametrize("const", [True, False], ids=["const_slope", "input_slope"])
def test_prelu(rng, slope_shape, const):
    x, slope = rand(rng, 2, 3, 4, 5), rng.uniform(0, 0.5, slope_shape).astype(np.float32)
    if const:
        check("PRelu", {"x": x}, initializers={"slope": slope})
    else:
        check("PRelu", {"x": x, "slope": slope})


# -- fused activation ------------------------------------------------------------------------------
FUSED = [("Relu", {}, []), ("Clip", {}, ["lo", "hi"]), ("LeakyRelu", {"alpha": 0.2}, []),
         ("Sigmoid", {}, []), ("HardSigmoid", {"alpha": 0.25, "beta": 0.45}, []), ("Tanh", {}, []),
         ("HardSwish", {}, [])]


def two_node_model(op, act, act_attrs, act_inputs, a, b, const_b=False):
    nodes = [helper.make_node(op, ["a", "b"], ["t"]),
             helper.make_node(act, ["t"] + act_inputs, ["y"], **act_attrs)]
    inits = [helper.make_tensor("lo", TensorProto.FLOAT, [], [-0.3]),
             helper.make_tensor("hi", TensorProto.FLOAT, [], [0.4])] if act_inputs else []
    if const_b:
        inits.append(helper.make_tensor("b", TensorProto.FLOAT, b.shape, b.reshape(-1).tolist()))
    ins = [helper.make_tensor_value_info("a", TensorProto.FLOAT, a.shape)]
    if not const_b:
        ins.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, b.shape))
    g = helper.make_graph(nodes, "fused", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("act,attrs,act_inputs", FUSED, ids=[f[0] for f in FUSED])
def test_add_fused_activation(rng, act, attrs, act_inputs):
    a, b = rand(rng, 2, 4, 3, 5, lo=-3, hi=3), rand(rng, 4, 1, 1, lo=-3, hi=3)
    model = two_node_model("Add", act, attrs, act_inputs, a, b)
    graph = check_graph(model, {"a": a, "b": b})
    assert [n.op_type for n in graph.nodes] == ["Add"]
    assert graph.nodes[0].attrs["activation"] == act


@pytest.mark.parametrize("op", ["Sub", "Mul", "Div"])
def test_other_binary_fused_relu(rng, op):
    a, b = rand(rng, 3, 5, 6), rng.uniform(0.5, 2, (6,)).astype(np.float32)
    model = two_node_model(op, "Relu", {}, [], a, b, const_b=True)
    graph = check_graph(model, {"a": a})
    assert [(n.op_type, n.attrs.get("activation")) for n in graph.nodes] == [(op, "Relu")]


# -- fp16 storage ------------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern", ["same", "same_odd", "scalar_a", "scalar4", "channel_b", "channel4",
                                     "two_sided", "rank6"])
def test_binary_fp16(rng, pattern):
    sa, sb, _ = PATTERNS[pattern]
    check("Div", {"a": operand(rng, sa, "Div", "a"), "b": operand(rng, sb, "Div", "b")}, **FP16)


@pytest.mark.parametrize("op,attrs", [("Relu", {}), ("Sigmoid", {}), ("HardSwish", {}), ("LeakyRelu", {"alpha": 0.1})])
def test_activation_fp16(rng, op, attrs):
    check(op, {"x": rand(rng, *rshape(rng), lo=-4, hi=4)}, attrs, **FP16)
    check(op, {"x": rand(rng, 2, 4, 4, lo=-4, hi=4)}, attrs, **FP16)


def test_prelu_and_fused_fp16(rng):
    check("PRelu", {"x": rand(rng, 2, 3, 4, 5)}, initializers={"s": rand(rng, 3, 1, 1, lo=0, hi=0.5)}, **FP16)
    a, b = rand(rng, 2, 4, 3, 5), rand(rng, 4, 1, 1)
    check_graph(two_node_model("Add", "Clip", {}, ["lo", "hi"], a, b), {"a": a, "b": b}, **FP16)


# -- unary math, Gelu (GPU kernels for the ops in opencl/ops/elementwise.py's MATH), Pow/Max/Min/
#    Sum/Mean/Mod (the binary kernels) -------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Sin", "Cos",
                                "Erf", "Softplus", "Softsign"])
def test_unary_math_matches_onnxruntime(rng, op):
    x = rand(rng, 2, 3, 17, lo=0.1, hi=3.0) * rng.choice([-1, 1], size=(2, 3, 17)).astype(np.float32)
    if op in ("Log", "Sqrt"):
        x = np.abs(x)
    check(op, {"x": x}, rtol=1e-5, atol=1e-5)


#: op -> (attributes, low, high of |x|, signed): the domain each is drawn from
MORE_MATH = {"Tan": ({}, 0.05, 1.2, True), "Asin": ({}, 0.05, 0.95, True), "Acos": ({}, 0.05, 0.95, True),
             "Atan": ({}, 0.1, 4.0, True), "Sinh": ({}, 0.1, 3.0, True), "Cosh": ({}, 0.1, 3.0, True),
             "Asinh": ({}, 0.1, 4.0, True), "Acosh": ({}, 1.05, 4.0, False), "Atanh": ({}, 0.05, 0.95, True),
             "Sign": ({}, 0.1, 3.0, True), "Round": ({}, 0.0, 4.0, True), "Mish": ({}, 0.1, 4.0, True),
             "Elu": ({"alpha": 0.7}, 0.1, 3.0, True), "Selu": ({}, 0.1, 3.0, True),
             "Celu": ({"alpha": 1.3}, 0.1, 3.0, True), "ThresholdedRelu": ({"alpha": 0.4}, 0.1, 1.0, True)}


@pytest.fixture(scope="module")
def more_math():
    """The trig family, Sign, Round and the parametric activations in one model (one engine per
    runtime): magnitudes drawn from each op's domain, both signs; Sign gets zeros, Round halves."""
    rng = module_rng()
    b = Batch(opset=18)  # Mish
    for op, (attrs, lo, hi, signed) in MORE_MATH.items():
        x = rand(rng, 2, 3, 17, lo=lo, hi=hi)
        if signed:
            x *= rng.choice([-1, 1], size=x.shape).astype(np.float32)
        if op == "Sign":
            x.flat[rng.permutation(x.size)[:5]] = 0.0
        if op == "Round":
            x.flat[rng.permutation(x.size)[:20]] = rng.integers(-4, 4, 20) + np.float32(0.5)
        b.add(op, op, {"x": x}, attrs)
    for k, (sa, sb) in enumerate(BCAST[:3]):
        a = rand(rng, *sa, lo=0.5, hi=4.0) * rng.choice([-1, 1], size=sa).astype(np.float32)
        b.add(f"mod{k}", "Mod", {"a": a, "b": rand(rng, *sb, lo=0.5, hi=2.0)}, {"fmod": 1})
    return b.run()


@pytest.mark.parametrize("op", [*MORE_MATH, "mod"])
def test_more_math_matches_onnxruntime(more_math, op):
    """rtol/atol 2e-5 (the device's math library against onnxruntime's)."""
    for case in [c for c in more_math.outs if c.startswith(op)]:
        more_math.check(case, rtol=2e-5, atol=2e-5)
    assert "unary_math" in more_math.gpu_kernels and any(k.startswith("binary") for k in more_math.gpu_kernels)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_onnxruntime(rng, approximate):
    check("Gelu", {"x": rand(rng, 3, 40) * 4}, {"approximate": approximate}, opset=20, rtol=1e-5, atol=1e-5)


BCAST = [((2, 3, 5), (3, 1)), ((2, 6, 4, 4), (6, 1, 1)), ((3, 8), ()), ((4, 1, 5), (1, 3, 1)), ((2, 3, 4), (2, 3, 4))]


@pytest.fixture(scope="module")
def float_binary():
    """Pow (positive bases, any exponent; negative bases, integer exponents; constant exponents as
    exporters write them), and Max/Min/Sum/Mean of one, two and three broadcast inputs."""
    rng = module_rng()
    b = Batch()
    for k, (sa, sb) in enumerate(BCAST):
        b.add(f"pow_pos{k}", "Pow", {"a": rand(rng, *sa, lo=0.1, hi=3.0), "b": rand(rng, *sb, lo=-2.0, hi=2.0)})
        neg = rng.integers(-3, 4, sb).astype(np.float32)
        b.add(f"pow_neg{k}", "Pow", {"a": rand(rng, *sa, lo=-2.0, hi=2.0) + 0.01, "b": neg})
    for e in (2.0, 3.0, 0.5):
        b.add(f"pow_const{e}", "Pow", {"a": rand(rng, 2, 4, 7, lo=0.1, hi=3.0)}, initializers={"e": np.float32(e)})
    for op in ("Max", "Min", "Sum", "Mean"):
        for n in (1, 2, 3):
            shapes = [(2, 3, 4), (3, 1), (1, 4)][:n]
            if n == 2:
                shapes = [(2, 3, 4), (2, 3, 4)]
            b.add(f"{op}{n}", op, {f"x{i}": rand(rng, *s) for i, s in enumerate(shapes)})
    return b.run()


@pytest.mark.parametrize("op", ["pow_pos", "pow_neg", "pow_const", "Max", "Min", "Sum", "Mean"])
def test_float_binary_matches_onnxruntime(float_binary, op):
    cases = [c for c in float_binary.outs if c.startswith(op)]
    assert cases
    for case in cases:
        float_binary.check(case, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("form", ["div_then_half_last", "mul_then_half_first"])
def test_gelu_pattern_is_fused(rng, form):
    from onnx import TensorProto, helper, numpy_helper
    if form == "div_then_half_last":
        consts = {"c": np.array(np.sqrt(2), np.float32), "one": np.array(1, np.float32),
                  "half": np.array(0.5, np.float32)}
        nodes = [helper.make_node("Div", ["x", "c"], ["u"]), helper.make_node("Erf", ["u"], ["e"]),
                 helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
                 helper.make_node("Mul", ["m", "half"], ["y"])]
    else:
        consts = {"c": np.array(np.sqrt(0.5), np.float32), "one": np.array(1, np.float32),
                  "half": np.array(0.5, np.float32)}
        nodes = [helper.make_node("Mul", ["x", "c"], ["u"]), helper.make_node("Erf", ["u"], ["e"]),
                 helper.make_node("Mul", ["x", "half"], ["h"]), helper.make_node("Add", ["one", "e"], ["a"]),
                 helper.make_node("Mul", ["h", "a"], ["y"])]
    g = helper.make_graph(nodes, "gelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by older onnxruntime releases too
    graph = check_graph(model, {"x": rand(rng, 2, 64) * 4}, rtol=1e-5, atol=1e-5)
    assert [n.op_type for n in graph.nodes] == ["Gelu"]


@pytest.mark.parametrize("form", ["torch_mul_cube", "pow_cube_half_first"])
def test_gelu_tanh_pattern_is_fused(rng, form):
    """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) as torch's exporter writes it
    (x * (x * x), constants on the left) and as x ** 3 code exports (Pow, 0.5 * x first)."""
    from onnx import TensorProto, helper, numpy_helper
    consts = {"beta": np.array(np.sqrt(2 / np.pi), np.float32), "kappa": np.array(0.044715, np.float32),
              "one": np.array(1, np.float32), "half": np.array(0.5, np.float32), "three": np.array(3, np.float32)}
    if form == "torch_mul_cube":
        nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("Mul", ["x", "sq"], ["cube"]),
                 helper.make_node("Mul", ["kappa", "cube"], ["kc"]), helper.make_node("Add", ["x", "kc"], ["s"]),
                 helper.make_node("Mul", ["beta", "s"], ["inner"]), helper.make_node("Tanh", ["inner"], ["t"]),
                 helper.make_node("Add", ["one", "t"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
                 helper.make_node("Mul", ["half", "m"], ["y"])]
    else:
        nodes = [helper.make_node("Pow", ["x", "three"], ["cube"]), helper.make_node("Mul", ["cube", "kappa"], ["kc"]),
                 helper.make_node("Add", ["kc", "x"], ["s"]), helper.make_node("Mul", ["s", "beta"], ["inner"]),
                 helper.make_node("Tanh", ["inner"], ["t"]), helper.make_node("Mul", ["x", "half"], ["h"]),
                 helper.make_node("Add", ["t", "one"], ["a"]), helper.make_node("Mul", ["h", "a"], ["y"])]
    g = helper.make_graph(nodes, "gelu_tanh", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    graph = check_graph(model, {"x": rand(rng, 2, 64) * 4}, rtol=1e-5, atol=1e-5)
    assert [(n.op_type, n.attrs.get("approximate")) for n in graph.nodes] == [("Gelu", "tanh")]


def test_gelu_and_silu_fuse_into_their_producers(rng):
    """Conv -> Gelu, Conv -> x * Sigmoid(x) (SiLU) and Add -> Gelu(tanh): each one kernel with its
    activation fused (Gelu, Silu, GeluTanh), on both runtimes."""
    from onnx import numpy_helper
    consts = {"w1": rand(rng, 8, 8, 3, 3) * 0.4, "b1": rand(rng, 8), "w2": rand(rng, 8, 8, 1, 1) * 0.5,
              "b2": rand(rng, 8), "c": rand(rng, 8, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Gelu", ["c1"], ["g1"]),
             helper.make_node("Conv", ["g1", "w2", "b2"], ["c2"]),
             helper.make_node("Sigmoid", ["c2"], ["s"]), helper.make_node("Mul", ["c2", "s"], ["m"]),
             helper.make_node("Add", ["m", "c"], ["a"]),
             helper.make_node("Gelu", ["a"], ["y"], approximate="tanh")]
    g = helper.make_graph(nodes, "acts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    graph = check_graph(model, {"x": rand(rng, 1, 8, 6, 6, lo=-2, hi=2)}, rtol=1e-4, atol=1e-5)
    assert [(n.op_type, n.attrs.get("activation")) for n in graph.nodes] == [
        ("Conv", "Gelu"), ("Conv", "Silu"), ("Add", "GeluTanh")]

"""Einsum against onnxruntime on the equations exporters write (batched matmuls, attention
scores and values, outer products, reductions), random sizes; float32 rtol 1e-4 / atol 1e-5
(sums reordered), int32 exact. The two-operand float forms are lowered to MatMul at conversion
(mace/convert/einsum.py) and run on both runtimes; the others stay Einsum (CPU runtime)."""
from __future__ import annotations

import pytest

from tests.ophelpers import Batch, check_typed, module_rng, rand, rand_int

EQUATIONS = ["ij,jk->ik", "bij,bjk->bik", "bhqd,bhkd->bhqk", "bhqk,bhkd->bhqd", "i,j->ij", "bij->bji",
             "ij,ij->i", "b i d, b j d -> b i j", "ii->i", "ij,kj"]


def _operands(rng, equation, dtype):
    lhs = equation.replace(" ", "").split("->")[0]
    sizes = {c: int(rng.integers(2, 6)) for c in set(lhs) if c.isalpha()}
    mk = (lambda *s: rand(rng, *s)) if dtype == "float32" else (lambda *s: rand_int(rng, dtype, *s, lo=-9, hi=9))
    return {f"x{k}": mk(*[sizes[c] for c in term]) for k, term in enumerate(lhs.split(","))}


@pytest.mark.parametrize("equation", EQUATIONS)
def test_einsum(rng, equation):
    check_typed("Einsum", _operands(rng, equation, "float32"), {"equation": equation}, rtol=1e-4, atol=1e-5)


def test_einsum_int(rng):
    check_typed("Einsum", _operands(rng, "bij,bjk->bik", "int32"), {"equation": "bij,bjk->bik"})


#: two-operand forms exporters write, lowered to Transpose/Reshape/MatMul (implicit output too)
LOWERED = ["ij,jk->ik", "bij,bjk->bik", "bhqd,bhkd->bhqk", "bhqk,bhkd->bhqd", "i,j->ij", "ij,ij->i",
           "bid,bjd->bij", "ij,kj", "bnhd,bhmd->bnhm", "abc,cd->abd"]


@pytest.fixture(scope="module")
def lowered():
    rng = module_rng()
    b = Batch()
    for k, eq in enumerate(LOWERED):
        b.add(f"e{k}", "Einsum", _operands(rng, eq, "float32"), {"equation": eq})
    return b.run()


def test_two_operand_forms_are_lowered_and_run_on_both_runtimes(lowered):
    """No Einsum node is left, no node falls back to the CPU; rtol 1e-4 / atol 1e-5."""
    assert "Einsum" not in {n.op_type for n in lowered.graph.nodes}
    assert "MatMul" in {n.op_type for n in lowered.graph.nodes}
    for case in lowered.outs:
        lowered.check(case, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("equation", ["ii->i", "bij->bji", "ij,jk,kl->il", "ij->i"])
def test_other_forms_stay_einsum(rng, equation):
    from mace.convert import convert
    from tests.ophelpers import make_model
    graph = convert(make_model("Einsum", _operands(rng, equation, "float32"), {"equation": equation}))
    assert [n.op_type for n in graph.nodes] == ["Einsum"]

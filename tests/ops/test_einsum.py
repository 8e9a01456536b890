"""Einsum against onnxruntime on the equations exporters write (batched matmuls, attention
scores and values, outer products, reductions), random sizes; float32 rtol 1e-4 / atol 1e-5
(sums reordered), int32 exact."""
from __future__ import annotations

import pytest

from tests.ophelpers import check_typed, rand, rand_int

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

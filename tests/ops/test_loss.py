"""NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss against onnxruntime: random scores and
labels (some equal to ignore_index), optional class weights, every reduction; float32 rtol
1e-5 / atol 1e-6 (sums in another order)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.ophelpers import check_typed, rand

TOL = dict(rtol=1e-5, atol=1e-6)


def _case(rng, weighted):
    n, c, d = (int(v) for v in rng.integers(2, 5, size=3))
    labels = rng.integers(0, c, size=(n, d)).astype(np.int64)
    labels[0, 0] = 1  # never all ignored
    inits = {"w": rng.uniform(0.5, 1.5, c).astype(np.float32)} if weighted else {}
    return rand(rng, n, c, d), labels, inits


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(rng, reduction, weighted):
    x, labels, inits = _case(rng, weighted)
    check_typed("NegativeLogLikelihoodLoss", {"x": x, "t": labels}, {"reduction": reduction, "ignore_index": 0},
                initializers=inits, **TOL)


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy(rng, reduction, weighted):
    x, labels, inits = _case(rng, weighted)
    check_typed("SoftmaxCrossEntropyLoss", {"x": x, "t": labels}, {"reduction": reduction, "ignore_index": 0},
                initializers=inits, n_outputs=2, **TOL)

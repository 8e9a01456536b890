"""DepthToSpace (DCR and CRD) and SpaceToDepth on the CPU runtime against onnxruntime: exact
(values are moved, not computed), float32 and uint8."""
from __future__ import annotations

import pytest

from tests.ophelpers import check_typed, rand, rand_int


@pytest.mark.parametrize("op,mode", [("DepthToSpace", "DCR"), ("DepthToSpace", "CRD"), ("SpaceToDepth", None)])
@pytest.mark.parametrize("dtype", ["float32", "uint8"])  # onnxruntime has no int64 kernels of these
def test_depth_space(rng, op, mode, dtype):
    b = int(rng.integers(2, 4))
    c, h, w = (2 * b * b, 3, 2) if op == "DepthToSpace" else (3, 2 * b, 3 * b)
    x = rand(rng, 2, c, h, w) if dtype == "float32" else rand_int(rng, dtype, 2, c, h, w, lo=1, hi=99)
    check_typed(op, {"x": x}, {"blocksize": b, **({"mode": mode} if mode else {})})

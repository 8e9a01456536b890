"""ONNX's node test suite through mace's ONNX backend (onnx.backend.test.BackendTest).

Every case either passes or is refused at conversion with a one-line MaceError; nothing is wrong
and nothing crashes. The refused cases are listed beside this file (regenerate them and
docs/onnx-coverage.md with `python scripts/onnx_coverage.py`), so a change in the counts shows
in review. The CPU runtime runs every case; the GPU runtime (runtime "gpu": every op on the
GPU) runs the cases the CPU passes, which keeps it to about a minute.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", category=RuntimeWarning)  # the cases' generators overflow casts on purpose
from mace.testing import onnx_backend as ob  # noqa: E402

HERE = Path(__file__).parent
CASES = ob.node_cases()


def _expected(runtime: str) -> set[str]:
    return set((HERE / f"expected_refusals_{runtime}.txt").read_text().split())


EXPECTED = {"cpu": _expected("cpu"), "gpu": _expected("gpu")}
#: every Nth of them where $MACE_TEST_SUITE_EVERY says so: the chosen subset that
#: tests/test_implementations.py runs on the other OpenCL implementations
GPU_CASES = sorted(set(CASES) - EXPECTED["cpu"])[::max(1, int(os.environ.get("MACE_TEST_SUITE_EVERY", "1")))]
_TESTS: dict[str, object] = {}


def _tests(runtime: str):
    if runtime not in _TESTS:
        _TESTS[runtime] = ob.backend_tests(runtime)
    return _TESTS[runtime]


def _check(runtime: str, name: str) -> None:
    outcome, message = ob.classify(_tests(runtime), CASES[name])
    expected = name in EXPECTED[runtime]
    if outcome == "refused":
        assert expected, f"{runtime}: refused but not in expected_refusals_{runtime}.txt: {message}"
        assert "\n" not in message and message, "a refusal is one line"
        return
    assert outcome == "passed", f"{runtime}: {outcome}: {message}"
    assert not expected, f"{runtime}: passes now: remove it from expected_refusals_{runtime}.txt"


@pytest.mark.parametrize("name", sorted(CASES))
def test_cpu(name):
    _check("cpu", name)


@pytest.mark.parametrize("name", GPU_CASES)
def test_gpu(name):
    _check("gpu", name)


def test_lists_name_real_cases():
    for runtime in ("cpu", "gpu"):
        stale = EXPECTED[runtime] - set(CASES)
        assert not stale, f"expected_refusals_{runtime}.txt names cases onnx does not generate: {sorted(stale)[:5]}"
    assert not EXPECTED["gpu"] & EXPECTED["cpu"], "the GPU list holds only cases the CPU passes"


def test_backend_is_onnx_backend():
    """The suite runs through ONNX's own interface: prepare, then run on a list of inputs."""
    import numpy as np
    from onnx import TensorProto, helper
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rep = ob.make_backend("cpu").prepare(model)
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    (y,) = rep.run([x])
    assert np.array_equal(y, np.maximum(x, 0))
    with pytest.raises(ob.Refused, match="element type int64"):
        model.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
        ob.make_backend("cpu").prepare(model)

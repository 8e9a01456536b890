"""mace as an ONNX backend (`onnx.backend.base.Backend`), so ONNX's own node test suite runs
through ONNX's own runner (`onnx.backend.test.BackendTest`).

prepare = `mace.convert.convert` + `mace.Engine` on the backend's runtime; run = `engine.run`.
`classify` runs one suite case and says what happened: passed, refused (a MaceError at
conversion), wrong (outputs differ) or crashed (any other error); the suite test and the coverage
table (`scripts/onnx_coverage.py`) are built on it.
"""
from __future__ import annotations

import unittest

import numpy as np
from onnx.backend.base import Backend, BackendRep, namedtupledict

#: the tolerances a case is checked at: the case's own, but no tighter than float32 kernels
#: that reorder sums can meet
MIN_RTOL, MIN_ATOL = 1e-4, 1e-5


class Refused(Exception):
    """prepare refused the model with a MaceError (at conversion, or a runtime that lacks a kernel
    for one of its ops): its one-line message."""


class MaceRep(BackendRep):
    def __init__(self, engine):
        self.engine = engine

    def run(self, inputs, **kwargs):
        names = self.engine.input_names
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            feeds = {n: np.asarray(v) for n, v in zip(names, inputs)}
        outs = self.engine.run(feeds)
        order = self.engine.output_names
        return namedtupledict("Outputs", order)(*[outs[o] for o in order])


def make_backend(runtime: str) -> type[Backend]:
    """A Backend class whose prepare builds an Engine on `runtime` ("cpu", "gpu", "cpu+gpu")."""

    class MaceBackend(Backend):
        @classmethod
        def prepare(cls, model, device: str = "CPU", **kwargs):
            import mace
            from mace.convert import convert
            from mace.errors import MaceError
            try:
                graph = convert(model)
                return MaceRep(mace.Engine(graph, runtime=runtime, use_program_cache=False))
            except MaceError as exc:
                raise Refused(str(exc)) from None

        @classmethod
        def supports_device(cls, device: str) -> bool:
            return device == "CPU"

    MaceBackend.runtime = runtime
    return MaceBackend


def node_cases() -> dict[str, object]:
    """ONNX's node test cases by name (generated from the installed onnx package)."""
    from onnx.backend.test.loader import load_model_tests
    return {c.name: c for c in load_model_tests(kind="node")}


def backend_tests(runtime: str) -> type[unittest.TestCase]:
    """The BackendTest node-case class for `runtime` (methods `test_<case>_cpu`)."""
    from onnx.backend.test import BackendTest
    bt = BackendTest(make_backend(runtime), __name__)
    return bt.test_cases["OnnxBackendNodeModelTest"]


def classify(tests: type[unittest.TestCase], case) -> tuple[str, str]:
    """Run one node case: ("passed", ""), ("refused", message: a MaceError from prepare), ("wrong",
    first line) or ("crashed", type and first line: any error while running, typed or not)."""
    from mace.errors import MaceError
    method = f"{case.name}_cpu"
    rtol, atol = max(case.rtol, MIN_RTOL), max(case.atol, MIN_ATOL)
    try:
        with np.errstate(all="ignore"):
            getattr(tests(method), method)(rtol=rtol, atol=atol)
    except Refused as exc:
        return "refused", str(exc)
    except AssertionError as exc:
        return "wrong", _first_line(exc)
    except MaceError as exc:
        return "crashed", f"{type(exc).__name__}: {_first_line(exc)}"
    except Exception as exc:  # noqa: BLE001 - an untyped error is what this reports
        return "crashed", f"{type(exc).__name__}: {_first_line(exc)}"
    return "passed", ""


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""

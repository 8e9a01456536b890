"""A run recorded once with cl_khr_command_buffer and replayed, against onnxruntime.

PyPI's PoCL (3.0) does not offer the extension; Debian's PoCL 3.1 (`pocl-opencl-icd`) does. CI
installs it and moves its ICD file into a directory of its own ($MACE_TEST_CMDBUF_ICD, default
/opt/mace-cmdbuf-icd) so that the default device stays PyPI's PoCL; the replay test runs in a child
process whose OCL_ICD_VENDORS points there. Under CI a missing driver fails the test; elsewhere
it is skipped with the reason.

Tolerance: the replayed run executes the same kernels with the same arguments as per-launch
enqueues, so their outputs must be bitwise equal; against onnxruntime rtol 1e-4 / atol 1e-4.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import mace
from mace.convert import convert
from mace.ir import modelfile
from tests.ophelpers import reference

ICD_DIR = os.environ.get("MACE_TEST_CMDBUF_ICD", "/opt/mace-cmdbuf-icd")


def _model(rng):
    """Conv+Relu -> MaxPool -> 1x1 Conv -> residual Add -> GlobalAveragePool -> Gemm -> Softmax."""
    def init(name, *shape):
        return numpy_helper.from_array(rng.uniform(-0.5, 0.5, shape).astype(np.float32), name)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"]),
        helper.make_node("Add", ["c2", "p1"], ["a2"]),
        helper.make_node("GlobalAveragePool", ["a2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "cmdbuf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 20, 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializer=[init("w1", 16, 6, 3, 3), init("b1", 16), init("w2", 16, 16, 1, 1), init("b2", 16),
                     init("w3", 10, 16), init("b3", 10)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_device_without_the_extension_runs_each_launch(rng):
    """PyPI's PoCL lacks the extension: the executor says so and enqueues launch by launch."""
    from mace.runtime.opencl import command_buffer
    model = _model(rng)
    x = rng.uniform(-1, 1, (1, 6, 20, 20)).astype(np.float32)
    engine = mace.Engine(convert(model), runtime="gpu", use_program_cache=False)
    got = engine.run({"x": x})["y"]
    np.testing.assert_allclose(got, reference(model, {"x": x})[0], rtol=1e-4, atol=1e-4)
    ex = engine.executor
    if command_buffer.offered(ex.device):
        assert ex.command_buffer is not None and ex.command_buffer.count == len(ex.launches)
    else:
        assert ex.command_buffer is None
        assert command_buffer.EXTENSION in ex.command_buffer_note


def test_recorded_run_matches_per_launch_and_onnxruntime(rng, tmp_path):
    icd = Path(ICD_DIR)
    if not any(icd.glob("*.icd")):
        if os.environ.get("CI"):
            pytest.fail(f"no OpenCL driver with cl_khr_command_buffer in {icd} (CI installs Debian's PoCL there)")
        pytest.skip(f"no OpenCL driver with cl_khr_command_buffer in {icd}: apt install pocl-opencl-icd and "
                    f"move /etc/OpenCL/vendors/pocl.icd there")
    model = _model(rng)
    x = rng.uniform(-1, 1, (1, 6, 20, 20)).astype(np.float32)
    modelfile.save(convert(model), tmp_path / "m.mace")
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, OCL_ICD_VENDORS=str(icd), PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    env.pop("MACE_COMMAND_BUFFER", None)
    env.pop("MACE_DEVICE", None)
    proc = subprocess.run([sys.executable, "-m", "tests.cmdbuf_child", str(tmp_path / "m.mace"),
                           str(tmp_path / "x.npy"), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["recorded"] == report["launches"] > 5, report
    assert report["rerecorded"], report
    assert not report["plain_recorded"] and "MACE_COMMAND_BUFFER" in report["plain_note"], report
    want = reference(model, {"x": x})[0]
    recorded = np.load(tmp_path / "recorded.npy")
    np.testing.assert_allclose(recorded, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(recorded, np.load(tmp_path / "plain.npy"))
    np.testing.assert_array_equal(recorded, np.load(tmp_path / "rebound.npy"))

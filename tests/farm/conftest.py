"""Shared by the farm tests: a one-conv deployment (mace.yml + ONNX), the local sshd "boards"
of tests/deploy/conftest.py (the same fixture, loaded from there), and the OpenCL implementations
the farm's nodes own (tests/farm/implementations.py): `farm_prerequisites`
fails under CI, and skips elsewhere, when Ray or one of their ICD files is missing."""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import pytest

from tests.farm.implementations import DEBIAN_ICD, INTEL_ICD

_spec = importlib.util.spec_from_file_location("mace_tests_deploy_conftest",
                                               Path(__file__).resolve().parents[1] / "deploy" / "conftest.py")
_deploy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_deploy)
sshd = _deploy.sshd


def write_deployment(ws: Path, relu: bool = True, name: str = "tiny") -> Path:
    """A mace.yml of one Conv(+Relu) model in `ws` (its ONNX file beside it)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    w = np.random.default_rng(0).uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c" if relu else "y"], pads=[1, 1, 1, 1])]
    nodes += [helper.make_node("Relu", ["c"], ["y"])] if relu else []
    g = helper.make_graph(nodes, name, [x], [y], [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    save(m, ws / f"{name}.onnx")
    sha = hashlib.sha256((ws / f"{name}.onnx").read_bytes()).hexdigest()
    (ws / "mace.yml").write_text(f"""library_name: {name}
target_abis: [host]
models:
  {name}:
    platform: onnx
    model_file_path: {name}.onnx
    model_sha256_checksum: {sha}
    input_tensors: [x]
    input_shapes: ["1,3,8,8"]
    output_tensors: [y]
    output_shapes: ["1,4,8,8"]
    runtime: gpu
""")
    return ws / "mace.yml"


@pytest.fixture(scope="session")
def tiny_deployment():
    return write_deployment


@pytest.fixture(scope="session")
def farm_prerequisites():
    """Ray and both extra OpenCL implementations are installed (under CI a missing one fails)."""
    def missing(msg):
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        import ray  # noqa: F401
    except ImportError:
        missing("ray is not installed: pip install '.[farm]'")
    for icd, what in ((DEBIAN_ICD, "Debian's PoCL"), (INTEL_ICD, "Intel's CPU runtime")):
        if not any(icd.glob("*.icd")):
            missing(f"{what}: no ICD file in {icd} (see tests/test_implementations.py)")

"""The op tests, the five test models, the portability tests and a subset of ONNX's node suite
on every OpenCL implementation CI installs besides the default (PyPI's PoCL):

- Debian's PoCL 3.1 (`pocl-opencl-icd`): its ICD file in a directory of its own
  ($MACE_TEST_CMDBUF_ICD, default /opt/mace-cmdbuf-icd), so the default device stays PyPI's PoCL;
- Intel's CPU OpenCL runtime from PyPI (`pip install '.[intel-cpu]'`, i.e. intel-opencl-rt +
  intel-cmplr-lib-rt): an ICD file naming the venv's `lib/libintelocl.so` in its own directory
  ($MACE_TEST_INTEL_ICD, default <venv>/etc/mace-intel-icd), with that `lib/` on LD_LIBRARY_PATH.

Each runs in a child pytest whose OCL_ICD_VENDORS points at that directory and whose device is
checked to be the intended one (MACE_TEST_EXPECT_DEVICE, see conftest.py). Under CI a missing
implementation fails; elsewhere it is skipped with the reason.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.test_op_layout import CPU_ONLY

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
SUBSET = ["tests/ops", "tests/test_models.py", "tests/test_portability.py", "tests/quantize/test_int8_dot.py",
          "tests/onnx_backend/test_node_suite.py::test_gpu"]
#: ONNX's node suite on the GPU runtime: every 8th of the cases the CPU runtime passes
SUITE_EVERY = "8"
#: op families with no GPU kernel (tests/test_op_layout.py's CPU_ONLY): their tests run the CPU
#: runtime only, the same on every OpenCL implementation, so the default run covers them
CPU_ONLY_TESTS = [f"--ignore=tests/ops/test_{fam}.py" for fam in sorted(CPU_ONLY)]
#: the chosen subset: every op test except those forcing the GPU-style tiled variants ("gpu_*",
#: 128-wide tiles, split-K) onto these CPU devices, where they are slowest and never the default
#: (the default device runs them all); keeps the suite in its time budget
DESELECT = "not (gpu_variants or all_gpu_variants or t128 or split_k or gpu_depthwise_variant)"

IMPLEMENTATIONS = {
    "debian-pocl": dict(icd=Path(os.environ.get("MACE_TEST_CMDBUF_ICD", "/opt/mace-cmdbuf-icd")),
                        expect="PoCL 3.1", lib=None,
                        install="apt install pocl-opencl-icd, then move /etc/OpenCL/vendors/pocl.icd there"),
    "intel-cpu": dict(icd=Path(os.environ.get("MACE_TEST_INTEL_ICD", VENV / "etc" / "mace-intel-icd")),
                      expect="Intel(R) OpenCL", lib=VENV / "lib",
                      install="pip install '.[intel-cpu]' and write intel.icd naming <venv>/lib/libintelocl.so there"),
}


def _start(impl):
    env = dict(os.environ, OCL_ICD_VENDORS=str(impl["icd"]), MACE_DEVICE="0",
               MACE_TEST_EXPECT_DEVICE=impl["expect"], MACE_TEST_SUITE_EVERY=SUITE_EVERY, PYTHONPATH=str(ROOT))
    if impl["lib"] is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(impl["lib"]), env.get("LD_LIBRARY_PATH")]))
    log = tempfile.TemporaryFile("w+")          # a file, not a pipe: nobody reads it until the child ends
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", DESELECT,
                             *CPU_ONLY_TESTS, *SUBSET], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


_CHILDREN: dict[str, subprocess.Popen] = {}


def start_children() -> dict[str, subprocess.Popen]:
    """Every installed implementation's child run, started together (each is mostly one core);
    tests/conftest.py starts them right after collection, so they run beside the suite."""
    if not _CHILDREN:
        _CHILDREN.update({name: _start(impl) for name, impl in IMPLEMENTATIONS.items()
                          if any(impl["icd"].glob("*.icd"))})
    return _CHILDREN


def stop_children() -> None:
    for proc in _CHILDREN.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def children():
    yield start_children()
    stop_children()


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_suite_subset_on_implementation(name, children):
    impl = IMPLEMENTATIONS[name]
    if name not in children:
        msg = f"{name}: no ICD file in {impl['icd']} ({impl['install']})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    children[name].wait(timeout=1800)
    children[name].log.seek(0)
    out = children[name].log.read()
    assert children[name].returncode == 0, f"{name}: the suite subset failed:\n{out[-3000:]}"

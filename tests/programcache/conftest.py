"""Shared fixtures of the program cache tests (no OpenCL needed except `pocl_blob`)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:          # pc_workers / pc_helpers for spawned processes
    sys.path.insert(0, str(HERE))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    for knob in ("MACE_PROGRAM_PATH", "MACE_PROGRAM_CACHE_MAX_BYTES"):
        monkeypatch.delenv(knob, raising=False)


@pytest.fixture
def fp_a():
    from pc_helpers import make_fp
    return make_fp("Adreno(TM) 640", driver="512.415")


@pytest.fixture
def fp_b():
    from pc_helpers import make_fp
    return make_fp("Adreno(TM) 640", driver="512.502")


@pytest.fixture
def cache_path(tmp_path):
    return tmp_path / "mace-cl-compiled-program.bin"


@pytest.fixture(scope="session")
def pocl_device():
    import pyopencl as cl
    devices = [d for p in cl.get_platforms() for d in p.get_devices()]
    assert devices, "PoCL (pocl-binary-distribution) provides an OpenCL device"
    return devices[0]


@pytest.fixture(scope="session")
def pocl_blob(pocl_device):
    """(source, binary) of a tiny kernel compiled once per session by PoCL."""
    import pyopencl as cl
    src = "__kernel void twice(__global float *a) { a[get_global_id(0)] *= 2.0f; }"
    ctx = cl.Context([pocl_device])
    prg = cl.Program(ctx, src).build(cache_dir=False)
    return src, bytes(prg.get_info(cl.program_info.BINARIES)[0])

"""The OpenCL implementations the farm tests' nodes own besides PyPI's PoCL, selected per process
by OCL_ICD_VENDORS as tests/test_implementations.py does: Debian's PoCL 3.1 and Intel's CPU runtime."""
from __future__ import annotations

import os
import sys
from pathlib import Path

VENV = Path(sys.prefix)
DEBIAN_ICD = Path(os.environ.get("MACE_TEST_CMDBUF_ICD", "/opt/mace-cmdbuf-icd"))
INTEL_ICD = Path(os.environ.get("MACE_TEST_INTEL_ICD", VENV / "etc" / "mace-intel-icd"))


def intel_env() -> dict:
    """The environment that makes Intel's CPU runtime a process's only OpenCL implementation."""
    lib = os.pathsep.join(filter(None, [str(VENV / "lib"), os.environ.get("LD_LIBRARY_PATH")]))
    return {"OCL_ICD_VENDORS": str(INTEL_ICD), "LD_LIBRARY_PATH": lib}

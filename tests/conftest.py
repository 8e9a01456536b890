import os

import numpy as np
import pytest

# Honest, reproducible builds: our program cache is the only one that may answer.
os.environ.setdefault("PYOPENCL_NO_CACHE", "1")


def pytest_sessionstart(session):
    """Under the implementation matrix (tests/test_implementations.py) the device must be the one
    asked for: a run that silently fell back to another driver would prove nothing."""
    want = os.environ.get("MACE_TEST_EXPECT_DEVICE")
    if want:
        from mace.runtime.opencl.device import select_device
        dev = select_device()
        seen = f"{dev.platform.name} {dev.platform.version} {dev.version}"
        if want not in seen:
            raise pytest.UsageError(f"MACE_TEST_EXPECT_DEVICE={want!r} but the device is {seen!r}")


@pytest.fixture(autouse=True)
def _programs_built_per_test():
    """Each test starts engines as a new process would: programs come from its program cache or
    are compiled, not from engines of earlier tests (tests of sharing make their engines in one test)."""
    from mace.runtime.opencl import shared
    shared.forget_programs()


@pytest.fixture
def rng(request):
    """A fresh seed per test (printed on failure via the test id)."""
    seed = int.from_bytes(os.urandom(4), "little")
    request.node.user_properties.append(("seed", seed))
    print(f"seed={seed}")
    return np.random.default_rng(seed)


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


def pytest_collection_finish(session):
    """The implementation matrix's child runs start as soon as they are collected, so they run
    beside the rest of the suite (mostly one core) instead of after it."""
    if session.config.option.collectonly:
        return
    matrix = next((item.module for item in session.items if item.module.__name__.endswith("test_implementations")),
                  None)
    if matrix is not None:
        matrix.start_children()


def pytest_sessionfinish(session):
    """No child run outlives the session (one stopped early by -x or ^C)."""
    for item in session.items:
        if item.module.__name__.endswith("test_implementations"):
            item.module.stop_children()
            break


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


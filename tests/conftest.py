import os

import numpy as np
import pytest

# Honest, reproducible builds: our program cache is the only one that may answer.
os.environ.setdefault("PYOPENCL_NO_CACHE", "1")


@pytest.fixture
def rng(request):
    """A fresh seed per test (printed on failure via the test id)."""
    seed = int.from_bytes(os.urandom(4), "little")
    request.node.user_properties.append(("seed", seed))
    print(f"seed={seed}")
    return np.random.default_rng(seed)

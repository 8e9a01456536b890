"""The node suite checks conformance, not program loading: its cases share the programs they
build (one build per kernel and type combination for the whole suite), which keeps the GPU part
to a few minutes on a cold PoCL."""
import pytest


@pytest.fixture(autouse=True)
def _programs_built_per_test():
    """Overrides tests/conftest.py's (which makes each test build its programs afresh)."""
    yield

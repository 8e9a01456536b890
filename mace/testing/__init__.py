"""Helpers for tests: deterministic, regenerable test models (see :mod:`mace.testing.models`)."""

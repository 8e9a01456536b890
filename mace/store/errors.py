"""The program store's typed errors (one line each, naming the store and the fix)."""
from __future__ import annotations

from mace.errors import MaceError


class StoreError(MaceError):
    """A program store cannot be used as asked (bad URL, missing extra, read-only store)."""


class StoreUnavailable(StoreError):
    """The store did not answer (network error, timeout, missing index)."""


class StoreRefused(StoreError):
    """The store answered with something that must not be used: an unsigned, tampered or
    unknown-key index, or a section whose bytes do not match it."""

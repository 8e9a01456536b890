"""The program store: device sections of program caches, published once and pulled by every
device that matches (`mace cache publish FILE STORE`, `mace cache pull STORE`,
`Engine(..., program_store=URL)` / MACE_PROGRAM_STORE).

A store is an fsspec URL (a directory, HTTP(S), S3 with the `s3` extra) holding

    index.json                           the signed index: fingerprint id -> section entry
    sections/<fp id>/<sha256>.bin        one device's section, a program cache file of its own
    queue/<fp id>/<sha256>.bin           sections offered by devices whose key the policy does
                                         not accept, waiting for the farm to verify them

Sections are content-addressed, so a device downloads its section again only when the index
names other bytes; the index is re-read only when its ETag (or size and time) changed. An
index without a valid signature by a trusted key is refused, and so is a section whose bytes
do not match it; each section also carries its own section signatures (program cache format
1.2), checked again when the engine opens it.
"""
from __future__ import annotations

from mace.store.errors import StoreError, StoreRefused, StoreUnavailable

__all__ = ["StoreError", "StoreRefused", "StoreUnavailable"]

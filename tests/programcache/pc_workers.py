"""Child-process bodies for the concurrency tests (importable by spawned interpreters)."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def put_and_save(path: str, idx: int, rounds: int, per_round: int, barrier) -> None:
    from pc_helpers import make_fp

    from mace.programcache import ProgramCache
    logging.disable(logging.WARNING)
    fp = make_fp(driver=f"drv{idx % 2}")          # two processes per device section
    barrier.wait(timeout=60)
    for r in range(rounds):
        cache = ProgramCache.open(path, device_fp=fp)
        for j in range(per_round):
            assert cache.put_binary(fp, f"p{idx}_{r}_{j}", bytes([idx]) * 2000 + bytes([r, j]))
        cache.put_tuning(fp, f"t{idx}_{r}", {"idx": idx, "round": r})
        if not cache.save():
            raise SystemExit(3)


def save_forever(path: str, blob_bytes: int) -> None:
    """Save generation after generation of large files until killed."""
    from pc_helpers import make_fp

    from mace.programcache import ProgramCache
    logging.disable(logging.WARNING)
    fp = make_fp()
    gen = 0
    while True:
        cache = ProgramCache.open(path, device_fp=fp, max_bytes=3 * blob_bytes + 65536)
        cache.put_binary(fp, f"gen{gen}", bytes([gen % 251]) * blob_bytes)
        cache.save()
        Path(path + ".saved").write_text(str(gen))
        gen += 1

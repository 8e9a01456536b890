"""Several processes saving the same file at once; a writer killed mid-save."""
from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time

import pc_workers
from pc_helpers import make_fp

from mace.programcache import ProgramCache
from mace.programcache import format as F

CTX = mp.get_context("spawn")


def test_four_processes_save_at_once_and_the_file_holds_the_union(cache_path):
    n, rounds, per_round = 4, 3, 5
    barrier = CTX.Barrier(n)
    procs = [CTX.Process(target=pc_workers.put_and_save,
                         args=(str(cache_path), i, rounds, per_round, barrier)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    dec = F.decode(cache_path.read_bytes())
    assert dec.findings == []
    assert len(dec.data.sections) == 2
    expected = {(make_fp(driver=f"drv{i % 2}").id, f"p{i}_{r}_{j}")
                for i in range(n) for r in range(rounds) for j in range(per_round)}
    assert set(dec.data.programs) == expected
    assert all(e.blob_ok() for e in dec.data.programs.values())
    assert len(dec.data.tuning) == n * rounds
    assert not list(cache_path.parent.glob("*.tmp"))


def test_sigkill_mid_save_leaves_the_old_or_the_new_file(cache_path):
    rng = random.Random(1234)
    marker = cache_path.with_name(cache_path.name + ".saved")
    seen_generations = set()
    for _ in range(6):
        marker.unlink(missing_ok=True)
        p = CTX.Process(target=pc_workers.save_forever, args=(str(cache_path), 2_000_000))
        p.start()
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), "the child never saved"
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        assert p.exitcode == -signal.SIGKILL
        dec = F.decode(cache_path.read_bytes())          # never torn: no finding at all
        assert dec.findings == [] and dec.data.programs
        assert all(e.blob_ok() for e in dec.data.programs.values())
        seen_generations.add(frozenset(k for _, k in dec.data.programs))
    # the lock was released by the kernel and the next writer cleans the killed one's temp file
    fp = make_fp()
    cache = ProgramCache.open(cache_path, device_fp=fp, max_bytes=7_000_000)
    cache.put_binary(fp, "after", b"ok")
    assert cache.save()
    assert not list(cache_path.parent.glob("*.tmp"))
    assert ProgramCache.open(cache_path, device_fp=fp).get_binary(fp, "after") == b"ok"

"""An engine's link to a program store: pull its device's section before the program cache
is opened, within a time bound; after a miss, optionally contribute the section it compiled.

The bound holds for the first result: the pull runs in a daemon thread, and when it has not
finished in `timeout` seconds the engine goes on and compiles as it would without a store
(the pull may still finish in the background, while the process lives, and serve the next start). A refused or
unreachable store is a warning, never an error of the engine.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from mace.store.errors import StoreError

log = logging.getLogger("mace.store")
DEFAULT_TIMEOUT_S = 2.0


def store_url(program_store: str | None) -> str | None:
    from mace import settings
    return program_store or settings.get("MACE_PROGRAM_STORE")


def timeout_s() -> float:
    from mace import settings
    raw = settings.get("MACE_PROGRAM_STORE_TIMEOUT")
    return float(raw) if raw else DEFAULT_TIMEOUT_S


class StoreLink:
    """What the engine keeps: the pull's report (`report`) and the publish-on-miss step."""

    def __init__(self, url: str, fp, program, publish_on_miss: bool = False, timeout: float | None = None):
        self.url, self.fp, self.program = url, fp, program
        self.timeout = timeout_s() if timeout is None else float(timeout)
        self.publish_on_miss = publish_on_miss
        self.report: dict = {"store": url, "status": "pending"}

    def pull(self) -> dict:
        """Bring this device's section into the program file, waiting at most the timeout (the
        bound covers importing the store's modules too: they are imported in the thread)."""
        t0 = time.perf_counter()
        done: dict = {}

        def work():
            try:
                from mace.store.pull import pull_into
                done["result"] = pull_into(self.url, self.fp.id, self.program, timeout=max(self.timeout, 5.0))
            except (StoreError, OSError, Exception) as exc:   # noqa: BLE001 - never fatal to the engine
                done["error"] = exc

        t = threading.Thread(target=work, name="mace-store-pull", daemon=True)
        t.start()
        t.join(self.timeout)
        if t.is_alive():
            self.report = {"store": self.url, "status": "timeout", "seconds": time.perf_counter() - t0}
            log.warning("program store %s: no answer within %.1f s (MACE_PROGRAM_STORE_TIMEOUT): compiling "
                        "from source; the pull goes on in the background while this process runs, for the "
                        "next start", self.url, self.timeout)
        elif "error" in done:
            exc = done["error"]
            self.report = {"store": self.url, "status": "failed", "error": str(exc),
                           "seconds": time.perf_counter() - t0}
            log.warning("%s", exc if isinstance(exc, StoreError) else f"program store {self.url}: {exc}")
        else:
            self.report = done["result"].to_dict()
            self.report["seconds"] = time.perf_counter() - t0
        return self.report

    def after_first_save(self, cache) -> None:
        """After a miss, contribute the section this device compiled (publish_on_miss)."""
        if not self.publish_on_miss or self.report.get("status") != "miss" or cache is None:
            return
        if not cache.section(self.fp).present or not cache.section(self.fp).program_keys():
            return
        from mace import settings
        from mace.programcache.format import CacheData
        from mace.programcache.merge import merge_into
        from mace.store.publish import contribute
        key = settings.get("MACE_DEVICE_KEY")
        data = merge_into(CacheData(), cache.data, sections=[self.fp.id])
        try:
            self.report["contributed"] = contribute(self.url, data, self.fp.id,
                                                    os.path.expanduser(key) if key else None, self.timeout)
        except (StoreError, OSError, Exception) as exc:       # noqa: BLE001 - never fatal to the engine
            self.report["contributed"] = {"action": "failed", "error": str(exc)}
            log.warning("program store %s: contributing this device's section failed: %s", self.url, exc)


__all__ = ["StoreLink", "store_url", "timeout_s"]

"""`mace farm verify STORE`: the sections devices queued in a program store (publish_on_miss
with a key the store's policy does not accept), verified by the farm, then signed with the farm
key and published, or rejected.

A queued section is verified on a node that owns its fingerprint, for every model of the
mace.yml (a driver's binaries are not reproducible byte for byte, so they are checked by use):

1. rebuild: the model compiled from source on the device: the programs it needs;
2. re-validate: the model opened on the queued section alone; every program must load from it
   (0 compiled, none rejected) and the outputs must pass validation against onnxruntime.

A section is accepted when every model passed and every program it holds is one some model
needs (a program no model builds cannot be checked). Accepted: signed with the farm key and
published (the index names it, the queue entry is removed). Rejected: moved to
`rejected/<fp id>/<sha256>.bin` with the reasons beside it (`.json`). A section whose device no
node of the cluster owns stays queued. The check itself, on the node: queued.py.
"""
from __future__ import annotations

import json
import time
from pathlib import Path


def verify_store(config, store_url: str, address: str | None = None, key=None, build_dir=None, retries: int = 2,
                 cpus_per_job: float = 1.0, progress=None) -> dict:
    """`mace farm verify STORE --config mace.yml`: returns the --json document."""
    from mace.config import load_config
    from mace.convert.deployment import convert_config
    from mace.farm.driver import collect, connect, submit
    from mace.farm.resources import advertised
    from mace.programcache import signing
    from mace.store.backend import Store
    from mace.tools.progress import sink
    t0 = time.perf_counter()
    key = Path(key) if key else signing.default_private_key_path()
    private = signing.load_private_key(key)
    store = Store(store_url, 60.0).require_writable()
    queued = [p for p in store.listdir("queue") if p.endswith(".bin") and p.count("/") == 2]
    loaded = load_config(config)
    doc = {"store": store_url, "queued": len(queued), "published": [], "rejected": [], "waiting": [], "failed": []}
    bar = sink(progress)
    with bar:
        if queued:
            results = convert_config(loaded, Path(build_dir) if build_dir else None)
            models = {r.name: {"model_bytes": Path(r.output).read_bytes(), "onnx_bytes": Path(r.onnx_path).read_bytes(),
                               "runtime": r.runtime} for r in results if "gpu" in r.runtime}
            ray = connect(address)
            owned = set(advertised(ray.cluster_resources()))
            specs = []
            for path in queued:
                fp_id = path.split("/")[1]
                if fp_id not in owned:
                    doc["waiting"].append({"path": path, "fp_id": fp_id,
                                           "why": "no node of the cluster owns the device"})
                    continue
                specs.append({"model": "verify", "fp_id": fp_id, "path": path, "section": store.read(path, 1 << 30),
                              "models": models})
            task = bar.add(f"farm: verifying {len(specs)} queued sections", len(specs))
            done, failed = collect(ray, submit(ray, specs, retries, cpus_per_job, "check_queued"), bar, task)
            doc["failed"] = [{"path": next(s["path"] for s in specs if s["fp_id"] == f["fp_id"]), **f} for f in failed]
            _settle(store, private, done, {s["path"]: s["section"] for s in specs}, doc)
    doc["seconds"] = time.perf_counter() - t0
    return doc


def _settle(store, private, done: list[dict], blobs: dict, doc: dict) -> None:
    """Publish the accepted sections (one index update), move the rejected ones aside."""
    from mace.programcache.format import decode
    from mace.store import index as _index
    from mace.store.publish import add_section, current_index
    accepted = [d for d in done if d["accepted"]]
    if accepted:
        idx = current_index(store, private)
        for d in accepted:
            data = decode(blobs[d["path"]], d["path"]).data
            data.signatures.clear()
            res = add_section(store, idx, data, d["fp_id"], private)
            doc["published"].append({**res, "queued": d["path"], "models": d["models"]})
        store.write(_index.INDEX_FILE, idx.encode([private]))
    for d in done:
        if not d["accepted"]:
            target = "rejected/" + d["path"].split("/", 1)[1]
            store.write(target, blobs[d["path"]])
            store.write(target[:-4] + ".json", json.dumps({"reasons": d["reasons"], "models": d["models"]},
                                                          indent=1, default=str).encode())
            doc["rejected"].append({"path": d["path"], "moved_to": target, "fp_id": d["fp_id"],
                                    "reasons": d["reasons"]})
        store.delete(d["path"])


__all__ = ["verify_store"]

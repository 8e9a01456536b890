"""The farm's driver: connect to (or start) a Ray cluster, find the devices its nodes
advertise, run one job per (model, device), merge the sections into one program file signed
with the farm key, and write the farm report.

A job asks for one unit of its device's resource (`mace_fp_<id>`), so it runs on a node that
owns the device, one job per device at a time. A job whose node dies is retried by Ray on
another node with the same resource (`retries`); a job that raises is a failure of that
(model, device) only. Only sections whose validation passed are merged and signed.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from mace.farm import FarmError, require_ray
from mace.farm.resources import advertised, fp_resource, node_resources
from mace.tools.progress import sink

log = logging.getLogger("mace.farm")


def connect(address: str | None, device_conf: str | None = None):
    """Join the cluster at `address` ('auto', 'ray://host:port', 'host:port'), or start a local
    one whose node advertises this machine's devices. Returns the ray module."""
    if address and address.startswith("ray://"):
        _client_auth()
    ray = require_ray()
    if ray.is_initialized():
        return ray
    kw = dict(logging_level=logging.WARNING, log_to_driver=False)
    try:
        if address and address.startswith("ray://"):
            _client_init(ray, address, kw)
        elif address:
            ray.init(address=address, **kw)
        else:
            env = {"MACE_FARM_DEVICE_CONF": str(Path(device_conf).resolve())} if device_conf else {}
            ray.init(resources=node_resources(device_conf), include_dashboard=False,
                     runtime_env={"env_vars": env} if env else None, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise FarmError(f"cannot reach the Ray cluster at {address or 'a new local cluster'} "
                        f"({' '.join(str(exc).split())[:200]}): start it (`ray start --head`), or "
                        f"leave out --address for a local one") from None
    return ray


def _client_init(ray, address: str, kw: dict, attempts: int = 3) -> None:
    """ray.init through Ray's client, again when the head's per-client server died at its start
    (an intermittent fork race of Ray's client proxy, ray-project/ray#63202: "Initialization
    failure from server"); each attempt gets a new server."""
    for attempt in range(attempts):
        try:
            ray.init(address=address, **kw)
            return
        except ConnectionAbortedError as exc:
            if attempt == attempts - 1 or "Initialization failure" not in str(exc):
                raise
            log.warning("Ray client server at %s failed to start (attempt %d of %d): trying again",
                        address, attempt + 1, attempts)
            ray.shutdown()


def _client_auth() -> None:
    """Ray clusters started by `ray start` require their token (Ray >= 2.5x: ~/.ray/auth_token, or
    RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH), but a ray:// client sends it only in token mode: turn
    that mode on when a token is there and RAY_AUTH_MODE says nothing."""
    import os
    import sys
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(path)):
        return
    os.environ["RAY_AUTH_MODE"] = "token"      # read when ray is imported
    if "ray" in sys.modules:                   # imported already: its configuration is read again
        try:
            from ray._private.authentication.authentication_token_setup import _enable_token_auth
            _enable_token_auth()
        except (ImportError, AttributeError):
            pass


def _remote(ray, what: str = "run"):
    from mace.farm import job

    @ray.remote
    def farm_job(spec):
        return getattr(job, what)(spec)
    return farm_job


def submit(ray, specs: list[dict], retries: int, cpus: float, what: str = "run") -> dict:
    fn = _remote(ray, what)
    return {fn.options(resources={fp_resource(s["fp_id"]): 1}, num_cpus=cpus, max_retries=retries,
                       retry_exceptions=False, name=f"mace-farm-{what}:{s['model']}@{s['fp_id']}").remote(s): s
            for s in specs}


def collect(ray, pending: dict, bar, task) -> tuple[list[dict], list[dict]]:
    """Results as they finish (one job never waits on another); failures reported, not raised."""
    done, failed = [], []
    refs = list(pending)
    while refs:
        ready, refs = ray.wait(refs, num_returns=1, timeout=None)
        for ref in ready:
            spec = pending[ref]
            label = f"{spec['model']} on {spec['fp_id'][:8]}"
            try:
                done.append(ray.get(ref))
            except Exception as exc:          # noqa: BLE001 - a job's failure is that job's
                cause = getattr(exc, "cause", None) or exc       # a RayTaskError carries the job's own
                msg = " ".join(str(cause).strip().splitlines()[-1:] or [""]).strip()[:400]
                failed.append({"model": spec["model"], "fp_id": spec["fp_id"],
                               "error": f"{type(cause).__name__}: {msg}"})
                log.warning("farm job %s failed: %s", label, msg)
            bar.advance(task, item=label)
    return done, failed


def merge_sections(results: list[dict]):
    """One CacheData holding every validated section (failed validations left out)."""
    from mace.programcache.format import CacheData, decode
    from mace.programcache.merge import merge_into
    data = CacheData()
    for r in results:
        if r["summary"]["validation"]["passed"]:
            merge_into(data, decode(r["section"], f"section of {r['summary']['model']}").data,
                       sections=[r["summary"]["fp_id"]])
    return data


def report(results: list[dict], failed: list[dict], devices: list[str], merged: dict) -> dict:
    """Per device: its jobs (programs, tuning gain, validation, time) and failures."""
    per = {fp: {"fp_id": fp, "device": None, "jobs": [], "failures": []} for fp in devices}
    for r in results:
        s = r["summary"]
        d = per.setdefault(s["fp_id"], {"fp_id": s["fp_id"], "device": None, "jobs": [], "failures": []})
        d["device"] = d["device"] or s.get("device")
        v = s["validation"]
        d["jobs"].append({"model": s["model"], "programs": s["programs"], "compiled": s["compiled"],
                          "tuning_gain": (s["tuning"] or {}).get("gain"), "validation": {
                              "passed": v["passed"], "threshold": v["threshold"],
                              "min_cosine": min((o.get("cosine", 0.0) for o in v["outputs"].values()), default=0.0)},
                          "seconds": s["seconds"], "cpu_seconds": s.get("cpu_seconds"), "node": s["node"],
                          "node_id": s["node_id"], "board": s.get("board")})
        if not v["passed"]:
            d["failures"].append({"model": s["model"], "error": "validation below threshold: section not merged"})
    for f in failed:
        per.setdefault(f["fp_id"], {"fp_id": f["fp_id"], "device": None, "jobs": [], "failures": []})
        per[f["fp_id"]]["failures"].append({"model": f["model"], "error": f["error"]})
    below = sum(1 for r in results if not r["summary"]["validation"]["passed"])
    return {"devices": list(per.values()), "merged": merged, "jobs": len(results) + len(failed),
            "failed": len(failed) + below}


def write_merged(data, out: Path, key_path) -> dict:
    from mace import fileio
    from mace.programcache import signing
    from mace.programcache.format import encode
    private = signing.load_private_key(key_path)
    signed = signing.sign(data, private)
    out.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_atomic(out, encode(data))
    return {"file": str(out), "sections": sorted(data.sections), "signed": signed,
            "key_id": signing.key_id(signing.raw_public(private)), "programs": len(data.programs)}


def verify_merged(ray, blob: bytes, models: dict, fp_ids: list[str], retries: int, cpus: float, bar) -> dict:
    """On every device of the merged file: open each model's engine on it; a device the farm
    served compiles nothing (fp id -> {model: {from_cache, compiled}}, or {"error": ...})."""
    specs = [{"model": "merged", "fp_id": fp, "program_bytes": blob, "models": models} for fp in fp_ids]
    task = bar.add(f"farm: checking the merged file on {len(specs)} devices", len(specs))
    done, failed = collect(ray, submit(ray, specs, retries, cpus, "serves"), bar, task)
    out = {d["fp_id"]: {**d["models"], "node_id": d["node_id"]} for d in done}
    out.update({f["fp_id"]: {"error": f["error"]} for f in failed})
    return out


def build(config, address: str | None = None, key=None, output=None, build_dir=None, tune_budget: float = 0.0,
          retries: int = 2, cpus_per_job: float = 1.0, device_conf: str | None = None, progress=None,
          verify: bool = True) -> dict:
    """`mace farm build`: returns the --json document (also written as the farm report)."""
    from mace import fileio, jsondoc
    from mace.config import load_config
    from mace.convert.deployment import convert_config, output_dir
    from mace.programcache import signing
    from mace.tools.build import kernel_file_name
    t0 = time.perf_counter()
    key = Path(key) if key else signing.default_private_key_path()
    signing.load_private_key(key)                      # a bad key fails before any work
    loaded = load_config(config)
    lib_dir = output_dir(loaded, Path(build_dir) if build_dir else None)
    bar = sink(progress)
    with bar:
        results = convert_config(loaded, Path(build_dir) if build_dir else None)
        ray = connect(address, device_conf)
        devices = advertised(ray.cluster_resources())
        if not devices:
            raise FarmError("no node of the cluster advertises an OpenCL device: start each node with "
                            "`ray start --resources \"$(python -m mace.farm.resources)\"`")
        specs = [{"model": r.name, "fp_id": fp, "model_bytes": Path(r.output).read_bytes(),
                  "onnx_bytes": Path(r.onnx_path).read_bytes(), "runtime": r.runtime, "tune_budget": tune_budget}
                 for r in results if "gpu" in r.runtime for fp in devices]
        task = bar.add(f"farm: {len(specs)} jobs on {len(devices)} devices", len(specs))
        done, failed = collect(ray, submit(ray, specs, retries, cpus_per_job), bar, task)
        out = Path(output) if output else lib_dir / "opencl" / kernel_file_name(loaded.config.library_name)
        data = merge_sections(done)
        merged = write_merged(data, out, key) if data.sections else None
        if merged and verify:
            models = {r.name: Path(r.output).read_bytes() for r in results if "gpu" in r.runtime}
            merged["serves"] = verify_merged(ray, out.read_bytes(), models, sorted(data.sections), retries,
                                             cpus_per_job, bar)
    doc = {"config": str(loaded.path), "library_name": loaded.config.library_name, "address": address or "local",
           "models": [r.name for r in results], **report(done, failed, devices, merged),
           "seconds": time.perf_counter() - t0}
    doc["report"] = str(lib_dir / "farm-report.json")
    fileio.write_atomic(doc["report"], jsondoc.dumps(doc))
    return doc


__all__ = ["build", "connect", "submit", "collect", "merge_sections", "report"]

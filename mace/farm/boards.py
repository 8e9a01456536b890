"""Boards of a node's device.yml as farm devices: what each board's OpenCL loader sees (probed
over ssh, `python -m mace.farm.resources --devices` run there), and a farm job run on a board
through the remote deploy path (mace/deploy: upload, `mace tune` within the budget, `mace run`,
download, the board's own section merged with its origin marked).

The node's device.yml is MACE_FARM_DEVICE_CONF in the environment of its Ray processes (`mace
farm build --device-conf` sets it for the local cluster), so a job finds the board that owns
its fingerprint on the node that advertised it.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

from mace.farm import FarmError

log = logging.getLogger("mace.farm")
_PROBED: dict[str, list[dict]] = {}          # device.yml path -> its boards' devices (per process)


def probe(name: str, spec) -> list[dict]:
    """The OpenCL devices board `name` sees (index, fp_id, soc, description, short, board)."""
    from mace.deploy.devices import remote_python
    from mace.deploy.remote import RemoteDevice, _env_lines
    dev = RemoteDevice(name, spec)
    res = dev.t.ssh(f"{_env_lines(spec)}{remote_python(spec)} -m mace.farm.resources --devices", timeout=180)
    lines = res.stdout.strip().splitlines()
    try:
        devices = json.loads(lines[-1]) if res.returncode == 0 and lines else None
    except ValueError:
        devices = None
    if not isinstance(devices, list):
        why = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1][:200]
        raise FarmError(f"{dev.label}: cannot list its OpenCL devices ({why}): check that mace runs there "
                        f"(`mace deploy` says what is missing)")
    return [{**d, "board": name} for d in devices if isinstance(d, dict) and d.get("fp_id")]


def board_devices(device_conf: str | os.PathLike) -> list[dict]:
    """Every board's devices; a board that cannot be probed is left out with a warning (a node
    starts without it)."""
    key = str(Path(device_conf).resolve())
    if key not in _PROBED:
        from mace.deploy.devices import load_devices
        from mace.errors import MaceError
        found: list[dict] = []
        for name, spec in load_devices(device_conf).select(None):
            try:
                found += probe(name, spec)
            except MaceError as exc:
                log.warning("board %s not advertised: %s", name, exc)
        _PROBED[key] = found
    return _PROBED[key]


def find(fp_id: str) -> tuple[str, object, dict] | None:
    """(board name, its DeviceSpec, its device) of this node's device.yml with fingerprint `fp_id`."""
    from mace import settings
    conf = settings.get("MACE_FARM_DEVICE_CONF")
    if not conf:
        return None
    from mace.deploy.devices import load_devices
    specs = dict(load_devices(conf).select(None))
    for d in board_devices(conf):
        if d["fp_id"] == fp_id and d["board"] in specs:
            return d["board"], specs[d["board"]], d
    return None


def _on(spec, device: dict):
    """The board's spec with its OpenCL device picked (MACE_DEVICE)."""
    return spec.model_copy(update={"env": {**spec.env, "MACE_DEVICE": str(device["index"])}})


def judge(got: dict, ref: dict, graph, runtime: str) -> dict:
    """The validation document of mace.tools.validate for outputs produced elsewhere."""
    from mace.tools.validate import DEFAULT_THRESHOLD, metrics
    threshold = graph.meta.get("validation_threshold", {}).get("gpu" if "gpu" in runtime else "cpu",
                                                               DEFAULT_THRESHOLD[runtime])
    outputs = {}
    for name, want in ref.items():
        if name not in got:
            outputs[name] = {"error": "the board returned no such output", "passed": False}
            continue
        m = metrics(got[name], want)
        m["passed"] = bool(m["cosine"] >= threshold)
        outputs[name] = m
    return {"runtime": runtime, "threshold": threshold, "passed": all(o["passed"] for o in outputs.values()),
            "outputs": outputs}


def run(spec: dict, board: tuple) -> dict:
    """job.run on a board: compile there, tune within the budget, validate the board's outputs
    against onnxruntime here, return the board's section (origin marked) and the summary."""
    import numpy as np

    from mace.deploy.remote import make_job, run_on_device
    from mace.farm.node import node_id, section_of
    from mace.ir.modelfile import load as load_model
    from mace.tools.validate import random_inputs, reference_outputs
    name, dspec, device = board
    t0, c0 = time.perf_counter(), time.process_time()
    runtime = spec.get("runtime") or "cpu+gpu"
    with tempfile.TemporaryDirectory(prefix="mace-farm-board-") as tmp:
        tmp = Path(tmp)
        model, onnx, program = tmp / "model.mace", tmp / "model.onnx", tmp / "programs.bin"
        model.write_bytes(spec["model_bytes"])
        onnx.write_bytes(spec["onnx_bytes"])
        graph = load_model(model)
        inputs = random_inputs(graph, 0)
        feeds = {}
        for i, (n, v) in enumerate(inputs.items()):
            np.save(tmp / f"in{i}.npy", v)
            feeds[n] = tmp / f"in{i}.npy"
        job = make_job(model, program, runtime, feeds, warmup=True)
        job.tune_budget = float(spec.get("tune_budget") or 0)
        res = run_on_device(name, _on(dspec, device), job, tmp / "out")
        remote = res["run"]["summary"]
        if remote.get("device_fingerprint") != spec["fp_id"]:
            raise FarmError(f"board {name}: device {device['index']} there is {remote.get('device_fingerprint')}, "
                            f"not {spec['fp_id']}: restart this node's Ray so it advertises what the board has")
        got = {n: np.load(p) for n, p in res["output_files"].items()}
        validation = judge(got, reference_outputs(onnx, graph, inputs), graph, runtime)
        data, count = section_of(program, spec["fp_id"])
        pc = remote.get("program_cache") or {}
        tuned = res["run"].get("tuning")
        return {"section": data, "summary": {
            "model": spec["model"], "fp_id": spec["fp_id"], "node": socket.gethostname(), "node_id": node_id(),
            "pid": os.getpid(), "board": name, "device": remote.get("device"),
            "compiled": int(pc.get("compiled", 0)) + int(pc.get("shared", 0)), "from_cache": pc.get("from_cache", 0),
            "fallback_nodes": len(remote.get("fallback_nodes") or []), "validation": validation,
            "tuning": None if not tuned else {"gain": tuned.get("gain"), "seconds": tuned.get("seconds"),
                                              "before_ms": tuned.get("model_before_ms"),
                                              "after_ms": tuned.get("model_after_ms")},
            "programs": count, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}}


def serves(spec: dict, board: tuple) -> dict:
    """job.serves on a board: each model run there from the merged file (its own section is what
    the deploy path sends), programs from it vs compiled."""
    from mace.deploy.remote import make_job, run_on_device
    from mace.farm.node import node_id
    name, dspec, device = board
    out = {"fp_id": spec["fp_id"], "node_id": node_id(), "board": name, "models": {}}
    with tempfile.TemporaryDirectory(prefix="mace-farm-board-check-") as tmp:
        program = Path(tmp) / "merged.bin"
        program.write_bytes(spec["program_bytes"])
        for mname, blob in spec["models"].items():
            model = Path(tmp) / f"{mname}.mace"
            model.write_bytes(blob)
            res = run_on_device(name, _on(dspec, device), make_job(model, program, "cpu+gpu"), None)
            pc = res["run"]["summary"].get("program_cache") or {}
            out["models"][mname] = {"from_cache": pc.get("from_cache", 0),
                                    "compiled": int(pc.get("compiled", 0)) + int(pc.get("shared", 0))}
    return out


__all__ = ["probe", "board_devices", "find", "run", "serves", "judge"]

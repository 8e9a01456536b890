"""One farm job: one model on one device, on the node that owns the device.

It writes the model and its ONNX reference into a scratch directory of the node, opens the
device by fingerprint, compiles every program (engine init + a warm-up run), tunes within the
budget, validates against onnxruntime, and returns the device's section of the program file
(bytes) with a summary. Nothing is kept on the node.
"""
from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

from mace.farm import FarmError
from mace.farm.node import node_id, section_of


def find_device(fp_id: str) -> int | tuple:
    """The index (in `mace devices`) of the device with fingerprint `fp_id` on this node, or the
    board of this node's device.yml that has it (boards.find)."""
    from mace.farm import boards
    from mace.farm.resources import local_devices
    for d in local_devices():
        if d["fp_id"] == fp_id:
            return d["index"]
    board = boards.find(fp_id)
    if board is not None:
        return board
    raise FarmError(f"device {fp_id} is advertised by node {socket.gethostname()} but not found there: "
                    f"restart that node's Ray with the resources `python -m mace.farm.resources` prints")


def _hold(spec: dict) -> None:
    """Tests only (MACE_TEST_FARM_HOLD=DIR): mark the job started, then wait for DIR/release."""
    from mace import settings
    hold = settings.get("MACE_TEST_FARM_HOLD")
    if not hold:
        return
    d = Path(hold)
    (d / f"{spec['model']}.{spec['fp_id']}.{os.getpid()}.started").write_text(node_id())
    t0 = time.monotonic()
    while not (d / "release").exists() and time.monotonic() - t0 < 300:
        time.sleep(0.05)


def run(spec: dict) -> dict:
    """Compile, tune and validate spec["model"] on device spec["fp_id"]. Returns {"section":
    bytes, "summary": dict}; raises on a failure of this job (the driver reports it)."""
    import mace
    from mace.tools.validate import validate
    t0, c0 = time.perf_counter(), time.process_time()
    _hold(spec)
    index = find_device(spec["fp_id"])
    if isinstance(index, tuple):
        from mace.farm import boards
        return boards.run(spec, index)
    with tempfile.TemporaryDirectory(prefix="mace-farm-") as tmp:
        tmp = Path(tmp)
        model, onnx, program = tmp / "model.mace", tmp / "model.onnx", tmp / "programs.bin"
        model.write_bytes(spec["model_bytes"])
        onnx.write_bytes(spec["onnx_bytes"])
        engine = mace.Engine(model, runtime=spec.get("runtime") or "cpu+gpu", device=index,
                             program=str(program), warmup=True)
        rep = engine.program_cache_report
        summary = {"model": spec["model"], "fp_id": spec["fp_id"], "node": socket.gethostname(),
                   "node_id": node_id(), "pid": os.getpid(),
                   "device": engine.summary().get("device"), "compiled": rep.compiled + rep.shared,
                   "from_cache": rep.from_cache, "fallback_nodes": len(engine.executor.fallback_nodes),
                   "compile_seconds": time.perf_counter() - t0, "tuning": None}
        budget = float(spec.get("tune_budget") or 0)
        if budget > 0:
            from mace.tuning import tune
            res = tune(engine, mode=spec.get("tune_mode", "fast"), budget=budget)
            summary["tuning"] = {"gain": res.to_dict()["gain"], "seconds": res.seconds,
                                 "untuned_ops": res.untuned_ops, "reverted": res.reverted,
                                 "before_ms": res.model_before_s * 1e3, "after_ms": res.model_after_s * 1e3}
        summary["validation"] = validate(engine, onnx, seed=0)
        engine.save_programs()
        engine.close()
        section, summary["programs"] = section_of(program, spec["fp_id"])
        summary["seconds"] = time.perf_counter() - t0
        summary["cpu_seconds"] = time.process_time() - c0
        return {"section": section, "summary": summary}


def serves(spec: dict) -> dict:
    """How the merged program file (spec["program_bytes"]) serves device spec["fp_id"]: each
    model's engine opened on it from a private file, programs from it vs compiled."""
    import mace
    index = find_device(spec["fp_id"])
    if isinstance(index, tuple):
        from mace.farm import boards
        return boards.serves(spec, index)
    out = {"fp_id": spec["fp_id"], "node_id": node_id(), "models": {}}
    with tempfile.TemporaryDirectory(prefix="mace-farm-check-") as tmp:
        program = Path(tmp) / "merged.bin"
        program.write_bytes(spec["program_bytes"])
        for name, blob in spec["models"].items():
            model = Path(tmp) / f"{name}.mace"
            model.write_bytes(blob)
            from mace.runtime.opencl import shared
            shared.forget_programs()          # what a new process on the device would do
            with mace.Engine(model, runtime="cpu+gpu", device=index, program=str(program)) as e:
                r = e.program_cache_report
                out["models"][name] = {"from_cache": r.from_cache, "compiled": r.compiled + r.shared}
    return out


def check_queued(spec: dict) -> dict:
    """A section a device queued in a store, verified on this node's device (mace/farm/queued.py)."""
    from mace.farm import queued
    return queued.check(spec, find_device(spec["fp_id"]))


__all__ = ["run", "serves", "check_queued", "find_device", "node_id", "section_of"]

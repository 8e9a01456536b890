"""On a farm node: one section a device queued in a program store, checked on the device it was
made for (`mace farm verify`, verify.py): every model rebuilt from source there, then re-validated
on the queued section alone."""
from __future__ import annotations

import tempfile
from pathlib import Path

from mace.farm import FarmError


def _open(index: int, model: Path, runtime: str, program: Path):
    import mace
    from mace.runtime.opencl import shared
    shared.forget_programs()                 # what a new process on the device would do
    return mace.Engine(model, runtime=runtime, device=index, program=str(program), warmup=True)


def _model(tmp: Path, name: str, m: dict, queued: bytes, index: int, fp_id: str) -> tuple[dict, set]:
    """One model rebuilt from source, then re-validated on the queued section alone."""
    from mace.farm.node import section_of
    from mace.programcache.format import decode
    from mace.tools.validate import validate
    model, onnx = tmp / f"{name}.mace", tmp / f"{name}.onnx"
    model.write_bytes(m["model_bytes"])
    onnx.write_bytes(m["onnx_bytes"])
    runtime = m.get("runtime") or "gpu"
    rebuilt = tmp / f"{name}.rebuilt.bin"
    with _open(index, model, runtime, rebuilt) as e:
        e.save_programs()
    needed = {k for f, k in decode(section_of(rebuilt, fp_id)[0], str(rebuilt)).data.programs if f == fp_id} \
        if rebuilt.exists() else set()
    program = tmp / f"{name}.queued.bin"
    program.write_bytes(queued)
    with _open(index, model, runtime, program) as e:
        rep = e.program_cache_report
        res = {"from_cache": rep.from_cache, "compiled": rep.compiled + rep.shared,
               "rejected": len(rep.rejected or []), "validation": validate(e, onnx, seed=0)}
    return res, needed


def check(spec: dict, where) -> dict:
    """Verify queued section spec["section"] of device spec["fp_id"] on this node's device
    (`where`: its index; a board is not supported). Returns {"accepted", "reasons", "models"}."""
    from mace.farm.node import node_id
    from mace.programcache.format import decode, encode
    fp_id = spec["fp_id"]
    out = {"fp_id": fp_id, "path": spec["path"], "node_id": node_id(), "accepted": False, "reasons": [],
           "models": {}}
    if isinstance(where, tuple):
        raise FarmError(f"{spec['path']}: device {fp_id} is a board of this node: queued sections are verified "
                        f"on OpenCL devices of the nodes themselves")
    try:
        data = decode(spec["section"], spec["path"]).data
    except Exception as exc:               # noqa: BLE001 - any decoding failure is a rejection
        out["reasons"].append(f"not a program cache section ({' '.join(str(exc).split())[:200]})")
        return out
    if set(data.sections) != {fp_id}:
        out["reasons"].append(f"holds sections {sorted(data.sections)}, not device {fp_id} alone")
        return out
    held = {k for f, k in data.programs if f == fp_id}
    if not held:
        out["reasons"].append("holds no programs")
        return out
    data.signatures.clear()                # the device's signatures: its key is not trusted here
    needed: set = set()
    with tempfile.TemporaryDirectory(prefix="mace-farm-verify-") as tmp:
        for name, m in spec["models"].items():
            res, keys = _model(Path(tmp), name, m, encode(data), where, fp_id)
            out["models"][name] = res
            needed |= keys
            if not res["validation"]["passed"]:
                worst = min((o.get("cosine", 0.0) for o in res["validation"]["outputs"].values()), default=0.0)
                out["reasons"].append(f"{name}: validation failed on it (cosine {worst:.6f} < "
                                      f"{res['validation']['threshold']})")
            if res["compiled"] or res["rejected"]:
                out["reasons"].append(f"{name}: {res['compiled']} programs compiled, {res['rejected']} rejected: "
                                      f"the section does not hold what the model needs, or its binaries do not load")
    unknown = held - needed
    if unknown:
        out["reasons"].append(f"{len(unknown)} programs no model of the config builds (cannot be checked): "
                              + ", ".join(sorted(k.split("|")[0] for k in unknown)[:5]))
    out["accepted"] = not out["reasons"]
    return out


__all__ = ["check"]

"""An existing build, described without touching it.

`mace report --config` reads what `mace convert --config` already wrote (models, per-target and
merged program files, bundles) instead of building again: a rebuild would replace tuned program
files with untuned ones. `read_build` returns the same document `mace.tools.build.build` does,
or None when the build is not complete.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger("mace.report")


def _target_from_file(path: Path, library: str, local: list) -> dict:
    m = re.fullmatch(re.escape(library) + r"_compiled_opencl_kernel\.(.+)\.([^.]+)\.bin", path.name)
    dev, soc = (m.group(1), m.group(2)) if m else (path.stem, "unknown")
    for t in local:
        if t.device_name == dev and t.soc == soc:
            d = t.to_dict()
            break
    else:                                    # a remote board's file or a device not on this machine
        d = {"device_name": dev, "soc": soc, "description": f"{dev} ({soc}, not on this machine)"}
    d.update({"file": str(path), "models": {}, "tuning": None, "seconds": None})
    from mace.programcache.inspect import inspect_file
    info = inspect_file(path)
    d["programs"], d["bytes"], d["tuning_records"] = len(info["programs"]), info["size"], len(info["tuning"])
    return d


def _local_targets() -> list:
    from mace.tools.build import local_targets
    try:
        return local_targets()
    except Exception as exc:                # noqa: BLE001 - device details are informational here
        log.info("OpenCL devices not listed (%s): targets described from their file names", exc)
        return []


def read_build(loaded, build_dir=None, embed_wanted: bool = False) -> dict | None:
    """The convert document of the build under `build_dir` (default: ./build beside mace.yml),
    or None when a model file or, for GPU models, the merged program file is missing."""
    from mace.convert.deployment import output_dir
    from mace.ir import modelfile
    from mace.tools.build import kernel_file_name
    cfg = loaded.config
    lib_dir = output_dir(loaded, Path(build_dir) if build_dir else None)
    models = []
    for name, spec in cfg.models.items():
        out = lib_dir / "model" / f"{name}.mace"
        if not out.is_file():
            return None
        g = modelfile.load(out)
        models.append({"model": name, "onnx": str(loaded.model_path(name)), "output": str(out),
                       "nodes": len(g.nodes), "sha256": g.meta["model_sha256"], "runtime": spec.runtime,
                       "data_type": spec.data_type, "obfuscated": spec.obfuscate})
    opencl = lib_dir / "opencl"
    merged = opencl / kernel_file_name(cfg.library_name)
    gpu = any("gpu" in m["runtime"] for m in models)
    if gpu and not merged.is_file():
        return None
    from mace.programcache.inspect import inspect_file
    local = _local_targets() if gpu else []
    per_target = sorted(p for p in opencl.glob(f"{cfg.library_name}_compiled_opencl_kernel.*.*.bin")
                        if p != merged)
    targets = [_target_from_file(p, cfg.library_name, local) for p in per_target]
    doc = {"config": str(loaded.path), "library_name": cfg.library_name,
           "target_abi": cfg.target_abis[0] if cfg.target_abis else "host", "enable_opencl": gpu,
           "build_dir": str(lib_dir), "target_socs": [t["soc"] for t in targets], "tune": False,
           "embed": False, "device_conf": None, "models": models, "targets": targets, "merged": None,
           "bundles": [], "remote": None, "skipped_socs": [], "seconds": 0.0, "existing": True}
    if merged.is_file():
        info = inspect_file(merged)
        doc["merged"] = {"file": str(merged), "inputs": [t["file"] for t in targets],
                         "sections": len(info.get("sections", [])), "programs": len(info["programs"]),
                         "tuning": len(info["tuning"]), "bytes": info["size"]}
    doc["tune"] = any(t["tuning_records"] for t in targets) or bool(doc["merged"] and doc["merged"]["tuning"])
    for m in models:
        bundle = lib_dir / f"{m['model']}.mace-bundle"
        if bundle.is_file():
            doc["embed"] = True
            doc["bundles"].append(_bundle_row(m, bundle, lib_dir))
    return doc


def _bundle_row(m: dict, bundle: Path, lib_dir: Path) -> dict:
    from mace.tools.build import sanitize
    module = lib_dir / "embed" / f"{sanitize(m['model']).replace('-', '_').replace('.', '_')}_mace_bundle.py"
    size = bundle.stat().st_size
    model_bytes = Path(m["output"]).stat().st_size
    return {"model": m["model"], "bundle": str(bundle), "bytes": size, "module": str(module),
            "model_bytes": model_bytes, "program_bytes": max(0, size - model_bytes)}


__all__ = ["read_build"]

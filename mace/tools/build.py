"""Building for target devices (`mace convert --config mace.yml --target-socs ...`).

After conversion, for every target OpenCL device of this machine: compile every program of
every GPU model (engine init + one warm-up run, which saves the binaries), optionally tune, and
write MACE's per-target file

    build/<library>/opencl/<library>_compiled_opencl_kernel.<device_name>.<soc>.bin

plus one merged multi-device file `build/<library>/opencl/<library>_compiled_opencl_kernel.bin`
(our program cache format holds one section per device, so the merge never has to refuse two
devices as MACE's `gen_opencl.py` does). `--embed` then writes single-file bundles.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from mace import fileio, settings
from mace.errors import ConfigError, DeviceError, MaceError
from mace.tools.progress import sink

log = logging.getLogger("mace.build")

TARGET_ABIS = ("host", "armeabi-v7a", "arm64-v8a", "arm64", "aarch64", "armhf")

# platform vendor / name fragments -> SoC-like family names (MACE uses ro.board.platform)
_SOC_NAMES = (("pocl", "pocl"), ("portable computing language", "pocl"), ("nvidia", "nvidia"),
              ("advanced micro devices", "amd"), ("amd", "amd"), ("intel", "intel"),
              ("qualcomm", "qualcomm"), ("arm", "mali"), ("apple", "apple"),
              ("imagination", "powervr"), ("mesa", "mesa"), ("rusticl", "mesa"))


def sanitize(text: str, lower: bool = False) -> str:
    """A file-name-safe token: '(R)'/'(TM)' dropped, runs of other characters -> '-'."""
    text = re.sub(r"\((r|tm|c)\)", "", text.strip(), flags=re.I)
    text = re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-") or "unknown"
    return text.lower() if lower else text


def device_name(dev) -> str:
    """MACE's <device_name> (there: ro.product.model without spaces): CL_DEVICE_NAME, sanitized."""
    return sanitize(dev.name)


def soc_name(dev) -> str:
    """MACE's <soc> (there: ro.board.platform, lower-case): the OpenCL platform's family."""
    hay = f"{dev.platform.vendor} {dev.platform.name}".lower()
    for needle, name in _SOC_NAMES:
        if re.search(rf"\b{re.escape(needle)}\b", hay):
            return name
    return sanitize(dev.platform.vendor or dev.platform.name, lower=True)


def kernel_file_name(library: str, device: str | None = None, soc: str | None = None) -> str:
    if device is None:
        return f"{library}_compiled_opencl_kernel.bin"
    return f"{library}_compiled_opencl_kernel.{device}.{soc}.bin"


@dataclass
class Target:
    index: int
    device: object                      # pyopencl.Device
    device_name: str
    soc: str
    description: str

    def to_dict(self) -> dict:
        d = self.device
        return {"index": self.index, "device_name": self.device_name, "soc": self.soc,
                "description": self.description, "opencl_version": d.version.strip(),
                "driver_version": d.driver_version.strip(), "vendor": d.vendor.strip(),
                "platform": d.platform.name.strip(), "platform_vendor": d.platform.vendor.strip(),
                "compute_units": int(d.max_compute_units),
                "global_mem_bytes": int(d.global_mem_size),
                "max_work_group_size": int(d.max_work_group_size)}


def local_targets() -> list[Target]:
    from mace.runtime.opencl.device import describe, list_devices
    return [Target(i, d, device_name(d), soc_name(d), describe(d)) for i, d in enumerate(list_devices())]


def select_targets(socs: list[str] | None) -> tuple[list[Target], list[str]]:
    """Local targets matching `socs` (None/[]/'all' -> all). Each entry matches a device by index,
    SoC name, device name, or a substring of 'platform / device'. Returns (targets, entries that
    matched no local device)."""
    all_targets = local_targets()
    if not all_targets:
        raise DeviceError("no OpenCL device found: install pocl-binary-distribution (pip) or a GPU "
                          "driver's ICD, or build with --no-enable-opencl")
    wanted = [s.strip() for s in (socs or []) if s and s.strip()]
    if not wanted or any(s.lower() == "all" for s in wanted):
        return all_targets, []
    chosen: list[Target] = []
    missing = []
    for s in wanted:
        low = s.lower()
        hits = [t for t in all_targets if (s.isdigit() and int(s) == t.index) or low == t.soc.lower()
                or low == t.device_name.lower() or low in t.description.lower()]
        if not hits:
            missing.append(s)
        for t in hits:
            if t not in chosen:
                chosen.append(t)
    return chosen, missing


def parse_socs(text) -> list[str] | None:
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        out = [str(x) for x in text]
    else:
        out = [x for x in re.split(r"[,\s]+", str(text))]
    out = [x.strip() for x in out if x.strip()]
    return out or None


@dataclass
class TargetBuild:
    target: Target
    path: Path
    models: dict = field(default_factory=dict)
    tuning: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        from mace.programcache.inspect import inspect_file
        d = {**self.target.to_dict(), "file": str(self.path), "models": self.models,
             "tuning": self.tuning or None, "seconds": self.seconds}
        try:
            info = inspect_file(self.path)
            d["programs"] = len(info["programs"])
            d["bytes"] = info["size"]
        except OSError:
            d["programs"], d["bytes"] = 0, 0
        return d


def _gpu_models(results) -> list:
    return [r for r in results if "gpu" in r.runtime]


def _ensure_section(path: Path, target: Target) -> None:
    """A per-target file always exists and names its device, even when no program was compiled
    (a model whose ops all run on the CPU fallback)."""
    from mace.programcache import DeviceFingerprint
    from mace.programcache.maintenance import merge_files
    merge_files(path, [path], missing_ok=True,
                add_sections=[DeviceFingerprint.from_cl_device(target.device)])


def compile_target(target: Target, results, out_dir: Path, library: str, tune: bool = False,
                   tune_mode: str = "normal", tune_budget: float | None = None,
                   progress=None) -> TargetBuild:
    """Compile (and optionally tune) every GPU model for one local device into its file."""
    from mace.convert.deployment import inside
    path = inside(out_dir, out_dir / kernel_file_name(library, target.device_name, target.soc), library)
    path.unlink(missing_ok=True)          # a build starts from nothing: no stale programs or records
    try:
        return _compile_into(TargetBuild(target, path), results, tune, tune_mode, tune_budget, progress)
    except BaseException:
        path.unlink(missing_ok=True)      # a failed target leaves no half-built file to merge or ship
        raise


def _compile_into(build: TargetBuild, results, tune, tune_mode, tune_budget, progress) -> TargetBuild:
    import mace
    target, path = build.target, build.path
    t0 = time.perf_counter()
    tune_fn = _tuner() if tune else None
    for r in _gpu_models(results):
        t1 = time.perf_counter()
        engine = mace.Engine(r.output, runtime="cpu+gpu", device=target.index, program=str(path), warmup=True)
        rep = engine.program_cache_report
        # compiled for this target: by this engine, or by an earlier engine of the process (shared)
        entry = {"init_seconds": engine.init_seconds, "compiled": rep.compiled + rep.shared if rep else 0,
                 "from_cache": rep.from_cache if rep else 0,
                 "fallback_nodes": len(engine.executor.fallback_nodes),
                 "nodes": len(engine.graph.nodes)}
        if tune_fn is not None:
            res = tune_fn(engine, mode=tune_mode, budget=tune_budget, progress=None)
            engine.save_programs()
            build.tuning[r.name] = res.to_dict() if hasattr(res, "to_dict") else res
        entry["seconds"] = time.perf_counter() - t1
        build.models[r.name] = entry
        log.info("%s on %s: %d programs compiled, %d from %s", r.name, target.description,
                 entry["compiled"], entry["from_cache"], path.name)
        if progress:
            progress(target, r.name)
    _ensure_section(path, target)
    build.seconds = time.perf_counter() - t0
    return build


def _compile_all(targets: list[Target], compile_one) -> tuple[list[TargetBuild], list[dict]]:
    """Every target that builds; one that fails is reported (its partial file removed) and the
    others go on. All failing is an error."""
    builds, failed = [], []
    for t in targets:
        try:
            builds.append(compile_one(t))
        except Exception as exc:      # noqa: BLE001 - a driver's failure is that device's, not the build's
            log.warning("target %s (%s / %s) failed, the other targets go on: %s", t.index, t.soc,
                        t.device_name, exc)
            failed.append({"index": t.index, "soc": t.soc, "device_name": t.device_name,
                           "description": t.description, "error": f"{type(exc).__name__}: {exc}"})
    if failed and not builds:
        raise DeviceError(f"every target failed; first: {failed[0]['description']}: {failed[0]['error']}: "
                          f"check the device with `mace devices` or build for others with --target-socs")
    return builds, failed


def _tuner():
    try:
        from mace.tuning import tune
    except ImportError as exc:
        raise MaceError(f"--tune needs mace.tuning, which this mace does not have ({exc}): build "
                        f"without --tune") from None
    return tune


def merge_files(paths: list[Path], out: Path) -> dict:
    """One multi-device program file from per-target files (sections never conflict: each is
    keyed by its device fingerprint)."""
    from mace.programcache.maintenance import merge_files as merge_cache_files
    res = merge_cache_files(out, paths)
    for f in res.findings:
        log.warning("%s", f.message)
    return {"file": str(out), "inputs": [str(p) for p in paths], "sections": res.stats["sections"],
            "programs": res.stats["programs"], "tuning": res.stats["tuning"], "bytes": res.stats["bytes"]}


def embed(results, library: str, lib_dir: Path, program_file: Path | None, targets: list[dict]) -> list[dict]:
    """Per model: `<lib_dir>/<model>.mace-bundle` and `<lib_dir>/embed/<model>_mace_bundle.py`."""
    from mace import bundle
    from mace.convert.deployment import inside
    from mace.programcache.atomic import read_cache
    program = read_cache(program_file) if program_file and program_file.is_file() else b""
    out = []
    for r in results:
        model = Path(r.output).read_bytes()
        prog = program if "gpu" in r.runtime else b""
        data = bundle.encode(model, prog, name=r.name, library=library, runtime=r.runtime,
                             data_type=r.data_type,
                             targets=[{"device_name": t["device_name"], "soc": t["soc"]} for t in targets])
        path = inside(lib_dir, lib_dir / f"{r.name}{bundle.SUFFIX}", library)
        path.parent.mkdir(parents=True, exist_ok=True)
        fileio.write_atomic(path, data)
        module = inside(lib_dir, lib_dir / "embed" / f"{sanitize(r.name).replace('-', '_').replace('.', '_')}"
                                                    f"_mace_bundle.py", library)
        bundle.write_module(module, data)
        out.append({"model": r.name, "bundle": str(path), "bytes": len(data), "module": str(module),
                    "model_bytes": len(model), "program_bytes": len(prog)})
    return out


def remote_builder(device_conf: str):
    """mace.deploy.remote.build_remote when it exists, else builds through mace.deploy.remote.deploy
    (run each model once on each remote device, pull its programs back), else a clear error."""
    try:
        from mace.deploy import remote
    except ImportError:
        remote = None
    fn = getattr(remote, "build_remote", None) if remote is not None else None
    if fn is not None:
        return fn
    if remote is not None and callable(getattr(remote, "deploy", None)):
        return build_remote_via_deploy
    raise MaceError(f"--device-conf {device_conf}: remote targets need mace.deploy, which this mace "
                    f"does not have: build for local devices with --target-socs")


def remote_target_names(spec) -> tuple[str, str]:
    """MACE's (<device_name>, <soc>) of a device.yml entry: `models` without spaces, the first
    of `target_socs` (lower-case)."""
    dev = sanitize(re.sub(r"\s+", "", str(spec.models)))
    soc = sanitize(spec.target_socs[0], lower=True) if spec.target_socs else "unknown"
    return dev, soc


def build_remote_via_deploy(device_conf, config, results, target_abi=None, target_socs=None, tune=False,
                            build_dir=None) -> dict:
    """Per remote device of device.yml whose target_socs match (all when none/'all' are given):
    run every GPU model once there with warm-up (`mace.deploy.remote.deploy`), which merges the
    device's compiled programs into `opencl/<lib>_compiled_opencl_kernel.<device>.<soc>.bin`."""
    from mace.convert.deployment import inside
    from mace.deploy.devices import load_devices
    from mace.deploy.remote import deploy
    conf = load_devices(device_conf)
    wanted = {s.lower() for s in (target_socs or [])}
    everything = not wanted or "all" in wanted
    chosen = [(n, spec) for n, spec in conf.devices.items()
              if everything or wanted & {s.lower() for s in spec.target_socs}]
    if target_abi:
        chosen = [(n, spec) for n, spec in chosen if not spec.target_abis or target_abi in spec.target_abis]
    if tune:
        log.warning("remote devices are compiled, not tuned: tune there with `mace tune`")
    library = config.config.library_name
    out_dir = Path(build_dir) / "opencl"
    out_dir.mkdir(parents=True, exist_ok=True)
    devices, files = [], []
    for name, spec in chosen:
        dev, soc = remote_target_names(spec)
        path = inside(out_dir, out_dir / kernel_file_name(library, dev, soc), library)
        path.unlink(missing_ok=True)
        runs = {}
        for r in _gpu_models(results):
            [res] = deploy(conf, name, r.output, program=path, runtime="gpu", warmup=True)
            if not res.get("ok"):
                raise MaceError(f"remote device {name}: {res.get('error')}")
            run = (res.get("run") or {}).get("summary", {}).get("program_cache") or {}
            runs[r.name] = {"compiled": run.get("compiled", 0), "from_cache": run.get("from_cache", 0),
                            "seconds": (res.get("timings") or {}).get("total_s")}
        devices.append({"device": name, "address": spec.address, "device_name": dev, "soc": soc,
                        "file": str(path), "models": runs})
        if path.is_file():
            files.append(str(path))
    return {"device_conf": str(conf.path), "devices": devices, "files": files}


def env_socs() -> list[str] | None:
    """The target when neither --target-socs nor the yml names any: the device MACE_DEVICE
    names, else None (every local device)."""
    return [settings.get("MACE_DEVICE")] if settings.get("MACE_DEVICE") else None


def build(config, target_socs=None, tune: bool = False, enable_opencl: bool | None = None,
          target_abi: str | None = None, build_dir=None, embed_bundles: bool = False,
          device_conf: str | None = None, model_name: str | None = None, progress=None,
          tune_mode: str = "normal", tune_budget: float | None = None, calibration=None) -> dict:
    """The whole `mace convert --config` workflow; returns the --json document (`progress`:
    see mace.tools.progress)."""
    from mace.config import load_config
    from mace.convert.deployment import convert_config, inside, output_dir
    t0 = time.perf_counter()
    loaded = load_config(config)
    cfg = loaded.config
    if target_abi is not None and target_abi not in TARGET_ABIS:
        raise ConfigError(f"--target-abi {target_abi!r}: unknown ABI: choose one of {', '.join(TARGET_ABIS)}")
    socs = parse_socs(target_socs) if target_socs is not None else parse_socs(cfg.target_socs)
    remote_fn = remote_builder(device_conf) if device_conf else None
    if tune:
        _tuner()                                  # fail before converting, not after
    if enable_opencl is None:
        enable_opencl = bool(socs) or tune or bool(device_conf)
    socs = socs or (env_socs() if enable_opencl and not device_conf else None)
    lib_dir = output_dir(loaded, Path(build_dir) if build_dir else None)
    names = [model_name] if model_name else list(cfg.models)
    gpu_wanted = enable_opencl and any("gpu" in cfg.models[n].runtime for n in names if n in cfg.models)
    targets, missing = [], []
    if gpu_wanted:                                # resolve the targets before any work
        if device_conf:       # local devices only when named (or 'all'); other SoCs are remote
            targets = select_targets(socs)[0] if socs else []
        else:
            targets, missing = select_targets(socs)
            if missing and not targets:
                names_ = "; ".join(f"{t.index}: {t.soc} / {t.device_name}" for t in local_targets())
                raise DeviceError(f"target_socs {', '.join(missing)}: no such OpenCL device on this "
                                  f"machine: choose from [{names_}] (or 'all'), or give "
                                  f"--device-conf for remote devices")
            if missing:
                log.warning("target socs %s: not present on this machine, skipped", ", ".join(missing))
    bar = sink(progress)
    with bar:
        task = bar.add("converting", len(names))
        results = convert_config(loaded, Path(build_dir) if build_dir else None, model_name,
                                 progress=lambda name: bar.advance(task, item=name), calibration=calibration)
        doc: dict = {"config": str(loaded.path), "library_name": cfg.library_name,
                     "target_abi": target_abi or (cfg.target_abis[0] if cfg.target_abis else "host"),
                     "enable_opencl": bool(enable_opencl), "build_dir": str(lib_dir),
                     "target_socs": socs, "tune": bool(tune), "embed": bool(embed_bundles),
                     "device_conf": str(device_conf) if device_conf else None,
                     "models": [{"model": r.name, "onnx": str(r.onnx_path), "output": str(r.output),
                                 "nodes": r.nodes, "sha256": r.sha256, "runtime": r.runtime,
                                 "data_type": r.data_type, "obfuscated": cfg.models[r.name].obfuscate}
                                for r in results],
                     "targets": [], "failed_targets": [], "merged": None, "bundles": [], "remote": None,
                     "skipped_socs": missing}
        if gpu_wanted and _gpu_models(results):
            out_dir = lib_dir / "opencl"
            paths = []
            if device_conf:
                doc["remote"] = remote_fn(device_conf=device_conf, config=loaded, results=results,
                                          target_abi=target_abi, target_socs=socs, tune=tune,
                                          build_dir=lib_dir)
            if targets:
                n = len(targets) * len(_gpu_models(results))
                ctask = bar.add("compiling" + (" + tuning" if tune else ""), n)
                builds, doc["failed_targets"] = _compile_all(
                    targets, lambda t: compile_target(t, results, out_dir, cfg.library_name, tune, tune_mode,
                                                      tune_budget, progress=lambda tg, m: bar.advance(
                                                          ctask, item=f"{m} on {tg.soc}")))
                doc["targets"] = [b.to_dict() for b in builds]
                paths = [b.path for b in builds]
            remote = doc.get("remote")
            if isinstance(remote, dict):
                paths += [Path(p) for p in remote.get("files", []) if Path(p).is_file()]
            if paths:
                doc["merged"] = merge_files(paths, inside(lib_dir, out_dir / kernel_file_name(cfg.library_name),
                                                          loaded.path))
        if embed_bundles:
            merged = Path(doc["merged"]["file"]) if doc["merged"] else None
            doc["bundles"] = embed(results, cfg.library_name, lib_dir, merged, doc["targets"])
    doc["seconds"] = time.perf_counter() - t0
    return doc


__all__ = ["build", "select_targets", "local_targets", "compile_target", "merge_files", "embed",
           "device_name", "soc_name", "sanitize", "kernel_file_name", "TARGET_ABIS", "Target"]

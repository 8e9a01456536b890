"""Collecting what the report shows: saved `--json` results first (`--from-json`), then the
steps still missing are run (convert + build for the target devices, benchmark, validate
against the ONNX model with random inputs within input_ranges)."""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from mace.errors import ConfigError
from mace.fileio import read_bounded

log = logging.getLogger("mace.report")

RESULTS_KIND = "mace-report-results"
SAVED_JSON_MAX_BYTES = 256 * 1024 * 1024     # a saved --json document (benchmark samples included)


def classify(doc: dict) -> str:
    """Which saved --json document this is: convert, benchmark, validate or results."""
    if not isinstance(doc, dict):
        return "unknown"
    if doc.get("kind") == RESULTS_KIND:
        return "results"
    if "library_name" in doc and "models" in doc and "targets" in doc:
        return "convert"
    if "init" in doc and "latency" in doc and "profile" in doc:
        return "benchmark"
    if "outputs" in doc and "threshold" in doc and "passed" in doc:
        return "validate"
    return "unknown"


def _model_key(path_or_name) -> str:
    return Path(str(path_or_name)).name.split(".mace")[0] if path_or_name else "model"


def _new_results() -> dict:
    return {"kind": RESULTS_KIND, "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "convert": None, "benchmarks": {}, "validations": {}, "commands": [], "config": None,
            "environment": _environment()}


def _environment() -> dict:
    from mace import __version__
    env = {"mace": __version__, "python": sys.version.split()[0], "host": platform.node(),
           "os": platform.platform(), "cpu_count": os.cpu_count()}
    try:
        import pyopencl
        env["pyopencl"] = pyopencl.VERSION_TEXT
    except Exception:       # noqa: BLE001 - informational only
        pass
    return env


def load_saved(paths: list, results: dict) -> None:
    for p in paths:
        try:
            doc = json.loads(read_bounded(p, SAVED_JSON_MAX_BYTES))
        except FileNotFoundError:
            raise ConfigError(f"--from-json {p}: no such file") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--from-json {p}: not a JSON document ({exc}): save it with --json") from None
        kind = classify(doc)
        if kind == "results":
            for k in ("convert", "config"):
                if doc.get(k):
                    results[k] = doc[k]
            results["benchmarks"].update(doc.get("benchmarks", {}))
            for m, v in doc.get("validations", {}).items():
                results["validations"].setdefault(m, {}).update(v)
            results["commands"] += doc.get("commands", [])
        elif kind == "convert":
            results["convert"] = doc
            results["commands"].append({"command": convert_command(doc),
                                        "source": str(p), "note": "read from saved --json"})
        elif kind == "benchmark":
            results["benchmarks"][_model_key(doc.get("model"))] = doc
            results["commands"].append({"command": f"mace benchmark {doc['model']} --runtime {doc['runtime']} --json",
                                        "source": str(p), "note": "read from saved --json"})
        elif kind == "validate":
            results["validations"].setdefault(_model_key(doc.get("model")), {})[doc["runtime"]] = doc
            results["commands"].append({"command": f"mace validate {doc.get('model')} --reference "
                                        f"{doc.get('reference')} --runtime {doc['runtime']} --json",
                                        "source": str(p), "note": "read from saved --json"})
        else:
            raise ConfigError(f"--from-json {p}: not a saved result of mace convert, benchmark, validate "
                              f"or report (results.json)")


def convert_command(doc: dict) -> str:
    """The `mace convert` command line that produced a convert --json document."""
    cmd = f"mace convert --config {doc['config']}"
    if doc.get("target_socs"):
        cmd += f" --target-socs {','.join(doc['target_socs'])}"
    elif doc.get("enable_opencl"):
        cmd += " --enable-opencl"
    if doc.get("device_conf"):
        cmd += f" --device-conf {doc['device_conf']}"
    if doc.get("tune"):
        cmd += " --tune"
    if doc.get("embed"):
        cmd += " --embed"
    if doc.get("build_dir") and Path(doc["build_dir"]).parent != Path(doc["config"]).parent / "build":
        cmd += f" --build-dir {Path(doc['build_dir']).parent}"
    return cmd + " --json"


def _config_summary(loaded) -> dict:
    cfg = loaded.config
    models = {}
    for name, spec in cfg.models.items():
        g = spec.graph()
        models[name] = {"platform": spec.platform, "model_file_path": str(loaded.model_path(name)),
                        "input_tensors": g.input_tensors, "input_shapes": g.input_shapes,
                        "input_ranges": g.input_ranges or ["-1,1"], "output_tensors": g.output_tensors,
                        "output_shapes": g.output_shapes, "runtime": spec.runtime,
                        "data_type": spec.data_type, "obfuscate": spec.obfuscate,
                        "thresholds": {"cpu": spec.threshold("cpu"), "gpu": spec.threshold("gpu")}}
    return {"path": str(loaded.path), "library_name": cfg.library_name, "target_abis": cfg.target_abis,
            "target_socs": cfg.target_socs, "models": models}


def collect(config=None, from_json=(), target_socs=None, build_dir=None, runtime="gpu", runs=50,
            init_runs=3, top=10, seed=0, steps=None, tune=False, out_dir="report") -> dict:
    """Everything the report shows: saved results first, then the existing build (never rebuilt
    over: its program files may hold tuning), then whatever is missing is run."""
    results = _new_results()
    load_saved(list(from_json or []), results)
    step = steps or (lambda name: None)
    loaded = None
    if config:
        from mace.config import load_config
        loaded = load_config(config)
        results["config"] = _config_summary(loaded)
    if results["convert"] is None and loaded is not None:
        results["convert"] = _read_or_build(loaded, config, target_socs, build_dir, tune, out_dir, step)
        results["commands"].append({"command": convert_command(results["convert"]),
                                    **({"note": "read from the existing build", "source": results["convert"]
                                        ["build_dir"]} if results["convert"].get("existing") else {})})
    conv = results["convert"]
    if conv is None:
        if not results["benchmarks"] and not results["validations"]:
            raise ConfigError("mace report needs --config mace.yml or saved results (--from-json)")
        return results
    program = _program_for_benchmark(conv)
    for m in conv["models"]:
        name, model_path = m["model"], m["output"]
        rt = runtime if ("gpu" in m["runtime"] or runtime == "cpu") else "cpu"
        if name not in results["benchmarks"]:
            if not Path(model_path).is_file():
                log.warning("%s: model file missing, benchmark skipped", model_path)
            else:
                from mace.tools.benchmark import benchmark
                step(f"benchmark {name} ({rt})")
                tmp = None
                if program and rt != "cpu":
                    tmp = Path(tempfile.mkdtemp(prefix="mace-report-")) / Path(program).name
                    shutil.copyfile(program, tmp)       # the shipped file stays untouched
                try:
                    results["benchmarks"][name] = benchmark(model_path, runtime=rt, program=tmp, runs=runs,
                                                            top=top, init_runs=init_runs)
                finally:
                    if tmp is not None:
                        shutil.rmtree(tmp.parent, ignore_errors=True)
                results["commands"].append({"command": f"mace benchmark {model_path} --runtime {rt}"
                                            + (f" --program {program}" if program and rt != "cpu" else "")
                                            + f" --runs {runs} --init-runs {init_runs} --top {top} --json"})
        runtimes = ["cpu", "gpu"] if m["runtime"] == "cpu+gpu" else [m["runtime"]]
        have = results["validations"].setdefault(name, {})
        for r in runtimes:
            if r in have or not Path(model_path).is_file() or not Path(m["onnx"]).is_file():
                continue
            step(f"validate {name} ({r}) against {Path(m['onnx']).name}")
            have[r] = _validate(model_path, m["onnx"], r, program, seed)
            results["commands"].append({"command": f"mace validate {model_path} --reference {m['onnx']} "
                                        f"--runtime {r}" + (f" --program {program}" if program and r != "cpu" else "")
                                        + f" --seed {seed} --json"})
    return results


def _read_or_build(loaded, config, target_socs, build_dir, tune, out_dir, step) -> dict:
    """The existing build when it is complete (and no --tune or --target-socs asks for another),
    else a new one: in the build directory when it holds no program file yet, else under the
    report's directory, so shipped (possibly tuned) program files are never replaced."""
    from mace.convert.deployment import output_dir
    from mace.tools.build import build
    from mace.tools.report.existing import read_build
    if not tune and target_socs is None:
        doc = read_build(loaded, build_dir)
        if doc is not None:
            step("read the existing build")
            return doc
    opencl = output_dir(loaded, Path(build_dir) if build_dir else None) / "opencl"
    if opencl.is_dir() and any(opencl.glob("*.bin")):
        build_dir = Path(out_dir) / "build"
        log.warning("%s holds program files: the report builds its own under %s and leaves them untouched",
                    opencl, build_dir)
    step("convert + build" + (" + tune" if tune else "") + " for the target devices")
    socs = target_socs if target_socs is not None else (",".join(loaded.config.target_socs)
                                                        if loaded.config.target_socs else "all")
    return build(config, target_socs=socs, enable_opencl=True, build_dir=build_dir, tune=tune)


def _program_for_benchmark(conv: dict) -> str | None:
    for t in conv.get("targets") or []:
        if Path(t["file"]).is_file():
            return t["file"]
    merged = conv.get("merged")
    if merged and Path(merged["file"]).is_file():
        return merged["file"]
    return None


def _validate(model_path, onnx_path, runtime, program, seed) -> dict:
    import mace
    from mace.programcache.atomic import read_cache
    from mace.tools.quantcheck import validate
    from mace.tools.validate import random_inputs
    prog = read_cache(Path(program)) if program and runtime != "cpu" else None   # read-only
    engine = mace.Engine(model_path, runtime=runtime, program=prog)
    feeds = random_inputs(engine.graph, seed)
    res = validate(engine, onnx_path, None, seed, feeds)
    res["model"], res["reference"], res["seed"] = str(model_path), str(onnx_path), seed
    res["input_ranges"] = engine.graph.meta.get("input_ranges", {})
    if engine.program_cache_report is not None:
        res["program_cache"] = engine.program_cache_report.to_dict()
    return res

"""What the report says, section by section, as document blocks (mace.tools.report.document);
the plots a section needs are drawn on the way (mace.tools.report.plots)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mace.errors import MaceError
from mace.tools.report.document import CODE, IMG, H, P, T, _fmt, human
from mace.tools.report.plots import plot_init, plot_latency, plot_ops, plot_validation


@dataclass
class _Report:
    """The results a report is built from, and where its plots go."""
    results: dict
    out_dir: Path
    top: int = 10
    plots: list[Path] = field(default_factory=list)

    def __post_init__(self):
        self.conv = self.results.get("convert") or {}
        self.cfg = self.results.get("config") or {}
        self.lib = self.conv.get("library_name") or self.cfg.get("library_name") or "mace"
        self.benches = self.results.get("benchmarks", {})
        self.vals = self.results.get("validations", {})
        self.targets = self.conv.get("targets") or []
        self.models = [m["model"] for m in self.conv.get("models", [])] or sorted(set(self.benches) | set(self.vals))


def build_blocks(results: dict, out_dir: Path, top: int = 10) -> tuple[list, list[Path]]:
    """The report's blocks, and the plot files written for it."""
    c = _Report(results, out_dir, top)
    env = results.get("environment", {})
    B: list = [H(1, f"Deployment report: {c.lib}"),
               P(f"Generated {results.get('created', '')} by mace {env.get('mace', '')} on host "
                 f"`{env.get('host', '')}` ({env.get('os', '')}, Python {env.get('python', '')}).")]
    for section in (_overview, _targets, _models, _program_files, _workflow, _performance, _validation):
        B += section(c)
    return B, c.plots


def _overview(c: _Report) -> list:
    """1. Project overview: library, models, devices, headline numbers."""
    conv, cfg, lib, benches, vals, targets, models = c.conv, c.cfg, c.lib, c.benches, c.vals, c.targets, c.models
    B: list = []
    B.append(H(2, "1. Project overview"))
    dev = ", ".join(f"{t['description']} (`{t['device_name']}.{t['soc']}`)" for t in targets) or \
        ", ".join(sorted({b.get('device') or '' for b in benches.values()} - {""})) or "-"
    rows = [("library", lib), ("models", ", ".join(models) or "-"), ("target device(s)", dev),
            ("target ABI", conv.get("target_abi", "-")),
            ("deployment file", cfg.get("path") or conv.get("config", "-"))]
    for name in models:
        b = benches.get(name)
        if b:
            c, w = b["init"]["cold"], b["init"]["warm"]
            rows.append((f"{name}: start-up to first result",
                         f"cold {c['init_plus_first_run_ms']:,.0f} ms -> warm {w['init_plus_first_run_ms']:,.1f} ms"
                         + (f" (**{b['init']['speedup']:.1f}x** faster with the program file)"
                            if b["init"].get("speedup") else "")))
            if b["latency"]["runs"]:
                rows.append((f"{name}: steady latency ({b['runtime']})",
                             f"median {b['latency']['median_ms']:.3f} ms, p90 {b['latency']['p90_ms']:.3f} ms"))
        v = vals.get(name)
        if v:
            rows.append((f"{name}: validation vs onnxruntime", ", ".join(
                f"{rt} {'PASS' if r['passed'] else 'FAIL'} (cosine {_min_cos(r):.6f}, threshold {r['threshold']})"
                for rt, r in sorted(v.items()))))
    B.append(T(["item", "value"], rows))
    return B


def _targets(c: _Report) -> list:
    """2. Target devices."""
    conv, targets = c.conv, c.targets
    B: list = []
    B.append(H(2, "2. Target devices"))
    if targets:
        B.append(T(["SoC", "device name", "OpenCL device", "OpenCL version", "driver", "compute units",
                     "global memory", "max work-group"],
                   [(t["soc"], t["device_name"], t["description"], t.get("opencl_version", "-"),
                     t.get("driver_version", "-"), t.get("compute_units", "-"), human(t.get("global_mem_bytes")),
                     t.get("max_work_group_size", "-")) for t in targets]))
        B.append(P("The `<device_name>.<soc>` pair names each per-target program file, as MACE names "
                   "`<library>_compiled_opencl_kernel.<device>.<soc>.bin` (there from `ro.product.model` and "
                   "`ro.board.platform`; here from CL_DEVICE_NAME and the OpenCL platform)."))
        if conv.get("skipped_socs"):
            B.append(P(f"Target SoCs not present on this machine (skipped): {', '.join(conv['skipped_socs'])}."))
    else:
        B.append(P("No OpenCL target was built (OpenCL disabled or results not available)."))
    return B


def _models(c: _Report) -> list:
    """3. Models: converted files, tensors, ops, bundles."""
    conv, cfg, models = c.conv, c.cfg, c.models
    B: list = []
    B.append(H(2, "3. Models"))
    if conv.get("models"):
        B.append(T(["model", "ONNX source", "converted file", "size", "ops", "runtime", "data type",
                    "obfuscated", "sha256"],
                   [(m["model"], f"`{Path(m['onnx']).name}`", f"`{_rel(m['output'], conv)}`", human(_size(m["output"])),
                     m["nodes"], m["runtime"], m["data_type"], _fmt(m.get("obfuscated", False)),
                     f"`{m['sha256'][:16]}...`") for m in conv["models"]]))
    for name, spec in (cfg.get("models") or {}).items():
        B.append(P(f"**{name}**: inputs " + ", ".join(
            f"`{t}` [{s}] range [{r}]" for t, s, r in zip(spec["input_tensors"], spec["input_shapes"],
                                                        _pad(spec["input_ranges"], len(spec["input_tensors"]))))
            + "; outputs " + ", ".join(f"`{t}`" + (f" [{s}]" if s else "") for t, s in zip(
                spec["output_tensors"], _pad(spec.get("output_shapes") or [], len(spec["output_tensors"]))))
            + f"; validation thresholds cpu {spec['thresholds']['cpu']}, gpu {spec['thresholds']['gpu']}."))
    for name in models:
        ops = _op_counts(conv, name)
        if ops:
            B.append(P(f"**{name}** ops after conversion: " + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items()))))
    if conv.get("bundles"):
        B.append(T(["model", "bundle", "bundle size", "model bytes", "program bytes", "Python module"],
                   [(b["model"], f"`{_rel(b['bundle'], conv)}`", human(b["bytes"]), human(b["model_bytes"]),
                     human(b["program_bytes"]), f"`{_rel(b['module'], conv)}`") for b in conv["bundles"]]))
    return B


def _program_files(c: _Report) -> list:
    """4. Program files (technical summary from programcache.inspect)."""
    conv, targets = c.conv, c.targets
    B: list = []
    B.append(H(2, "4. Program files"))
    files = [(t["file"], f"per-target file of {t['device_name']}.{t['soc']}") for t in targets]
    if conv.get("merged"):
        files.append((conv["merged"]["file"], "merged multi-device"))
    if not files:
        B.append(P("No program file was produced."))
    for path, role in files:
        B += _program_file_blocks(path, role, conv)
    return B


def _workflow(c: _Report) -> list:
    """5. Workflow: the commands that were run, the files written."""
    conv, results = c.conv, c.results
    B: list = []
    B.append(H(2, "5. Workflow"))
    B.append(P("The steps that produced this report, as commands (each also prints its result with "
               "`--json`; the report reads such files back with `--from-json`):"))
    cmds = results.get("commands", [])
    B.append(CODE("\n".join(c["command"] + (f"    # {c['note']}: {c['source']}" if c.get("note") else "")
                            for c in cmds) or "# no step was run"))
    if conv.get("build_dir"):
        B.append(P("Files written under the build directory:"))
        B.append(CODE(_tree(Path(conv["build_dir"]))))
    return B


def _performance(c: _Report) -> list:
    """6. Performance: cold/warm init, latency, memory, per-op profile."""
    benches, out_dir, plots = c.benches, c.out_dir, c.plots
    B: list = []
    B.append(H(2, "6. Performance"))
    if not benches:
        B.append(P("No benchmark results."))
    for name, b in sorted(benches.items()):
        B.append(H(3, f"{name} on {b['runtime']}" + (f" ({b['device']})" if b.get("device") else "")))
        c, w = b["init"]["cold"], b["init"]["warm"]
        B.append(P("Initialization in fresh processes (median of "
                   f"{c['processes']} each) with hidden caches off "
                   f"({', '.join(f'`{k}={v}`' for k, v in b['init'].get('hidden_caches_off', {}).items())}): "
                   "cold = no program file, every program compiled from source; warm = the program file present."))
        B.append(T(["", "engine init (ms)", "first run (ms)", "init + first run (ms)", "process wall (ms)",
                    "peak RSS", "programs compiled", "programs from cache"],
                   [(k, _fmt(x["init_ms"], 1), _fmt(x["first_run_ms"], 2), _fmt(x["init_plus_first_run_ms"], 1),
                     _fmt(x["wall_ms"], 0), human(x["maxrss_kb"] * 1024) if x.get("maxrss_kb") else "-",
                     x["compiled"], x["from_cache"]) for k, x in (("cold", c), ("warm", w))]))
        p = _save_plot(plot_init, b, out_dir / "plots" / f"init_{_slug(name)}.png", plots)
        if p:
            B.append(IMG(p, f"{name}: cold vs warm initialization"))
        lat = b["latency"]
        if lat["runs"]:
            B.append(P(f"In-process: first run {b['first_run_ms']:.3f} ms, then {lat['runs']} runs: median "
                       f"**{lat['median_ms']:.3f} ms**, p90 {lat['p90_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms, "
                       f"min {lat['min_ms']:.3f} ms, max {lat['max_ms']:.3f} ms, IQR {lat['iqr_ms']:.4f} ms, "
                       f"spread (p90-p10)/median {lat['spread'] * 100:.1f}%."))
            p = _save_plot(plot_latency, b, out_dir / "plots" / f"latency_{_slug(name)}.png", plots)
            if p:
                B.append(IMG(p, f"{name}: latency distribution"))
        mem = b["memory"]
        B.append(P(f"Memory: peak RSS {human((mem.get('cold_child_peak_rss_kb') or 0) * 1024)} (cold process), "
                   f"{human((mem.get('warm_child_peak_rss_kb') or 0) * 1024)} (warm process); planned GPU "
                   f"buffers {human(mem.get('planned_gpu_bytes'))} "
                   f"(without reuse: {human(mem.get('naive_gpu_bytes'))})."))
        prof = b["profile"]
        if prof.get("ops"):
            B.append(P(f"Per-op profile from OpenCL profiling events, mean of {prof['runs']} runs: "
                       f"{prof['all_ops']} launches, {prof['total_ms'] * 1e3:.1f} us of kernel time"
                       + (f", {prof['total_gflops']:.2f} GFLOP/s overall" if prof.get("total_gflops") else "")
                       + f"; top {len(prof['ops'])} by time:"))
            B.append(T(["op", "type", "avg (us)", "%", "cdf %", "GFLOP/s"],
                       [(o["name"], o["op_type"], _fmt(o["ms"] * 1e3, 2), _fmt(o["share"] * 100, 1),
                         _fmt(o.get("cdf", 0) * 100, 1), _fmt(o.get("gflops"), 2)) for o in prof["ops"]]))
            p = _save_plot(plot_ops, b, out_dir / "plots" / f"ops_{_slug(name)}.png", plots)
            if p:
                B.append(IMG(p, f"{name}: per-op time share"))
            B.append(T(["op type", "launches", "avg (us)", "%", "GFLOP/s"],
                       [(t["op_type"], t["count"], _fmt(t["ms"] * 1e3, 2), _fmt(t["share"] * 100, 1),
                         _fmt(t.get("gflops"), 2)) for t in prof.get("by_op_type", [])]))
        elif prof.get("note"):
            B.append(P(prof["note"]))
    return B


def _validation(c: _Report) -> list:
    """7. Validation against onnxruntime."""
    vals, out_dir, plots = c.vals, c.out_dir, c.plots
    B: list = []
    B.append(H(2, "7. Validation"))
    if not vals:
        B.append(P("No validation results."))
    for name, v in sorted(vals.items()):
        if not v:
            continue
        any_v = next(iter(v.values()))
        B.append(H(3, name))
        ranges = any_v.get("input_ranges") or {}
        B.append(P(f"Outputs compared with onnxruntime on `{Path(str(any_v.get('reference', ''))).name}` with random "
                   f"inputs (seed {any_v.get('seed', '-')}"
                   + (", ranges " + ", ".join(f"`{k}` [{a}, {b_}]" for k, (a, b_) in ranges.items()) if ranges else "")
                   + "). Pass/fail uses the cosine similarity against the threshold, as MACE does."))
        rows = []
        for rt, r in sorted(v.items()):
            for out, m in r["outputs"].items():
                if "error" in m:
                    rows.append((rt, out, "-", "-", "-", "-", r["threshold"], m["error"]))
                    continue
                rows.append((rt, out, f"{m['cosine']:.7f}", _fmt(m["sqnr_db"], 1), f"{m['max_abs_error']:.3g}",
                             _fmt(m["argmax_agreement"], 3), r["threshold"], "PASS" if m["passed"] else "FAIL"))
        B.append(T(["runtime", "output", "cosine", "SQNR (dB)", "max abs error", "argmax agreement",
                    "threshold", "result"], rows))
        p = _save_plot(plot_validation, v, out_dir / "plots" / f"validation_{_slug(name)}.png", plots)
        if p:
            B.append(IMG(p, f"{name}: validation metrics per output"))
        B += _quantization(next((r["quantization"] for r in v.values() if r.get("quantization")), None))
    return B


def _quantization(q: dict | None) -> list:
    """The quantized model against its float model (mace.tools.quantcheck)."""
    if not q:
        return []
    if "note" in q:
        return [P(q["note"])]
    e = q["end_to_end"]
    B: list = [P(f"Quantized model against its float model `{Path(q['float_model']).name}`: per layer on one "
                 f"input, end to end over {e['inputs']} random inputs."),
               T(["layer output", "op", "cosine", "SQNR (dB)"],
                 [(r["value"], r["op"], f"{r['cosine']:.5f}", _fmt(r["sqnr_db"], 1)) for r in q["per_layer"]]),
               T(["cosine mean", "cosine min", "top-1 agreement", "top-5 agreement"],
                 [(f"{e['cosine_mean']:.5f}", f"{e['cosine_min']:.5f}", _fmt(e["top1_agreement"], 3),
                   _fmt(e["top5_agreement"], 3))])]
    if "accuracy" in q:
        a = q["accuracy"]
        B.append(T(["model", f"Top-1 ({a['samples']} samples)", "Top-5"],
                   [(k, f"{a[k]['top1'] * 100:.2f} %", f"{a[k]['top5'] * 100:.2f} %") for k in ("float", "quantized")]))
    return B


def _min_cos(r: dict) -> float:
    vals = [m["cosine"] for m in r["outputs"].values() if "cosine" in m]
    return min(vals) if vals else float("nan")


def _pad(lst, n):
    lst = list(lst or [])
    if len(lst) == 1 and n > 1:
        return lst * n
    return lst + [""] * (n - len(lst))


def _slug(name: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)


def _size(path) -> int | None:
    try:
        return Path(path).stat().st_size
    except OSError:
        return None


def _rel(path, conv) -> str:
    try:
        return Path(path).relative_to(Path(conv["build_dir"]).parent.parent).as_posix()
    except (ValueError, KeyError):
        return str(path)


def _op_counts(conv, name) -> dict:
    for m in conv.get("models", []):
        if m["model"] == name and Path(m["output"]).is_file():
            try:
                from mace.ir import modelfile
                return modelfile.load(m["output"]).op_counts()
            except MaceError:
                return {}
    return {}


def _save_plot(fn, data, path: Path, plots: list) -> Path | None:
    p = fn(data, path)
    if p is not None:
        plots.append(p)
    return p


def _tree(root: Path) -> str:
    if not root.is_dir():
        return f"{root} (not found)"
    lines = [f"{root}/"]
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            lines.append(f"  {p.relative_to(root).as_posix():<80} {human(p.stat().st_size):>9}")
    return "\n".join(lines)


def _program_file_blocks(path: str, role: str, conv: dict) -> list:
    from mace.programcache.inspect import inspect_file
    out = [H(3, f"`{Path(path).name}` ({role})")]
    try:
        info = inspect_file(path)
    except OSError as exc:
        return out + [P(f"{path}: cannot read ({exc.strerror or exc}).")]
    h = info.get("header") or {}
    progs = info["programs"]
    out.append(T(["property", "value"], [
        ("path", f"`{_rel(path, conv)}`"), ("size", f"{human(info['size'])} ({info['size']:,} bytes)"),
        ("format", f"{info['format']}" + (f" {h.get('format')} (readers >= {h.get('min_reader_major')})" if h else "")),
        ("written by", h.get("writer", "-")), ("records", h.get("record_count", "-")),
        ("device sections", len(info["sections"])), ("program entries", len(progs)),
        ("program bytes", human(sum(p["size"] for p in progs))), ("tuning records", len(info["tuning"])),
        ("quarantined", len(info["quarantine"])),
        ("findings", "; ".join(f"{f['severity']} {f['code']}" for f in info["findings"]) or "none (intact)")]))
    if info["sections"]:
        out.append(T(["section id", "device", "programs", "program bytes", "tuning records"],
                     [(f"`{s['id']}`", s["short"], s["programs"], human(s["program_bytes"]), s["tuning"])
                      for s in info["sections"]]))
    if progs:
        out.append(T(["program", "build options", "size", "binary kind", "checksum"],
                     [(p["program"], f"`{p['build_options']}`" if p["build_options"] else "-", human(p["size"]),
                       p["kind"], p["checksum"]) for p in progs]))
    return out

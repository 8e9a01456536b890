"""`mace report --config mace.yml -o report/`: the deployment report, as Markdown and HTML.

Runs what it needs (convert + build for the target devices, benchmark, validate against the ONNX
model with random inputs within input_ranges) or reads saved `--json` results (`--from-json`),
then writes `report.md` (plots as PNG files beside it), `report.html` (self-contained: plots
embedded as base64 PNG, inline CSS) and `results.json` (everything it used; feed it back with
`--from-json` to re-render). Sections: project overview, target devices, models, program files
(technical summary from mace.programcache.inspect), the workflow run with its commands,
performance, validation.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html as _html
import io
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from mace.errors import ConfigError, MaceError
from mace.fileio import read_bounded, write_atomic
from mace.jsondoc import dumps
from mace.tools.progress import sink

log = logging.getLogger("mace.report")

RESULTS_KIND = "mace-report-results"
SAVED_JSON_MAX_BYTES = 256 * 1024 * 1024     # a saved --json document (benchmark samples included)


# {{{ collecting results

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
            init_runs=3, top=10, seed=0, steps=None) -> dict:
    """Everything the report shows: saved results first, then whatever is missing is run."""
    results = _new_results()
    load_saved(list(from_json or []), results)
    step = steps or (lambda name: None)
    loaded = None
    if config:
        from mace.config import load_config
        loaded = load_config(config)
        results["config"] = _config_summary(loaded)
    if results["convert"] is None and loaded is not None:
        from mace.tools.build import build
        step("convert + build for the target devices")
        socs = target_socs if target_socs is not None else (",".join(loaded.config.target_socs)
                                                            if loaded.config.target_socs else "all")
        results["convert"] = build(config, target_socs=socs, enable_opencl=True, build_dir=build_dir)
        results["commands"].append({"command": convert_command(results["convert"])})
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
    from mace.tools.validate import random_inputs, validate
    prog = Path(program).read_bytes() if program and runtime != "cpu" else None   # read-only
    engine = mace.Engine(model_path, runtime=runtime, program=prog)
    feeds = random_inputs(engine.graph, seed)
    res = validate(engine, onnx_path, None, seed, feeds)
    res["model"], res["reference"], res["seed"] = str(model_path), str(onnx_path), seed
    res["input_ranges"] = engine.graph.meta.get("input_ranges", {})
    if engine.program_cache_report is not None:
        res["program_cache"] = engine.program_cache_report.to_dict()
    return res

# }}}


# {{{ plots

def _mpl():
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError:
        raise MaceError("mace report needs matplotlib for its plots: pip install 'matplotlib>=3.7'") from None
    return Figure


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())
    return path


COLD, WARM, ACCENT, GREY = "#c0392b", "#2e86c1", "#28b463", "#7f8c8d"


def plot_init(bench: dict, path: Path) -> Path:
    Figure = _mpl()
    fig = Figure(figsize=(7.5, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    labels = ["cold\n(no program file)", "warm\n(program file present)"]
    blocks = [bench["init"]["cold"], bench["init"]["warm"]]
    init = [b["init_ms"] for b in blocks]
    first = [b["first_run_ms"] for b in blocks]
    ax.barh(labels, init, color=[COLD, WARM], label="engine init")
    ax.barh(labels, first, left=init, color=[COLD, WARM], alpha=0.45, hatch="//", label="first run")
    for i, b in enumerate(blocks):
        total = b["init_ms"] + b["first_run_ms"]
        ax.text(total, i, f"  {total:,.0f} ms ({b['compiled']} compiled, {b['from_cache']} from cache)",
                va="center", fontsize=9)
    ax.set_xlim(0, max(i + f for i, f in zip(init, first)) * 1.9)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds (median of fresh processes)")
    sp = bench["init"].get("speedup")
    ax.set_title("Initialization to first result: cold vs warm"
                 + (f" (warm {sp:.1f}x faster)" if sp else ""), fontsize=11)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_latency(bench: dict, path: Path) -> Path:
    Figure = _mpl()
    lat = bench["latency"]
    s = lat.get("samples_ms") or []
    fig = Figure(figsize=(7.5, 3.4))
    ax = fig.add_subplot(1, 2, 1)
    ax.hist(s, bins=min(30, max(5, len(s) // 3)), color=WARM, alpha=0.85)
    for key, style in (("median_ms", "-"), ("p90_ms", "--")):
        if lat.get(key) is not None:
            ax.axvline(lat[key], color="black", linestyle=style, linewidth=1,
                       label=f"{key.split('_')[0]} {lat[key]:.3f} ms")
    ax.set_xlabel("latency per run (ms)")
    ax.set_ylabel("runs")
    ax.set_title(f"Steady latency, {lat['runs']} runs", fontsize=10)
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    if s:
        ax2.boxplot([s], widths=0.5, showfliers=True)
    ax2.set_xticks([1])
    ax2.set_xticklabels([bench.get("runtime", "")])
    ax2.set_ylabel("ms")
    ax2.set_title("Distribution", fontsize=10)
    ax2.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_ops(bench: dict, path: Path) -> Path | None:
    ops = bench["profile"].get("ops") or []
    if not ops:
        return None
    Figure = _mpl()
    fig = Figure(figsize=(7.5, 0.9 + 0.38 * len(ops)))
    ax = fig.add_subplot(1, 1, 1)
    names = [_short(o["name"], 34) for o in ops]
    shares = [o["share"] * 100 for o in ops]
    ax.barh(names, shares, color=ACCENT)
    for i, o in enumerate(ops):
        g = f", {o['gflops']:.2f} GFLOP/s" if o.get("gflops") else ""
        ax.text(shares[i], i, f"  {shares[i]:.1f}% ({o['ms'] * 1e3:.1f} us{g})", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(shares) * 1.8 if shares else 1)
    ax.set_xlabel("share of GPU kernel time (%)")
    ax.set_title(f"Per-op time share (top {len(ops)}, mean of {bench['profile']['runs']} profiled runs)",
                 fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_validation(vals: dict, path: Path) -> Path | None:
    rows = [(rt, out, m, v["threshold"]) for rt, v in sorted(vals.items())
            for out, m in v["outputs"].items() if "cosine" in m]
    if not rows:
        return None
    import math
    Figure = _mpl()
    fig = Figure(figsize=(7.5, 3.2))
    labels = [f"{out}\n({rt})" for rt, out, _, _ in rows]
    ax = fig.add_subplot(1, 2, 1)
    dist = [max(1 - m["cosine"], 1e-12) for _, _, m, _ in rows]
    ax.bar(labels, dist, color=[WARM if rt != "cpu" else GREY for rt, *_ in rows])
    for i, (_, _, _, thr) in enumerate(rows):
        ax.hlines(1 - thr, i - 0.4, i + 0.4, colors=COLD, linestyles="--")
        ax.text(i, dist[i] * 1.5, ("<=1e-12" if dist[i] <= 1e-12 else f"{dist[i]:.1e}"), ha="center",
                va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(min(dist) / 10, max(max(dist), max(1 - r[3] for r in rows)) * 10)
    ax.set_ylabel("1 - cosine similarity (log)")
    ax.set_title("Distance to onnxruntime\n(dashed: pass threshold; lower is better)", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    sq = [m["sqnr_db"] if math.isfinite(m["sqnr_db"]) else 200.0 for _, _, m, _ in rows]
    ax2.bar(labels, sq, color=[WARM if rt != "cpu" else GREY for rt, *_ in rows])
    for i, v in enumerate(sq):
        ax2.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax2.set_ylabel("SQNR (dB)")
    ax2.set_ylim(0, max(sq) * 1.2)
    ax2.set_title("Signal to quantization noise\n(higher is better)", fontsize=9)
    for a in (ax, ax2):
        a.tick_params(axis="x", labelsize=8)
        a.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else "..." + text[-(n - 3):]

# }}}


# {{{ document model: blocks rendered to Markdown and HTML

def H(level, text):
    return ("h", level, text)


def P(text):
    return ("p", text)


def T(headers, rows):
    return ("table", headers, rows)


def CODE(text):
    return ("code", text)


def IMG(path, alt):
    return ("img", path, alt)


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}"
    return str(v)


def human(n) -> str:
    from mace.programcache.report import human_bytes
    return human_bytes(int(n)) if n is not None else "-"


def _md_cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks, out_dir: Path) -> str:
    lines = []
    for b in blocks:
        if b[0] == "h":
            lines += ["#" * b[1] + " " + b[2], ""]
        elif b[0] == "p":
            lines += [b[1], ""]
        elif b[0] == "table":
            lines.append("| " + " | ".join(_md_cell(h) for h in b[1]) + " |")
            lines.append("|" + "|".join("---" for _ in b[1]) + "|")
            for r in b[2]:
                lines.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
            lines.append("")
        elif b[0] == "code":
            lines += ["```bash", b[1], "```", ""]
        elif b[0] == "img":
            lines += [f"![{b[2]}]({Path(b[1]).relative_to(out_dir).as_posix()})", ""]
    return "\n".join(lines)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;
padding:0 20px;color:#1c2833;line-height:1.45}
h1{border-bottom:3px solid #2e86c1;padding-bottom:6px}h2{border-bottom:1px solid #d5d8dc;margin-top:32px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #d5d8dc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eaf2f8}tr:nth-child(even) td{background:#f8f9f9}
pre{background:#f4f6f6;border:1px solid #d5d8dc;padding:10px;white-space:pre-wrap;word-break:break-all;font-size:12.5px}
code{font-family:SFMono-Regular,Consolas,Menlo,monospace}
img{max-width:100%;border:1px solid #eaecee;margin:6px 0 14px}
.pass{color:#1e8449;font-weight:600}.fail{color:#c0392b;font-weight:600}
nav ul{columns:2}
"""


def _inline(text: str) -> str:
    """Escaped text with `code` spans and **bold** (the little Markdown the blocks use)."""
    import re
    out = _html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = out.replace("PASS", '<span class="pass">PASS</span>').replace("FAIL", '<span class="fail">FAIL</span>')
    return out


def to_html(blocks, title: str) -> str:
    body = []
    toc = []
    for b in blocks:
        if b[0] == "h":
            anchor = "s" + str(len(body))
            if b[1] == 2:
                toc.append(f'<li><a href="#{anchor}">{_html.escape(b[2])}</a></li>')
            body.append(f'<h{b[1]} id="{anchor}">{_inline(b[2])}</h{b[1]}>')
        elif b[0] == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{_html.escape(str(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b[0] == "code":
            body.append(f"<pre><code>{_html.escape(b[1])}</code></pre>")
        elif b[0] == "img":
            data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{_html.escape(b[2])}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_html.escape(b[2])}</figcaption></figure>")
    nav = f"<nav><strong>Contents</strong><ul>{''.join(toc)}</ul></nav>" if toc else ""
    first_h1 = body.index(next(x for x in body if x.startswith("<h1"))) + 1 if any(
        x.startswith("<h1") for x in body) else 0
    body.insert(first_h1, nav)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")

# }}}


# {{{ the report's sections

def build_blocks(results: dict, out_dir: Path, top: int = 10) -> tuple[list, list[Path]]:
    conv = results.get("convert") or {}
    cfg = results.get("config") or {}
    lib = conv.get("library_name") or cfg.get("library_name") or "mace"
    benches, vals = results.get("benchmarks", {}), results.get("validations", {})
    targets = conv.get("targets") or []
    plots: list[Path] = []
    B: list = [H(1, f"Deployment report: {lib}")]
    env = results.get("environment", {})
    B.append(P(f"Generated {results.get('created', '')} by mace {env.get('mace', '')} on host "
               f"`{env.get('host', '')}` ({env.get('os', '')}, Python {env.get('python', '')})."))

    # 1 overview
    B.append(H(2, "1. Project overview"))
    models = [m["model"] for m in conv.get("models", [])] or sorted(set(benches) | set(vals))
    dev = ", ".join(f"{t['description']} (`{t['device_name']}.{t['soc']}`)" for t in targets) or \
        ", ".join(sorted({b.get('device') or '' for b in benches.values()} - {""})) or "-"
    rows = [("library", lib), ("models", ", ".join(models) or "-"), ("target device(s)", dev),
            ("target ABI", conv.get("target_abi", "-")), ("deployment file", cfg.get("path") or conv.get("config", "-"))]
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

    # 2 targets
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

    # 3 models
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

    # 4 program files
    B.append(H(2, "4. Program files"))
    files = [(t["file"], f"per-target file of {t['device_name']}.{t['soc']}") for t in targets]
    if conv.get("merged"):
        files.append((conv["merged"]["file"], "merged multi-device"))
    if not files:
        B.append(P("No program file was produced."))
    for path, role in files:
        B += _program_file_blocks(path, role, conv)

    # 5 workflow
    B.append(H(2, "5. Workflow"))
    B.append(P("The steps that produced this report, as commands (each also prints its result with "
               "`--json`; the report reads such files back with `--from-json`):"))
    cmds = results.get("commands", [])
    B.append(CODE("\n".join(c["command"] + (f"    # {c['note']}: {c['source']}" if c.get("note") else "")
                            for c in cmds) or "# no step was run"))
    if conv.get("build_dir"):
        B.append(P("Files written under the build directory:"))
        B.append(CODE(_tree(Path(conv["build_dir"]))))

    # 6 performance
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
                   f"buffers {human(mem.get('planned_gpu_bytes'))} (without reuse: {human(mem.get('naive_gpu_bytes'))})."))
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

    # 7 validation
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
    return B, plots


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

# }}}


def make_report(config=None, out_dir="report", from_json=(), target_socs=None, build_dir=None,
                runtime="gpu", runs=50, init_runs=3, top=10, seed=0, progress=None) -> dict:
    """Collect (or read) the results, plot and write report.md, report.html and results.json
    into `out_dir`. `progress.step(name)` hears of each phase (mace.tools.progress)."""
    _mpl()                                       # fail early without matplotlib
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bar = sink(progress)

    def step(text: str) -> None:
        log.info("report: %s", text)
        bar.step(text)
    with bar:
        results = collect(config, from_json, target_socs, build_dir, runtime, runs, init_runs, top, seed,
                          steps=step)
        step("plots + report")
        (out / "plots").mkdir(exist_ok=True)
        blocks, plots = build_blocks(results, out, top)
        lib = (results.get("convert") or results.get("config") or {}).get("library_name", "mace")
        md = out / "report.md"
        write_atomic(md, to_markdown(blocks, out))
        page = out / "report.html"
        write_atomic(page, to_html(blocks, f"mace deployment report: {lib}"))
        rj = out / "results.json"
        write_atomic(rj, dumps(results))
    return {"markdown": str(md), "html": str(page), "results": str(rj), "plots": [str(p) for p in plots],
            "sections": [b[2] for b in blocks if b[0] == "h" and b[1] == 2],
            "commands": [c["command"] for c in results["commands"]]}


__all__ = ["make_report", "collect", "build_blocks", "to_markdown", "to_html", "classify", "load_saved"]

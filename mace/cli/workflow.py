"""The deployment workflow verbs: `mace convert`, `mace benchmark`, `mace report`.

`register(cli)` adds them to the top-level group (mace.cli does).
Every verb takes --json (one JSON document on stdout; logs on stderr); long steps show rich
progress bars on stderr when it is a terminal and --json is off, plain progress lines when it
is not. MaceError -> one line "error: ..." and exit code 2 (the group does that).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from mace.cli.common import JSON_OPT
from mace.cli.common import emit_json as _emit
from mace.cli.progress import for_stderr
from mace.runtime import RUNTIMES


def _bool_text(value: str | None) -> bool | None:
    if value is None:
        return None
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on", "y"):
        return True
    if v in ("0", "false", "no", "off", "n"):
        return False
    from mace.errors import ConfigError
    raise ConfigError(f"--enable_opencl={value}: expected true or false")


def _check_flags(ctx, enable_opencl, no_enable_opencl, tune) -> bool | None:
    """convert's OpenCL switch from its forms (--enable-opencl[=true|false], --no-enable-opencl),
    and options that mean something only with --tune refused without it."""
    from mace.errors import ConfigError
    enable_opencl = _bool_text(enable_opencl)
    if no_enable_opencl:
        if enable_opencl:
            raise ConfigError("--enable-opencl and --no-enable-opencl contradict each other: give one")
        enable_opencl = False
    given = {n for n in ("tune_mode", "tune_budget")
             if ctx.get_parameter_source(n) is not click.core.ParameterSource.DEFAULT}
    if given and not tune:
        raise ConfigError(f"{' and '.join('--' + n.replace('_', '-') for n in sorted(given))} "
                          f"apply only with --tune: add --tune, or drop them")
    return enable_opencl


# -- convert ---------------------------------------------------------------------------------

@click.command("convert")
@click.argument("model", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output .mace file (short form).")
@click.option("--platform", type=click.Choice(["onnx", "tensorflow", "tflite", "pytorch", "caffe"]), default=None,
              help="Short form: the model's framework (default: told from the file).")
@click.option("--input-format", "--input_data_format", "input_format", type=click.Choice(["NHWC", "NCHW"]),
              default=None, help="Short form: layout of the 4-D inputs at run time (default: the source model's).")
@click.option("--output-format", "--output_data_format", "output_format", type=click.Choice(["NHWC", "NCHW"]),
              default=None, help="Short form: layout of the 4-D outputs at run time (default: the source model's).")
@click.option("--config", type=click.Path(dir_okay=False), help="Deployment file mace.yml.")
@click.option("--model-name", "--model_name", "model_name", default=None, help="Convert only this model of the config.")
@click.option("--build-dir", "--build_dir", "build_dir", type=click.Path(file_okay=False), default=None,
              help="Output root (default ./build next to mace.yml).")
@click.option("--data-type", type=click.Choice(["fp32_fp32", "fp16_fp32"]), default="fp32_fp32",
              help="Short form only (the config sets it per model).")
@click.option("--input-shape", "input_shapes", multiple=True, help="NAME=1,3,224,224 (short form).")
@click.option("--target-socs", "--target_socs", "target_socs", default=None,
              help="Comma-separated target devices of this machine: SoC name (e.g. pocl), device name, "
                   "index or 'all' (default: the yml's target_socs).")
@click.option("--tune", is_flag=True, help="Tune kernel launches on each target (mace.tuning).")
@click.option("--tune-mode", "--tune_mode", "tune_mode", type=click.Choice(["fast", "normal", "exhaustive"]),
              default="normal", show_default=True, help="Tuning effort (with --tune).")
@click.option("--tune-budget", "--tune_budget", "tune_budget", type=float, default=None,
              help="Seconds of tuning per model and target (with --tune; default: no limit).")
@click.option("--enable-opencl", "--enable_opencl", "enable_opencl", is_flag=False, flag_value="true",
              default=None, metavar="[true|false]",
              help="Build OpenCL programs for the targets (default: when target socs, --tune or "
                   "--device-conf are given); MACE's --enable_opencl=true|false works too.")
@click.option("--no-enable-opencl", "--no-enable_opencl", "no_enable_opencl", is_flag=True,
              help="Convert only (same as --enable-opencl=false).")
@click.option("--target-abi", "--target_abi", "target_abi", default=None,
              help="Target ABI (host, armeabi-v7a, arm64-v8a, ...): recorded; local OpenCL devices need none.")
@click.option("--device-conf", "--device_conf", "device_conf", type=click.Path(dir_okay=False), default=None,
              help="device.yml of remote devices (needs mace.deploy).")
@click.option("--embed", is_flag=True, help="Also write <model>.mace-bundle and an importable module per model.")
@click.option("--calibration", type=click.Path(file_okay=False), default=None,
              help="Folder of calibration inputs (.npy, .npz or images) for quantize: 1 (or --quantize).")
@click.option("--quantize", "quantize", type=click.Choice(["full", "weights"]), default=None,
              help="Short form: quantize weights and activations (full) or the weights only.")
@click.option("--quantize-stat", type=click.Choice(["minmax", "percentile"]), default="minmax", show_default=True,
              help="Short form: calibration statistic of the activation ranges.")
@click.option("--per-tensor", is_flag=True, help="Short form: one weight scale per tensor (default: per channel).")
@click.option("--range-file", type=click.Path(dir_okay=False), default=None,
              help="Short form: activation ranges (name@@min,max lines), read, or written after --calibration.")
@JSON_OPT
@click.pass_context
def convert(ctx, model, output, platform, input_format, output_format, config, model_name, build_dir, data_type,
            input_shapes, target_socs, tune, tune_mode, tune_budget, enable_opencl, no_enable_opencl, target_abi,
            device_conf, embed, calibration, quantize, quantize_stat, per_tensor, range_file, as_json):
    """Convert a model (short form: ONNX, TF .pb/SavedModel, .tflite, PyTorch .pt2/TorchScript/module:callable)
    or every model of a mace.yml, then build, tune and embed the OpenCL programs for the target devices."""
    from mace.errors import ConfigError
    t0, enable_opencl = time.perf_counter(), _check_flags(ctx, enable_opencl, no_enable_opencl, tune)
    io = _short_form_io(config, platform, input_format, output_format)
    if config:
        from mace.tools.build import build
        doc = build(config, target_socs=target_socs, tune=tune, enable_opencl=enable_opencl,
                    target_abi=target_abi, build_dir=build_dir, embed_bundles=embed,
                    device_conf=device_conf, model_name=model_name,
                    progress=for_stderr(not as_json, transient=False),
                    tune_mode=tune_mode, tune_budget=tune_budget,
                    calibration=Path(calibration) if calibration else None)
        _emit(doc) if as_json else _print_build(doc)
        if doc.get("failed_targets"):
            sys.exit(1)                           # the others were built and merged; one check failed
        return
    if not model:
        raise ConfigError("give an ONNX model (mace convert model.onnx -o model.mace) or a TensorFlow, TFLite "
                          "or PyTorch one (.pb, SavedModel, .tflite, .pt2, .pt), or --config mace.yml")
    if target_socs or tune or enable_opencl or device_conf or embed:
        raise ConfigError("--target-socs, --tune, --enable-opencl, --device-conf and --embed need "
                          "--config mace.yml")
    from mace.convert import convert as do_convert
    out = Path(output or Path(model.rpartition(":")[2] if ":" in model else model).with_suffix(".mace"))
    qopts = _quantize_options(quantize, quantize_stat, per_tensor, calibration, range_file)
    graph = do_convert(model, out, input_shapes=_input_shapes(input_shapes), data_type=data_type, quantize=qopts,
                       platform=platform, io=io)
    rows = [{"model": graph.name, "onnx": model, "output": str(out), "nodes": len(graph.nodes),
             "sha256": graph.meta["model_sha256"], "ops": graph.op_counts()}]
    _print_short(rows, time.perf_counter() - t0, as_json)


def _print_short(rows: list[dict], elapsed: float, as_json: bool) -> None:
    if as_json:
        _emit({"models": rows, "seconds": elapsed})
        return
    for r in rows:
        click.echo(f"{r['onnx']} -> {r['output']}  ({r['nodes']} ops, sha256 {r['sha256'][:16]}...)")
    click.echo(f"converted {len(rows)} model(s) in {elapsed:.2f} s")


def _input_shapes(items) -> dict:
    """--input-shape NAME=DIMS options -> {name: dims}."""
    from mace.config import parse_shape
    from mace.errors import ConfigError
    shapes = {}
    for s in items:
        name, _, dims = s.partition("=")
        try:
            shapes[name] = parse_shape(dims)
        except ValueError:
            shapes[name] = []
        if not name or not shapes[name] or any(d <= 0 for d in shapes[name]):
            raise ConfigError(f"--input-shape {s}: expected NAME=DIMS with positive integer dimensions, "
                              f"like input=1,3,224,224")
    return shapes


def _quantize_options(quantize, stat, per_tensor, calibration, range_file):
    """The short form's quantization options (None: a float model)."""
    from mace.errors import ConfigError
    if not quantize:
        if calibration or range_file:
            raise ConfigError("--calibration and --range-file quantize a model: add --quantize full")
        return None
    from mace.quantize.options import QuantizeOptions
    return QuantizeOptions(mode=quantize, stat=stat, per_channel=not per_tensor,
                           calibration=Path(calibration) if calibration else None,
                           range_file=Path(range_file) if range_file else None)


def _short_form_io(config, platform, input_format, output_format) -> dict:
    """The short form's source options as convert() takes them; refused beside --config."""
    from mace.errors import ConfigError
    if config and (platform or input_format or output_format):
        raise ConfigError("--platform, --input-format and --output-format are for the short form: mace.yml sets "
                          "platform and input_data_formats/output_data_formats per model")
    return {"input_formats": [input_format] if input_format else None,
            "output_formats": [output_format] if output_format else None}


def _print_build(doc: dict) -> None:
    for r in doc["models"]:
        click.echo(f"{r['onnx']} -> {r['output']}  ({r['nodes']} ops, sha256 {r['sha256'][:16]}...)"
                   + ("  [obfuscated]" if r.get("obfuscated") else ""))
    for t in doc["targets"]:
        models = ", ".join(f"{m}: {v['compiled']} compiled/{v['from_cache']} cached" for m, v in t["models"].items())
        click.echo(f"{t['description']} -> {t['file']}  ({t['programs']} programs, {t['bytes']} B; {models})")
    if doc["merged"]:
        m = doc["merged"]
        click.echo(f"merged {len(m['inputs'])} target file(s) -> {m['file']}  ({m['sections']} device "
                   f"section(s), {m['programs']} programs, {m['bytes']} B)")
    elif not doc["enable_opencl"]:
        click.echo("OpenCL programs not built (give --target-socs or --enable-opencl)")
    for b in doc["bundles"]:
        click.echo(f"bundle {b['bundle']} ({b['bytes']} B) and module {b['module']}")
    for f in doc.get("failed_targets") or []:
        click.echo(f"FAILED target {f['index']}: {f['description']}: {f['error']}", err=True)
    remote = (doc.get("remote") or {}).get("devices") or []
    for d in remote:
        click.echo(f"remote {d['device']} ({d['address']}) -> {d['file']}")
    click.echo(f"converted {len(doc['models'])} model(s) for {len(doc['targets']) + len(remote)} target(s) "
               f"in {doc['seconds']:.2f} s"
               + (f"; {len(doc['failed_targets'])} target(s) failed" if doc.get("failed_targets") else ""))


# -- benchmark -------------------------------------------------------------------------------

@click.command("benchmark")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--runtime", type=click.Choice(RUNTIMES), default="gpu", show_default=True)
@click.option("--device", default=None, help="OpenCL device index or name (MACE_DEVICE).")
@click.option("--program", type=click.Path(dir_okay=False), default=None,
              help="Program file for the warm runs (default: the one the first cold run writes).")
@click.option("--runs", type=click.IntRange(1), default=50, show_default=True, help="Timed steady-state runs.")
@click.option("--top", type=click.IntRange(0), default=10, show_default=True, help="Ops in the profile table (0: all).")
@click.option("--init-runs", type=click.IntRange(1), default=3, show_default=True,
              help="Fresh processes for each of cold and warm initialization.")
@click.option("--profile-runs", type=click.IntRange(1), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
@JSON_OPT
def benchmark_cmd(model, runtime, device, program, runs, top, init_runs, profile_runs, seed, as_json):
    """Cold vs warm initialization (fresh processes), first run, steady latency, memory and a
    per-op profile of a converted model."""
    from mace.cli.render import render_benchmark as render
    from mace.tools.benchmark import benchmark
    res = benchmark(model, runtime=runtime, device=device, program=program, runs=runs, top=top,
                    init_runs=init_runs, profile_runs=profile_runs, seed=seed, progress=for_stderr(not as_json))
    if as_json:
        _emit(res)
    else:
        render(res)


# -- report ----------------------------------------------------------------------------------

@click.command("report")
@click.option("--config", type=click.Path(dir_okay=False), default=None, help="Deployment file mace.yml.")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), default="report", show_default=True,
              help="Directory for report.md, report.html, the plots and results.json.")
@click.option("--from-json", "from_json", multiple=True, type=click.Path(dir_okay=False),
              help="Saved --json results (convert, benchmark, validate, or a report's results.json) "
                   "to use instead of running those steps.")
@click.option("--target-socs", "--target_socs", "target_socs", default=None,
              help="Build for these devices, as for convert (default: read the existing build, else build "
                   "for the yml's target_socs, else all).")
@click.option("--tune", is_flag=True, help="Build and tune for the report (under -o DIR/build when the build "
                                           "directory already holds program files, which stay untouched).")
@click.option("--build-dir", "--build_dir", "build_dir", type=click.Path(file_okay=False), default=None,
              help="Where the build is read from (default ./build next to mace.yml).")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="gpu", show_default=True,
              help="Runtime benchmarked.")
@click.option("--runs", type=click.IntRange(1), default=50, show_default=True)
@click.option("--init-runs", type=click.IntRange(1), default=3, show_default=True)
@click.option("--top", type=click.IntRange(1), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the validation inputs.")
@JSON_OPT
def report_cmd(config, output, from_json, target_socs, tune, build_dir, runtime, runs, init_runs, top, seed,
               as_json):
    """Run the workflow (convert for the targets, benchmark, validate) or read saved --json
    results, and write report.md + report.html (plots embedded)."""
    from mace.tools.report import make_report
    res = make_report(config=config, out_dir=output, from_json=list(from_json), target_socs=target_socs,
                      build_dir=build_dir, runtime=runtime, runs=runs, init_runs=init_runs, top=top,
                      seed=seed, progress=for_stderr(not as_json, steps=True), tune=tune)
    if as_json:
        _emit(res)
    else:
        click.echo(f"wrote {res['markdown']} and {res['html']} ({len(res['plots'])} plots)")


def register(cli_group: click.Group) -> None:
    """Add `convert` (replacing any older one), `benchmark` and `report`."""
    cli_group.add_command(convert, "convert")
    cli_group.add_command(benchmark_cmd, "benchmark")
    cli_group.add_command(report_cmd, "report")


__all__ = ["register", "convert", "benchmark_cmd", "report_cmd"]

"""`mace run`, `validate`, `tune`, `devices`, `demo`: a model (or the device list) on this machine."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from mace.cli import termtext
from mace.cli.common import DEVICE_OPT, JSON_OPT, PROGRAM_OPT, RUNTIME_OPT, cli, emit_json

# -- helpers ---------------------------------------------------------------------------------

def _parse_inputs(items: tuple[str, ...], graph) -> dict:
    from mace.feeds import read_input_args
    return read_input_args(items, graph.inputs)


def _engine(model, runtime, device, program, warmup, threads=None):
    import mace
    return mace.Engine(model, runtime=runtime, device=device, program=program, warmup=warmup, threads=threads)


# -- run -------------------------------------------------------------------------------------

@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@RUNTIME_OPT
@DEVICE_OPT
@PROGRAM_OPT
@click.option("--warmup", is_flag=True, help="Compile, run once on dummy data and save the program cache during init.")
@click.option("--input", "inputs", multiple=True, help="NAME=FILE.npy (default: random within input_ranges).")
@click.option("--output-dir", type=click.Path(file_okay=False), default=None, help="Write each output as NAME.npy.")
@click.option("--runs", type=click.IntRange(0), default=0, show_default=True,
              help="Timed runs after a separate warm-up run (reported as the first run's time): "
                   "--runs 10 gives latency over 10 runs; 0: the warm-up run only, no latency.")
@click.option("--seed", type=int, default=None, help="Seed of the random inputs.")
@click.option("--device-conf", type=click.Path(dir_okay=False), default=None,
              help="device.yml: run on a remote device over ssh; --device then names its entry.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Threads of one CPU-runtime run (default: the physical cores).")
@JSON_OPT
def run(model, runtime, device, program, warmup, inputs, output_dir, runs, seed, device_conf, threads, as_json):
    """Run a converted model and print its outputs and timings."""
    if device_conf:
        from mace.cli.deploy import echo_result
        from mace.deploy.remote import run_remote
        res = run_remote(device_conf, device, model, program, runtime, inputs, output_dir,
                         seed=seed, runs=runs, warmup=warmup)
        emit_json(res) if as_json else echo_result(res)
        return
    t_start = time.perf_counter()
    import numpy as np

    from mace.latency import latency_stats
    from mace.tools.validate import random_inputs
    engine = _engine(model, runtime, device, program, warmup, threads)
    feeds = random_inputs(engine.graph, seed)
    feeds.update(_parse_inputs(inputs, engine.graph))
    t0 = time.perf_counter()
    outs = engine.run(feeds)
    first = time.perf_counter() - t0
    first_result = time.perf_counter() - t_start
    first_result_unix = time.time()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        engine.run(feeds)
        samples.append(time.perf_counter() - t0)
    if output_dir:
        _save_outputs(Path(output_dir), outs)
    result = {"summary": engine.summary(), "first_run_ms": first * 1e3, "process_to_first_result_s": first_result,
              "first_result_unix": first_result_unix,
              "latency": latency_stats(samples, with_samples=False) if samples else None,
              "outputs": {k: {"shape": list(v.shape), "mean": float(v.mean()), "std": float(v.std()),
                              "argmax": int(np.argmax(v.reshape(v.shape[0], -1)[0])) if v.size else None,
                              "head": v.ravel()[:5].tolist()} for k, v in outs.items()}}
    if as_json:
        emit_json(result)
        return
    s = result["summary"]
    click.echo(f"model {model}: runtime {s['runtime']}" + (f" on {s['device']}" if s.get("device") else "")
               + f", init {s['init_seconds'] * 1e3:.1f} ms, first run {first * 1e3:.2f} ms")
    if samples:
        l = result["latency"]
        click.echo(f"latency over {l['runs']} runs: median {l['median_ms']:.3f} ms, p90 {l['p90_ms']:.3f} ms")
    for k, v in result["outputs"].items():
        click.echo(f"  {termtext.plain(k)} {v['shape']}: argmax {v['argmax']}, mean {v['mean']:.4g}, "
                   f"std {v['std']:.4g}, first {[round(x, 4) for x in v['head']]}")


def _save_outputs(out_dir: Path, outs: dict) -> None:
    """Each output as `<name>.npy`, written atomically."""
    import io

    import numpy as np

    from mace.feeds import output_file_name
    from mace.fileio import write_atomic
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, v in outs.items():
        buf = io.BytesIO()
        np.save(buf, v)
        write_atomic(out_dir / output_file_name(name), buf.getvalue())


# -- validate --------------------------------------------------------------------------------

@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--reference", required=True,
              help="The model to compare with: ONNX (onnxruntime runs it), or the TensorFlow/TFLite/PyTorch "
                   "model it was converted from (that framework runs it).")
@RUNTIME_OPT
@DEVICE_OPT
@PROGRAM_OPT
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Cosine similarity to pass, in (0, 1] (default 0.999 cpu, 0.995 gpu).")
@click.option("--seed", type=int, default=None)
@click.option("--input", "inputs", multiple=True, help="NAME=FILE.npy (default: random within input_ranges).")
@click.option("--float", "float_model", type=click.Path(dir_okay=False), default=None,
              help="Quantized model: its float model (.onnx or .mace; default: the reference when it is float).")
@click.option("--accuracy", type=click.Path(), default=None,
              help="Quantized model: labelled data (.npz of x, y or a folder per class): Top-1/Top-5 side by side.")
@click.option("--samples", type=click.IntRange(1), default=16, show_default=True,
              help="Quantized model: random inputs of the end-to-end comparison with the float model.")
@JSON_OPT
def validate(model, reference, runtime, device, program, threshold, seed, inputs, float_model, accuracy, samples,
             as_json):
    """Compare a converted model's outputs with onnxruntime's, or with the source framework's
    (exit 1 below threshold)."""
    from mace.config import CALLABLE_RE
    from mace.errors import InputError
    from mace.tools.quantcheck import validate as do_validate
    from mace.tools.validate import random_inputs
    if not Path(reference).exists() and not CALLABLE_RE.match(reference):
        raise InputError(f"{reference}: no such ONNX file: pass the model you converted with --reference")
    engine = _engine(model, runtime, device, program, False)
    feeds = random_inputs(engine.graph, seed)
    feeds.update(_parse_inputs(inputs, engine.graph))
    res = do_validate(engine, reference, threshold, seed, feeds, float_model, accuracy, samples)
    res["model"] = model
    res["reference"] = reference
    if engine.program_cache_report is not None:
        res["program_cache"] = engine.program_cache_report.to_dict()
    if as_json:
        emit_json(res)
    else:
        from rich.table import Table

        from mace.cli.common import console
        t = Table(title=f"{termtext.markup(model)} vs {termtext.markup(reference)} "
                        f"({res['runtime']}, threshold {res['threshold']})")
        for col in ("output", "cosine", "SQNR dB", "max abs err", "argmax agree", "result"):
            t.add_column(col)
        for name, m in res["outputs"].items():
            if "error" in m:
                t.add_row(termtext.markup(name), "-", "-", "-", "-", m["error"])
                continue
            t.add_row(termtext.markup(name), f"{m['cosine']:.6f}", f"{m['sqnr_db']:.1f}", f"{m['max_abs_error']:.3g}",
                      f"{m['argmax_agreement']:.3f}", "pass" if m["passed"] else "FAIL")
        console().print(t)
        if res.get("quantization"):
            from mace.cli.render import quantization_tables
            for table in quantization_tables(res["quantization"]):
                console().print(table)
    sys.exit(0 if res["passed"] else 1)


# -- tune ------------------------------------------------------------------------------------

@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@DEVICE_OPT
@PROGRAM_OPT
@click.option("--mode", type=click.Choice(["fast", "normal", "exhaustive"]), default="normal", show_default=True)
@click.option("--budget", type=float, default=None, help="Global time budget in seconds.")
@JSON_OPT
def tune(model, device, program, mode, budget, as_json):
    """Tune local work sizes and kernel variants on this device; records go into the program cache."""
    import mace
    from mace.tuning import tune as do_tune
    engine = mace.Engine(model, runtime="cpu+gpu", device=device, program=program, warmup=True)
    from mace.cli.progress import for_stderr
    with for_stderr(not as_json) as bars:
        task = bars.add("tuning", len(engine.executor.op_names()))
        res = do_tune(engine, mode=mode, budget=budget, progress=lambda i, n, name: bars.advance(task, item=name))
    d = res.to_dict()
    d["program_cache"] = engine.program_cache_report.to_dict() if engine.program_cache_report else None
    if as_json:
        emit_json(d)
        return
    from mace.cli.render import render_tune
    render_tune(d, model)


# -- devices ---------------------------------------------------------------------------------

@cli.command()
@JSON_OPT
def devices(as_json):
    """List the OpenCL devices (index and name for --device)."""
    from mace.runtime.opencl.device import (
        describe,
        list_devices,
        select_device,
        stored_or_probed_caps,
    )
    devs = list_devices()
    default = select_device(None) if devs else None
    rows = [{"index": i, "name": describe(d), "version": d.version, "driver": d.driver_version,
             "default": d == default, "caps": stored_or_probed_caps(d).to_dict()} for i, d in enumerate(devs)]
    if as_json:
        emit_json({"devices": rows})
    else:
        from mace.runtime.opencl.caps import DeviceCaps
        for r in rows:
            mark = "*" if r["default"] else " "
            click.echo(f"{mark} {r['index']}: {r['name']} ({r['version']}, driver {r['driver']})")
            click.echo(f"     {DeviceCaps.from_dict(r['caps']).summary()}")


# -- demo ------------------------------------------------------------------------------------

@cli.command()
@DEVICE_OPT
@PROGRAM_OPT
@JSON_OPT
def demo(device, program, as_json):
    """Convert and run the bundled example (a CNN trained on scikit-learn's digits) on both runtimes."""
    from mace.tools.demo import run_demo
    res = run_demo(device=device, program=program, echo=None if as_json else click.echo)
    if as_json:
        emit_json(res)

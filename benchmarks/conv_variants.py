"""Every variant of a Conv, forced in turn on single-conv models (GPU runtime): which kernel wins
at which layer geometry and batch, to choose defaults from measurements.

    python benchmarks/conv_variants.py [--device D] [--batch 32] [--layers 64:64:56:3,256:512:14:1]
        [--variants all|winograd,gpu_winograd] [--runs 30] [--data-type fp32_fp32]

A layer is CIN:COUT:HW:K (stride 1, pads K // 2, bias, fused Relu); the default is ResNet-18's
3x3 stride-1 convs and a 1x1 256->512 conv at 14x14. One engine per variant (all those the op
offers, or the default and the ones listed), that variant forced on the conv; the engines'
profiled runs alternate so that load on the machine hits every variant alike. Per variant: the
median over `runs` of the op's summed kernel time (pad / im2col / transform launches included),
per-launch medians, GFLOP/s counted as the direct conv's 2*N*M*OH*OW*C*K*K flops whatever the
variant (so the numbers compare), and the largest error against onnxruntime (these kernels are
tested on PoCL only: a wrong result on another driver shows here). A variant that fails to build
or run is reported with its error. Prints JSON (stderr: a summary).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import machine  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RESNET18_3X3 = "64:64:56:3,128:128:28:3,256:256:14:3,512:512:7:3"
LAYERS = RESNET18_3X3 + ",256:512:14:1"


def conv_model(cin: int, cout: int, hw: int, k: int, batch: int):
    """Conv (stride 1, pads k // 2, bias) -> Relu on a (batch, cin, hw, hw) input."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.uniform(-0.1, 0.1, (cout, cin, k, k)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.uniform(-0.1, 0.1, cout).astype(np.float32), "B")]
    nodes = [helper.make_node("Conv", ["X", "W", "B"], ["c"], pads=[k // 2] * 4),
             helper.make_node("Relu", ["c"], ["Y"])]
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("X", TensorProto.FLOAT, (batch, cin, hw, hw))],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def conv_engine(graph, variant: str | None, device):
    """An engine on the model with `variant` forced on its conv (None: the default); (engine, op)."""
    import mace
    e = mace.Engine(graph, runtime="gpu", device=device, use_program_cache=False)
    ex = e.executor
    (name, op), = [(k, v) for k, v in ex.ops.items() if v is not None and v.node.op_type == "Conv"]
    if variant is not None:
        op.use_variant(variant)
        ex.rebind(name)
    return e, op


def time_layer(layer: str, batch: int, variants: list[str] | None, device, runs: int, data_type: str) -> dict:
    """Times the default variant and `variants` (None: every variant the op offers) on one layer."""
    import onnxruntime as ort

    from mace.convert import convert
    cin, cout, hw, k = (int(v) for v in layer.split(":"))
    model = conv_model(cin, cout, hw, k, batch)
    graph = convert(model, data_type=data_type)
    default, op = conv_engine(graph, None, device)
    engines, errors = {op.variant: (default, op)}, {}
    for v in op.variants() if variants is None else [v for v in variants if v in op.variants()]:
        if v not in engines:
            try:
                engines[v] = conv_engine(graph, v, device)
            except Exception as exc:  # noqa: BLE001 - a variant this driver cannot build is a result
                errors[v] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    x = {"X": np.random.default_rng(1).uniform(-1, 1, (batch, cin, hw, hw)).astype(np.float32)}
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)[0]
    samples: dict[str, list] = {v: [] for v in engines}
    err: dict[str, float] = {}
    for v, (e, _) in list(engines.items()):
        try:  # the first run finishes lazy code generation (PoCL) and checks the result
            err[v] = float(np.max(np.abs(e.run(x)[e.graph.outputs[0]] - want)))
        except Exception as exc:  # noqa: BLE001
            errors[v] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            del engines[v], samples[v]
    for _ in range(runs):
        for v, (e, _) in engines.items():
            samples[v].append([(name.split(":")[0], sec * 1e3) for name, _, sec, _ in e.profile(x)[1]])
    row = {"layer": f"{cin}->{cout}@{hw}x{hw} k{k}", "batch": batch, "default": op.variant,
           "offered": op.variants(), "gflop": op.flops / 1e9, "variants": {}}
    for v, rows in samples.items():
        ms = float(np.median([sum(t for _, t in r) for r in rows]))
        per = {n: round(float(np.median([r[i][1] for r in rows])), 3) for i, (n, _) in enumerate(rows[0])}
        row["variants"][v] = {"median_ms": round(ms, 3), "gflops": round(op.flops / ms / 1e6, 1),
                              "max_abs_err": err[v], "launches_ms": per}
    row["variants"].update({v: {"error": msg} for v, msg in errors.items()})
    return row


def main(argv: list[str] | None = None, benchmark: str = "conv_variants", **defaults) -> None:
    """CLI; `benchmark` names the JSON and `defaults` override the options' defaults (winograd.py)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--layers", default=LAYERS, help="CIN:COUT:HW:K,...")
    ap.add_argument("--variants", default="all", help="all, or a comma list (the default variant is always timed)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--data-type", default="fp32_fp32")
    ap.set_defaults(**defaults)
    args = ap.parse_args(argv)
    variants = None if args.variants == "all" else args.variants.split(",")
    rows = [time_layer(layer, args.batch, variants, args.device, args.runs, args.data_type)
            for layer in args.layers.split(",")]
    for r in rows:
        print(f"{r['layer']:>20} b{r['batch']}", "  ".join(
            f"{k} {v['median_ms']:.3f} ms {v['gflops']:.0f} GF/s" if "error" not in v else f"{k} FAILED"
            for k, v in r["variants"].items()), file=sys.stderr)
    json.dump({"benchmark": benchmark, "batch": args.batch, "data_type": args.data_type, "machine": machine(),
               "results": rows}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

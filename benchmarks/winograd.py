"""Winograd F(2x2,3x3) vs the default Conv variant on ResNet-18's 3x3 stride-1 convs (GPU runtime).

    python benchmarks/winograd.py [--device D] [--runs 30] [--variants winograd] [--data-type fp32_fp32]

One single-conv model per layer (pads 1, bias, fused Relu) and one engine per variant, that
variant forced on the conv; the engines' profiled runs alternate so that load on the machine hits
every variant alike. Per variant: the median over `runs` of the op's summed kernel time (pad /
im2col / transform launches included), per-launch medians, and GFLOP/s counted as the direct
conv's 2*N*M*OH*OW*C*9 flops whatever the variant, so the numbers compare. Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from common import machine  # noqa: E402

LAYERS = [(64, 56), (128, 28), (256, 14), (512, 7)]  # (channels, spatial size)


def conv_model(c: int, hw: int):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.uniform(-0.1, 0.1, (c, c, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.uniform(-0.1, 0.1, c).astype(np.float32), "B")]
    nodes = [helper.make_node("Conv", ["X", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["Y"])]
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("X", TensorProto.FLOAT, (1, c, hw, hw))],
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
        ex.set_segment(name, ex.bind_op(name))
    return e, op


def time_layer(c: int, hw: int, variants: list[str], device, runs: int, data_type: str) -> dict:
    from mace.convert import convert
    graph = convert(conv_model(c, hw), data_type=data_type)
    default, op = conv_engine(graph, None, device)
    engines = {op.variant: (default, op)}
    for v in variants:
        if v in op.variants() and v not in engines:
            engines[v] = conv_engine(graph, v, device)
    x = {"X": np.random.default_rng(1).uniform(-1, 1, (1, c, hw, hw)).astype(np.float32)}
    samples: dict[str, list] = {v: [] for v in engines}
    for e, _ in engines.values():
        e.run(x)  # the first launch finishes PoCL's code generation
    for _ in range(runs):
        for v, (e, _) in engines.items():
            samples[v].append([(name.split(":")[0], sec * 1e3) for name, _, sec, _ in e.profile(x)[1]])
    row = {"layer": f"{c}ch@{hw}x{hw}", "default": op.variant, "gflop": op.flops / 1e9, "variants": {}}
    for v, rows in samples.items():
        ms = float(np.median([sum(t for _, t in r) for r in rows]))
        per = {n: round(float(np.median([r[i][1] for r in rows])), 3) for i, (n, _) in enumerate(rows[0])}
        row["variants"][v] = {"median_ms": round(ms, 3), "gflops": round(op.flops / ms / 1e6, 1), "launches_ms": per}
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=None)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--variants", default="winograd")
    ap.add_argument("--data-type", default="fp32_fp32")
    args = ap.parse_args()
    rows = [time_layer(c, hw, args.variants.split(","), args.device, args.runs, args.data_type) for c, hw in LAYERS]
    for r in rows:
        print(f"{r['layer']:>12}", "  ".join(f"{k} {v['median_ms']:.3f} ms {v['gflops']:.0f} GF/s"
                                            for k, v in r["variants"].items()), file=sys.stderr)
    json.dump({"benchmark": "winograd", "data_type": args.data_type, "machine": machine(), "results": rows}, sys.stdout,
              indent=2)
    print()


if __name__ == "__main__":
    main()

"""Winograd F(2x2,3x3) vs the default Conv variant on ResNet-18's 3x3 stride-1 convs (GPU runtime).

    python benchmarks/winograd.py [--device D] [--runs 20] [--variants winograd,direct]

One single-conv model per layer (pads 1, bias, fused Relu), each variant forced on the op; per
variant the median over `runs` profiled runs of the op's summed kernel time (pad / transform
launches included) and GFLOP/s counted as the direct conv's 2*N*M*OH*OW*C*9 flops for every
variant, so the numbers compare. Prints JSON.
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
    nodes = [helper.make_node("Conv", ["X", "W", "B"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["Y"])]
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("X", TensorProto.FLOAT, (1, c, hw, hw))],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def time_variants(c: int, hw: int, variants: list[str], device, runs: int) -> dict:
    import mace
    from mace.convert import convert
    e = mace.Engine(convert(conv_model(c, hw)), runtime="gpu", device=device, use_program_cache=False)
    ex = e.executor
    (name, op), = [(k, v) for k, v in ex.ops.items() if v is not None and v.node.op_type == "Conv"]
    x = {"X": np.random.default_rng(1).uniform(-1, 1, (1, c, hw, hw)).astype(np.float32)}
    row = {"layer": f"{c}ch@{hw}x{hw}", "default": op.variant, "gflop": op.flops / 1e9, "variants": {}}
    for v in ["default"] + variants:
        v = row["default"] if v == "default" else v
        if v not in op.variants() or v in row["variants"]:
            continue
        op.use_variant(v)
        ex.set_segment(name, ex.bind_op(name))
        e.run(x)  # first launch finishes PoCL's code generation
        ms = [sum(sec for _, _, sec, _ in e.profile(x)[1]) * 1e3 for _ in range(runs)]
        med = float(np.median(ms))
        row["variants"][v] = {"median_ms": round(med, 3), "gflops": round(op.flops / med / 1e6, 1)}
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=None)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--variants", default="winograd")
    args = ap.parse_args()
    rows = [time_variants(c, hw, args.variants.split(","), args.device, args.runs) for c, hw in LAYERS]
    for r in rows:
        print(r["layer"], "  ".join(f"{k} {v['median_ms']:.2f} ms {v['gflops']:.0f} GF/s" for k, v in r["variants"].items()),
              file=sys.stderr)
    json.dump({"benchmark": "winograd", "machine": machine(), "results": rows}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

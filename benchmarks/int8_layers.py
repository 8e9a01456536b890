"""Latency of the full 8-bit `int8_dot` variant against the float variants on the default OpenCL
device (Intel's CPU runtime: OCL_ICD_VENDORS naming its ICD). JSON lines on stdout.

- layers: MobileNetV2's and ResNet-18's conv shapes, one QDQ conv each (uint8 activations, int8
  weights per channel): each CPU-style variant's kernel time (median and min of profiled runs,
  and the int8 variant's launches apart);
- `--whole`: MobileNetV2 and ResNet-18 (tests/models, random weights) quantized (`quantize: 1`,
  calibrated on 4 random inputs): kernel time per run of the float model, of the quantized model
  as the default variants run it (8-bit weights, float compute), with `int8_dot` on every op that
  offers it, and with the faster of the two per op (what the tuner picks); and per op; the int8
  ops' outputs against the default variants' (each op alone on the same input, and the model's
  output: one-step flips in later FakeQuantizes make the end-to-end gap larger)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

import mace
from mace.convert import convert
from mace.runtime.opencl.ops.conv import ConvOp

#: (C, M, H, k, stride): MobileNetV2's 1x1 convs (expand / project) and ResNet-18's 3x3 convs
SHAPES = {"mbv2": [(32, 16, 112, 1, 1), (16, 96, 112, 1, 1), (96, 24, 56, 1, 1), (144, 24, 56, 1, 1),
                   (24, 144, 56, 1, 1), (32, 192, 28, 1, 1), (192, 32, 28, 1, 1), (384, 64, 14, 1, 1),
                   (64, 384, 14, 1, 1), (576, 96, 14, 1, 1), (960, 160, 7, 1, 1), (320, 1280, 7, 1, 1)],
          "resnet18": [(3, 64, 224, 7, 2), (64, 64, 56, 3, 1), (128, 128, 28, 3, 1), (256, 256, 14, 3, 1),
                       (512, 512, 7, 3, 1), (64, 128, 56, 1, 2)]}


def qdq_conv(c, m, h, k, s, seed=0) -> onnx.ModelProto:
    r = np.random.default_rng(seed)
    w = r.normal(0, 0.3, (m, c, k, k)).astype(np.float32)
    ws = (np.abs(w).reshape(m, -1).max(1) / 127).astype(np.float32)
    wq = np.clip(np.rint(w / ws.reshape(m, 1, 1, 1)), -127, 127).astype(np.int8)
    inits = {"xs": np.array(np.float32(1 / 200)), "xz": np.array(np.uint8(30)), "wq": wq, "ws": ws,
             "wz": np.zeros(m, np.int8), "b": r.normal(0, 0.1, m).astype(np.float32)}
    nodes = [helper.make_node("QuantizeLinear", ["input", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
             helper.make_node("Conv", ["xd", "w", "b"], ["c"], pads=[k // 2] * 4, strides=[s, s]),
             helper.make_node("Relu", ["c"], ["output"])]
    oh = (h + 2 * (k // 2) - k) // s + 1
    g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("input", 1, (1, c, h, h))],
                          [helper.make_tensor_value_info("output", 1, (1, m, oh, oh))],
                          initializer=[numpy_helper.from_array(v, k_) for k_, v in inits.items()])
    mdl = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    mdl.ir_version = 8
    return mdl


def time_variants(path: Path, x: np.ndarray, runs: int, only: list[str] | None) -> dict:
    out = {}
    with mace.Engine(path, runtime="gpu", use_program_cache=False) as eng:
        ex = eng.executor
        (name, op), = [(k, o) for k, o in ex.ops.items() if isinstance(o, ConvOp)]
        ref = None
        for v in op.variants():
            if v.startswith("gpu") or v == "winograd" or (only and v not in only):
                continue
            op.use_variant(v)
            launches = {id(l.kernel): l.name.split(":")[0].split("/")[-1] for l in ex.rebind(name)}
            ts, parts = [], {}
            for _ in range(runs):
                got, times = ex.run({"input": x}, profile=True)
                ts.append(sum(t for s, t in times if id(s.kernel) in launches))
                for s, t in times:
                    if id(s.kernel) in launches and len(launches) > 1:
                        parts.setdefault(launches[id(s.kernel)], []).append(t)
            y = got["output"]
            ref = y if ref is None else ref
            out[v] = dict(ms=round(float(np.median(ts)) * 1e3, 4), min_ms=round(float(np.min(ts)) * 1e3, 4),
                          err=float(np.max(np.abs(y - ref)) / max(float(np.abs(ref).max()), 1e-9)),
                          **{f"{k}_ms": round(float(np.min(v)) * 1e3, 4) for k, v in parts.items()})
        out["device"] = ex.caps.device
    return out


def _op_times(ex, x, runs: int) -> dict[str, float]:
    """Min kernel seconds of each op over `runs` profiled runs (all its launches)."""
    best: dict[str, float] = {}
    for _ in range(runs):
        per: dict[str, float] = {}
        for step, t in ex.run({"input": x}, profile=True)[1]:
            op = step.name.split(":")[0]
            op = op if op in ex.ops else op.rsplit("/", 1)[0]  # an op's extra launch ("<op>/quantize")
            per[op] = per.get(op, 0.0) + t
        best = {k: min(v, best.get(k, v)) for k, v in per.items()}
    return best


def _value_after(ex, x, name: str) -> np.ndarray:
    """Op `name`'s output right after its launches (later ops may reuse its buffer)."""
    import pyopencl as cl

    from mace.runtime.opencl.executor import HostStep
    ex.write_value("input", x)
    mine = {la.name for la in ex.launches_of(name)}
    last = max(i for i, s in enumerate(ex.steps) if getattr(s, "name", None) in mine)
    for s in ex.steps[:last + 1]:
        if isinstance(s, HostStep):
            s.run(ex.queue)
        else:
            cl.enqueue_nd_range_kernel(ex.queue, s.kernel, s.gws, s.lws)
    ex.queue.finish()
    return ex.read_value(ex.ops[name].node.outputs[0]).copy()


def whole(model: str, work: Path, runs: int) -> dict:
    from mace.quantize.options import QuantizeOptions
    from mace.testing.models import materialize
    src = materialize(model)
    rng = np.random.default_rng(0)
    cal = work / f"{model}_cal"
    cal.mkdir()
    for i in range(4):
        np.save(cal / f"{i}.npy", rng.uniform(0, 1, (1, 3, 224, 224)).astype(np.float32))
    x = rng.uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)
    ranges = {"input": (0.0, 1.0)}
    fp, qp = work / f"{model}_f.mace", work / f"{model}_q.mace"
    convert(src, fp, input_ranges=ranges)
    convert(src, qp, input_ranges=ranges, quantize=QuantizeOptions(calibration=cal))
    out: dict = {"model": model}
    with mace.Engine(fp, runtime="gpu", use_program_cache=False) as eng:
        out["float_ms"] = round(sum(_op_times(eng.executor, x, runs).values()) * 1e3, 3)
        out["device"] = eng.executor.caps.device
    with mace.Engine(qp, runtime="gpu", use_program_cache=False) as eng:
        ex = eng.executor
        base = _op_times(ex, x, runs)
        y0 = eng.run({"input": x})["output"]
        offered = [k for k, op in ex.ops.items() if op is not None and "int8_dot" in op.variants()]
        ref = {k: _value_after(ex, x, k) for k in offered}
        rel = 0.0  # each op alone on the same input: the kernels' own agreement
        for k in offered:
            default = ex.ops[k].variant
            ex.ops[k].use_variant("int8_dot")
            ex.rebind(k)
            rel = max(rel, float(np.abs(_value_after(ex, x, k) - ref[k]).max() / np.abs(ref[k]).max()))
            ex.ops[k].use_variant(default)
            ex.rebind(k)
        for k in offered:
            ex.ops[k].use_variant("int8_dot")
            ex.rebind(k)
        int8 = _op_times(ex, x, runs)
        y1 = eng.run({"input": x})["output"]
    a, b = y0.astype(np.float64).ravel(), y1.astype(np.float64).ravel()
    out["int8_vs_default_per_op_max_rel_err"] = float(f"{rel:.2e}")
    out["int8_vs_default_cosine"] = round(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))), 6)
    out["int8_vs_default_top1_same"] = bool(np.argmax(a) == np.argmax(b))
    out["quantized_default_ms"] = round(sum(base.values()) * 1e3, 3)
    out["quantized_int8_dot_ms"] = round(sum(int8.values()) * 1e3, 3)
    out["quantized_best_per_op_ms"] = round(sum(min(base[k], int8.get(k, base[k])) for k in base) * 1e3, 3)
    out["int8_ops"] = len(offered)
    out["int8_faster_ops"] = sum(int8[k] < base[k] for k in offered)
    out["per_op_ms"] = {k: [round(base[k] * 1e3, 3), round(int8[k] * 1e3, 3)] for k in offered}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", choices=sorted(SHAPES), action="append")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--only", action="append", help="variants to time (default: all CPU-style)")
    ap.add_argument("--whole", action="store_true", help="whole quantized models instead of layers")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if a.whole:
            for model in a.model or sorted(SHAPES):
                name = {"mbv2": "mobilenet_v2", "resnet18": "resnet18"}[model]
                print(json.dumps(whole(name, Path(tmp), a.runs)), flush=True)
            return 0
        for model in a.model or sorted(SHAPES):
            for c, m, h, k, s in SHAPES[model]:
                p = Path(tmp) / "q.onnx"
                onnx.save(qdq_conv(c, m, h, k, s), p)
                convert(p, p.with_suffix(".mace"))
                x = np.random.default_rng(1).uniform(0, 1, (1, c, h, h)).astype(np.float32)
                r = time_variants(p.with_suffix(".mace"), x, a.runs, a.only)
                print(json.dumps(dict(model=model, shape=[c, m, h, k, s], **r)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

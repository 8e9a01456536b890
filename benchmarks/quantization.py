"""Quantized models, one run, side by side (JSON on stdout, progress on stderr).

- digits: the example CNN quantized (`quantize: 1`, minmax, per-channel int8 weights, uint8
  activations) with a calibration on 32 training digits (scikit-learn's digits, the example's
  split); Top-1 on the 360 held-out digits, float vs quantized vs weight-only, and file sizes.
- MobileNetV2, ResNet-18, EfficientNet-Lite0 (tests/models, random weights): calibrated on
  `--calib` random inputs within the models' input range [0, 1), compared on `--inputs` other
  such inputs with the float model (cosine, top-1 agreement), next to onnxruntime's own
  quantize_static of the same model on the same calibration data (QDQ, per channel), run by
  onnxruntime; latency of each, and of mace's float / weight-only / quantized models on PoCL,
  with the device memory each engine holds (8-bit weights stay 8-bit on the device).

The float references are onnxruntime's outputs of the float model (mace's float CPU runtime
agrees with them to ~1e-6 cosine). Needs scikit-learn for the training digits.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, time_fn  # noqa: E402

import mace  # noqa: E402
from mace.convert import convert  # noqa: E402
from mace.latency import latency_stats  # noqa: E402
from mace.quantize.options import QuantizeOptions  # noqa: E402
from mace.runtime.opencl import shared  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "mace" / "examples" / "digits"


def say(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


def cos(a, b) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def latency(engine_or_sess, feeds, runs: int) -> dict:
    if hasattr(engine_or_sess, "get_inputs"):
        fn = lambda: engine_or_sess.run(None, feeds)  # noqa: E731
    else:
        fn = lambda: engine_or_sess.run(feeds)  # noqa: E731
    return latency_stats(time_fn(fn, runs, warmup=2, max_seconds=30), with_samples=False)


def digits(work: Path) -> dict:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    xtr, xte, _, yte = train_test_split(x, d.target.astype(np.int64), test_size=0.2, random_state=0)
    shipped = np.load(DIGITS / "digits_test.npz")
    assert np.array_equal(xte, shipped["x"]) and np.array_equal(yte, shipped["y"]), "not the example's split"
    cal = work / "digits_cal"
    cal.mkdir()
    for k in range(32):
        np.save(cal / f"{k:02d}.npy", xtr[k:k + 1])
    src = DIGITS / "digits_cnn.onnx"
    ranges = {"input": (0.0, 1.0)}
    files = {"float": work / "digits_f.mace", "quantized": work / "digits_q.mace", "weights_only": work / "digits_w.mace"}
    convert(src, files["float"], input_ranges=ranges)
    convert(src, files["quantized"], input_ranges=ranges, quantize=QuantizeOptions(calibration=cal))
    convert(src, files["weights_only"], input_ranges=ranges, quantize=QuantizeOptions(mode="weights"))
    out = {"calibration": "32 training digits (sklearn digits, train_test_split(test_size=0.2, random_state=0))",
           "test_samples": int(len(yte))}
    for key, path in files.items():
        with mace.Engine(path, runtime="cpu") as e:
            pred = np.array([int(np.argmax(e.run({"input": xte[k:k + 1]})["output"])) for k in range(len(xte))])
        out[key] = {"top1_percent": float(np.mean(pred == yte) * 100), "file_bytes": path.stat().st_size}
    fb = out["float"]["file_bytes"]
    for key in ("quantized", "weights_only"):
        out[key]["file_percent_of_float"] = out[key]["file_bytes"] / fb * 100
        out[key]["top1_points_vs_float"] = out[key]["top1_percent"] - out["float"]["top1_percent"]
    return out


def _ort_quantize(src: str, pre: str, out: str, cal: list) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter({"input": a} for a in cal)

        def get_next(self):
            return next(self.it, None)

    quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def big_model(name: str, work: Path, n_calib: int, n_inputs: int, runs: int, gpu: bool) -> dict:
    import onnxruntime as ort
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from mace.testing.models import materialize
    src = str(materialize(name))
    rng = np.random.default_rng(0)
    cal = [rng.uniform(0, 1, (1, 3, 224, 224)).astype(np.float32) for _ in range(n_calib)]
    ev = [rng.uniform(0, 1, (1, 3, 224, 224)).astype(np.float32) for _ in range(n_inputs)]
    cal_dir = work / f"{name}_cal"
    cal_dir.mkdir()
    for k, a in enumerate(cal):
        np.save(cal_dir / f"{k:03d}.npy", a)
    ranges = {"input": (0.0, 1.0)}
    files = {"float": work / f"{name}_f.mace", "quantized": work / f"{name}_q.mace",
             "weights_only": work / f"{name}_w.mace"}
    t0 = time.perf_counter()
    convert(src, files["float"], input_ranges=ranges)
    convert(src, files["quantized"], input_ranges=ranges, quantize=QuantizeOptions(calibration=cal_dir))
    quantize_s = time.perf_counter() - t0
    convert(src, files["weights_only"], input_ranges=ranges, quantize=QuantizeOptions(mode="weights"))
    pre, ort_q = str(work / f"{name}_pre.onnx"), str(work / f"{name}_ort_q.onnx")
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    _ort_quantize(src, pre, ort_q, cal)
    sess_f = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    sess_q = ort.InferenceSession(ort_q, providers=["CPUExecutionProvider"])
    ref = [sess_f.run(None, {"input": a})[0] for a in ev]
    res: dict = {"calibration_inputs": n_calib, "eval_inputs": n_inputs, "convert_and_calibrate_s": quantize_s,
                 "file_bytes": {k: p.stat().st_size for k, p in files.items()}}

    def agreement(outs):
        c = [cos(o, r) for o, r in zip(outs, ref)]
        return {"cosine_mean": float(np.mean(c)), "cosine_min": float(np.min(c)),
                "top1_agreement": float(np.mean([int(np.argmax(o)) == int(np.argmax(r)) for o, r in zip(outs, ref)]))}
    say(name, "accuracy")
    with mace.Engine(files["quantized"], runtime="cpu") as e:
        res["mace_quantized"] = agreement([e.run({"input": a})["output"] for a in ev])
        res["mace_quantized"]["cpu_latency"] = latency(e, {"input": ev[0]}, runs)
    with mace.Engine(files["weights_only"], runtime="cpu") as e:
        res["mace_weights_only"] = agreement([e.run({"input": a})["output"] for a in ev[:16]])
    res["ort_quantized"] = agreement([sess_q.run(None, {"input": a})[0] for a in ev])
    res["ort_quantized"]["cpu_latency"] = latency(sess_q, {"input": ev[0]}, runs)
    res["ort_float"] = {"cpu_latency": latency(sess_f, {"input": ev[0]}, runs)}
    with mace.Engine(files["float"], runtime="cpu") as e:
        res["mace_float"] = {"cpu_latency": latency(e, {"input": ev[0]}, runs),
                             "cosine_vs_onnxruntime": cos(e.run({"input": ev[0]})["output"], ref[0])}
    if gpu:
        say(name, "PoCL")
        for key in ("float", "weights_only", "quantized"):
            before = shared.device_bytes()["bytes"]
            with mace.Engine(files[key], runtime="gpu") as e:
                entry = res.setdefault(f"mace_{key}", {})
                entry["gpu_device_bytes"] = shared.device_bytes()["bytes"] - before  # weights + activations
                entry["gpu_latency"] = latency(e, {"input": ev[0]}, runs)
                entry["gpu_device"] = e.summary().get("device")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mobilenet_v2,resnet18,efficientnet_lite0")
    ap.add_argument("--calib", type=int, default=16, help="calibration inputs of the large models")
    ap.add_argument("--inputs", type=int, default=64, help="evaluation inputs of the large models")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per latency")
    ap.add_argument("--no-gpu", action="store_true", help="skip the PoCL latencies")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # quantize_static's advice to pre-process
    doc: dict = {"benchmark": "quantization", "machine": machine(), "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="mace-qbench-") as tmp:
        work = Path(tmp)
        say("digits")
        doc["digits"] = digits(work)
        doc["models"] = {}
        for name in [m for m in args.models.split(",") if m]:
            say(name)
            doc["models"][name] = big_model(name, work, args.calib, args.inputs, args.runs, not args.no_gpu)
    doc["load_average_end"] = os.getloadavg()
    json.dump(doc, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

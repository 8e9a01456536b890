"""Quantized models, one run, side by side (JSON on stdout, progress on stderr).

- digits: the example CNN quantized (`quantize: 1`, minmax, per-channel int8 weights, uint8
  activations) with a calibration on 32 training digits (scikit-learn's digits, the example's
  split); Top-1 on the 360 held-out digits, float vs quantized vs weight-only, and file sizes.
- MobileNetV2, ResNet-18, EfficientNet-Lite0 (tests/models, random weights): calibrated on
  `--calib` random inputs within the models' input range [0, 1), compared on `--inputs` other
  such inputs with the float model (cosine, top-1 agreement), next to onnxruntime's own
  quantize_static of the same model on the same calibration data (QDQ, per channel), run by
  onnxruntime; latency of each, and of mace's float / weight-only / quantized models on PoCL,
  with the device memory each engine holds (8-bit weights stay 8-bit on the device). Beside them,
  the float model's own sensitivity: its output with input noise of one 8-bit step (N(0, 1/255))
  against without; random weights amplify it, so no 8-bit quantizer reaches cosine 0.98 on them.
- `--trained`: the same three architectures trained on the digits (scripts/train_quant_models.py,
  10 classes, 3x16x16 inputs; cached, trained when missing, which needs torch), calibrated on 32
  training digits and compared with float on `--inputs` held-out digits and as many random inputs in
  [0, 1), with Top-1 of float and of both quantized models on all 360 held-out digits.

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
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
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


def _convert_three(src: str, work: Path, tag: str, cal: list) -> tuple[dict, float]:
    """float / quantized (calibrated on `cal`) / weight-only .mace files of `src`."""
    cal_dir = work / f"{tag}_cal"
    cal_dir.mkdir()
    for k, a in enumerate(cal):
        np.save(cal_dir / f"{k:03d}.npy", a)
    ranges = {"input": (0.0, 1.0)}
    files = {"float": work / f"{tag}_f.mace", "quantized": work / f"{tag}_q.mace",
             "weights_only": work / f"{tag}_w.mace"}
    convert(src, files["float"], input_ranges=ranges)
    t0 = time.perf_counter()
    convert(src, files["quantized"], input_ranges=ranges, quantize=QuantizeOptions(calibration=cal_dir))
    quantize_s = time.perf_counter() - t0
    convert(src, files["weights_only"], input_ranges=ranges, quantize=QuantizeOptions(mode="weights"))
    return files, quantize_s


def _agreement(outs: list, ref: list) -> dict:
    c = [cos(o, r) for o, r in zip(outs, ref)]
    return {"cosine_mean": float(np.mean(c)), "cosine_min": float(np.min(c)),
            "top1_agreement": float(np.mean([int(np.argmax(o)) == int(np.argmax(r)) for o, r in zip(outs, ref)]))}


def compare(src: str, work: Path, tag: str, cal: list, evals: dict, runs: int, gpu: bool,
            labelled: tuple | None = None, timed: bool = True) -> dict:
    """mace's `quantize: 1` and onnxruntime's quantize_static of `src`, both calibrated on `cal`,
    against the float model on each input set of `evals` ({set name: [inputs]}): cosine and top-1
    agreement; Top-1 of float and both quantized models on `labelled` (x, y); latencies when `timed`."""
    import onnxruntime as ort
    from onnxruntime.quantization.shape_inference import quant_pre_process
    files, quantize_s = _convert_three(src, work, tag, cal)
    pre, ort_q = str(work / f"{tag}_pre.onnx"), str(work / f"{tag}_ort_q.onnx")
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    _ort_quantize(src, pre, ort_q, cal)
    sess_f = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    sess_q = ort.InferenceSession(ort_q, providers=["CPUExecutionProvider"])
    ort_run = lambda s, xs: [s.run(None, {"input": a})[0] for a in xs]  # noqa: E731
    refs = {k: ort_run(sess_f, xs) for k, xs in evals.items()}
    first = next(iter(evals.values()))[0]
    res: dict = {"calibration_inputs": len(cal), "eval_inputs": {k: len(v) for k, v in evals.items()},
                 "convert_and_calibrate_s": quantize_s, "file_bytes": {k: p.stat().st_size for k, p in files.items()}}
    noise = np.random.default_rng(1)
    res["float_input_noise_1_step"] = {  # the float model's own sensitivity: N(0, 1/255) added to its input
        k: _agreement(ort_run(sess_f, [a + noise.normal(0, 1 / 255, a.shape).astype(np.float32) for a in xs]),
                      refs[k]) for k, xs in evals.items()}
    say(tag, "accuracy")
    res["mace_quantized"], res["mace_weights_only"], res["ort_quantized"] = {}, {}, {}
    with mace.Engine(files["quantized"], runtime="cpu") as e:
        mace_run = lambda xs: [e.run({"input": a})["output"] for a in xs]  # noqa: E731
        for k, xs in evals.items():
            res["mace_quantized"][k] = _agreement(mace_run(xs), refs[k])
        if labelled is not None:
            res["mace_quantized"]["test_top1_percent"] = _top1(mace_run(labelled[0]), labelled[1])
        if timed:
            res["mace_quantized"]["cpu_latency"] = latency(e, {"input": first}, runs)
    with mace.Engine(files["weights_only"], runtime="cpu") as e:
        for k, xs in evals.items():
            res["mace_weights_only"][k] = _agreement([e.run({"input": a})["output"] for a in xs[:16]], refs[k][:16])
    for k, xs in evals.items():
        res["ort_quantized"][k] = _agreement(ort_run(sess_q, xs), refs[k])
    if labelled is not None:
        res["ort_quantized"]["test_top1_percent"] = _top1(ort_run(sess_q, labelled[0]), labelled[1])
        res["float_test_top1_percent"] = _top1(ort_run(sess_f, labelled[0]), labelled[1])
    if not timed:
        return res
    res["ort_quantized"]["cpu_latency"] = latency(sess_q, {"input": first}, runs)
    res["ort_float"] = {"cpu_latency": latency(sess_f, {"input": first}, runs)}
    with mace.Engine(files["float"], runtime="cpu") as e:
        res["mace_float"] = {"cpu_latency": latency(e, {"input": first}, runs),
                             "cosine_vs_onnxruntime": cos(e.run({"input": first})["output"], refs[next(iter(evals))][0])}
    if gpu:
        say(tag, "PoCL")
        for key in ("float", "weights_only", "quantized"):
            before = shared.device_bytes()["bytes"]
            with mace.Engine(files[key], runtime="gpu") as e:
                entry = res.setdefault(f"mace_{key}", {})
                entry["gpu_device_bytes"] = shared.device_bytes()["bytes"] - before  # weights + activations
                entry["gpu_latency"] = latency(e, {"input": first}, runs)
                entry["gpu_device"] = e.summary().get("device")
    return res


def _top1(outs: list, y: np.ndarray) -> float:
    return float(np.mean([int(np.argmax(o)) == int(t) for o, t in zip(outs, y)]) * 100)


def random_model(name: str, work: Path, n_calib: int, n_inputs: int, runs: int, gpu: bool) -> dict:
    """A random-weight test model: calibrated and compared on random inputs in [0, 1)."""
    from mace.testing.models import materialize
    rng = np.random.default_rng(0)
    cal = [rng.uniform(0, 1, (1, 3, 224, 224)).astype(np.float32) for _ in range(n_calib)]
    ev = [rng.uniform(0, 1, (1, 3, 224, 224)).astype(np.float32) for _ in range(n_inputs)]
    return compare(str(materialize(name)), work, name, cal, {"random": ev}, runs, gpu)


def trained_model(name: str, work: Path, n_inputs: int, runs: int, gpu: bool) -> dict:
    """A model trained on the digits (scripts/train_quant_models.py), calibrated on 32 training
    digits, and again on 32 random inputs in [0, 1) (the data the random-input comparison feeds it:
    digits leave the ranges too narrow for noise); compared on `n_inputs` held-out digits and as many
    random inputs in [0, 1); Top-1 on all held-out digits; latencies of the digit-calibrated one."""
    import train_quant_models as tqm
    path, rec = tqm.load(name)
    xtr, _, xte, yte = tqm.digits(rec["size"])
    rng = np.random.default_rng(0)
    cal = [xtr[k:k + 1] for k in range(32)]
    evals = {"digits": [xte[k:k + 1] for k in range(n_inputs)],
             "random": [rng.uniform(0, 1, (1, *xte.shape[1:])).astype(np.float32) for _ in range(n_inputs)]}
    labelled = ([xte[k:k + 1] for k in range(len(xte))], yte)
    res = compare(str(path), work, f"trained_{name}", cal, evals, runs, gpu, labelled)
    cal_random = [rng.uniform(0, 1, (1, *xte.shape[1:])).astype(np.float32) for _ in range(32)]
    res["calibrated_on_random"] = compare(str(path), work, f"trained_{name}_r", cal_random, evals, runs, False,
                                          labelled, timed=False)
    res["training"] = {k: rec[k] for k in ("input_shape", "epochs", "train_seconds", "float_test_top1_percent", "data")}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mobilenet_v2,resnet18,efficientnet_lite0")
    ap.add_argument("--calib", type=int, default=16, help="calibration inputs of the large models")
    ap.add_argument("--inputs", type=int, default=64, help="evaluation inputs of the large models")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per latency")
    ap.add_argument("--no-gpu", action="store_true", help="skip the PoCL latencies")
    ap.add_argument("--trained", action="store_true", help="also the digits-trained MobileNetV2, ResNet-18 and "
                    "EfficientNet-Lite0 (scripts/train_quant_models.py's cache; trained when missing: needs torch)")
    ap.add_argument("--no-random", action="store_true", help="skip the random-weight test models")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # quantize_static's advice to pre-process
    doc: dict = {"benchmark": "quantization", "machine": machine(), "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="mace-qbench-") as tmp:
        work = Path(tmp)
        say("digits")
        doc["digits"] = digits(work)
        doc["models"] = {}
        names = [m for m in args.models.split(",") if m]
        for name in [] if args.no_random else names:
            say(name)
            doc["models"][name] = random_model(name, work, args.calib, args.inputs, args.runs, not args.no_gpu)
        if args.trained:
            doc["trained_models"] = {}
            for name in names:
                say(name, "trained")
                doc["trained_models"][name] = trained_model(name, work, args.inputs, args.runs, not args.no_gpu)
    doc["load_average_end"] = os.getloadavg()
    json.dump(doc, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

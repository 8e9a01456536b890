"""Comparing mace outputs with onnxruntime's (or the source framework's): MACE's metrics plus SQNR in dB and max error.

cosine similarity (float64; both all-zero -> 1), SQNR = 10*log10(sum x^2 / sum (x-y)^2) in dB,
max absolute error, and argmax agreement (fraction of rows, over the last axis, whose argmax
matches). Pass/fail uses the similarity against the threshold, as MACE does
(defaults: 0.999 on the CPU runtime, 0.995 on the GPU runtime).
"""
from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = {"cpu": 0.999, "gpu": 0.995, "cpu+gpu": 0.995}


def metrics(got: np.ndarray, want: np.ndarray) -> dict:
    g = np.asarray(got, np.float64).ravel()
    w = np.asarray(want, np.float64).ravel()
    ng, nw = np.linalg.norm(g), np.linalg.norm(w)
    if ng == 0 and nw == 0:
        cos = 1.0
    elif ng == 0 or nw == 0:
        cos = 0.0
    else:
        cos = float(np.dot(g, w) / (ng * nw))
    noise = float(np.sum((g - w) ** 2))
    signal = float(np.sum(w ** 2))
    sqnr = float("inf") if noise == 0 else 10 * np.log10(max(signal, 1e-30) / noise)
    want_a = np.asarray(want)
    got_a = np.asarray(got)
    if want_a.ndim >= 1 and want_a.shape[-1] > 1:
        agree = float(np.mean(np.argmax(got_a.reshape(-1, want_a.shape[-1]), -1)
                              == np.argmax(want_a.reshape(-1, want_a.shape[-1]), -1)))
    else:
        agree = 1.0
    return {"cosine": cos, "sqnr_db": sqnr, "max_abs_error": float(np.max(np.abs(g - w))) if g.size else 0.0,
            "argmax_agreement": agree}


def random_inputs(graph, seed: int | None = None) -> dict[str, np.ndarray]:
    """Random inputs within the model's `input_ranges` (default [-1, 1]); never all zeros."""
    rng = np.random.default_rng(seed)
    ranges = graph.meta.get("input_ranges", {})
    return {n: rng.uniform(*ranges.get(n, (-1.0, 1.0)), graph.shape(n)).astype(np.float32)
            for n in graph.inputs}


def onnx_reference(onnx_path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime's outputs on `inputs`; InputError when the file is not an ONNX model that
    onnxruntime loads, or its inputs are not the converted model's."""
    import onnxruntime as ort

    from mace import fileio
    from mace.errors import InputError
    fix = "pass the ONNX model this .mace file was converted from with --reference"
    try:
        fileio.check_readable(onnx_path)
    except FileNotFoundError:
        raise InputError(f"{onnx_path}: no such file: {fix}") from None
    try:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph/... types
        raise InputError(f"{onnx_path}: onnxruntime cannot load it ({_first_line(exc)}): {fix}") from None
    ref_inputs = {i.name: i.shape for i in sess.get_inputs()}
    if set(ref_inputs) != set(inputs):
        raise InputError(f"{onnx_path}: its inputs ({', '.join(ref_inputs)}) are not the model's "
                         f"({', '.join(inputs)}): {fix}")
    for name, shape in ref_inputs.items():
        got = inputs[name].shape
        if len(shape) != len(got) or any(isinstance(d, int) and d != g for d, g in zip(shape, got)):
            raise InputError(f"{onnx_path}: input {name} has shape {list(shape)} there, {list(got)} in the "
                             f"model: {fix}")
    names = [o.name for o in sess.get_outputs()]
    try:
        outs = sess.run(None, {k: np.asarray(v, np.float32) for k, v in inputs.items()})
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{onnx_path}: onnxruntime failed on the inputs ({_first_line(exc)}): {fix}") from None
    return dict(zip(names, outs))


def reference_outputs(path, graph, inputs: dict) -> dict:
    """The reference's outputs: onnxruntime for an ONNX file, else the source framework itself
    (TensorFlow, the LiteRT interpreter, PyTorch: mace.convert.sources); inputs and outputs are
    moved between mace's layouts and the reference's (input_data_formats/output_data_formats)."""
    from pathlib import Path

    from mace.config import CALLABLE_RE
    from mace.convert import sources
    text = str(path)
    feeds = sources.to_source_layouts(graph, inputs)
    if Path(text).suffix.lower() == ".onnx" or (not Path(text).exists() and not CALLABLE_RE.match(text)) \
            or sources.detect(text) == "onnx":
        outs = onnx_reference(path, feeds)
    else:
        outs = sources.reference_outputs(text, graph, feeds)
    return sources.to_runtime_layouts(graph, outs)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def validate(engine, onnx_path, threshold: float | None = None, seed: int | None = None,
             inputs: dict | None = None) -> dict:
    """Outputs vs onnxruntime on `onnx_path` (a quantized model: mace.tools.quantcheck.validate)."""
    graph = engine.graph
    from mace.feeds import check_feeds
    inputs = check_feeds(graph, inputs or random_inputs(graph, seed))
    ref = reference_outputs(onnx_path, graph, inputs)
    got = engine.run(inputs)
    threshold = threshold if threshold is not None else graph.meta.get("validation_threshold", {}).get(
        "gpu" if "gpu" in engine.runtime else "cpu", DEFAULT_THRESHOLD[engine.runtime])
    outputs = {}
    for name, value in got.items():
        if name not in ref:
            outputs[name] = {"error": "not an output of the reference model"}
            continue
        if np.shape(value) != np.shape(ref[name]):
            from mace.errors import InputError
            raise InputError(f"{onnx_path}: output {name} has shape {list(np.shape(ref[name]))} there, "
                             f"{list(np.shape(value))} in the model: pass the ONNX model this .mace file "
                             f"was converted from with --reference")
        m = metrics(value, ref[name])
        m["passed"] = bool(m["cosine"] >= threshold)
        outputs[name] = m
    passed = all(o.get("passed", False) for o in outputs.values())
    return {"runtime": engine.runtime, "threshold": threshold, "passed": passed, "outputs": outputs}

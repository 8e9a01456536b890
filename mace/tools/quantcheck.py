"""`mace validate` on a quantized model: where it loses accuracy against its float model.

- per layer: cosine and SQNR of every value both graphs compute (by name; in the quantized model
  the value as the next layer sees it, after its FakeQuantize), on one input, CPU runtime;
- end to end: cosine, top-1 agreement (same argmax) and top-5 agreement (the float model's argmax
  among the quantized model's five best) over random inputs within input_ranges;
- `--accuracy`: Top-1 / Top-5 of both models on labelled data (an .npz of inputs `x` or the input's
  name, and labels `y`; or a folder with one sub-folder per class, .npy or images inside, classes
  numbered by their names when all are integers, else in sorted order).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from mace.errors import InputError
from mace.ir.graph import Graph

#: MACE's validation threshold for quantized models
QUANTIZED_THRESHOLD = 0.98


def is_quantized(graph: Graph) -> bool:
    return any(n.op_type == "FakeQuantize" for n in graph.nodes) or bool(graph.meta.get("quantized_weights"))


def _metrics(got, want) -> dict:
    from mace.tools.validate import metrics
    return metrics(got, want)


def float_graph(path, like: Graph) -> Graph:
    """The float model to compare with: a .mace file, or an ONNX model converted here."""
    path = Path(path)
    if path.suffix == ".mace":
        from mace.ir import modelfile
        g = modelfile.load(path)
    else:
        from mace.convert import convert
        from mace.convert.frontend import load_onnx
        from mace.quantize.lower import is_quantized as onnx_quantized
        proto = load_onnx(path)
        if onnx_quantized(proto):
            raise InputError(f"{path}: a quantized model: give the float model to compare with (--float FILE)")
        g = convert(proto, input_shapes={n: list(like.shape(n)) for n in like.inputs})
    if is_quantized(g):
        raise InputError(f"{path}: a quantized model: give the float model to compare with (--float FILE)")
    return g


def _values(graph: Graph, feeds: dict) -> dict[str, np.ndarray]:
    from mace.runtime.cpu.executor import CpuExecutor
    g = copy.copy(graph)
    g.outputs = list(dict.fromkeys(o for n in graph.nodes for o in n.outputs if o))
    return CpuExecutor(g, prepare=False).run(feeds)


def per_layer(qgraph: Graph, fgraph: Graph, feeds: dict) -> list[dict]:
    qv, fv = _values(qgraph, feeds), _values(fgraph, feeds)
    seen = {n.inputs[0]: n.outputs[0] for n in qgraph.nodes if n.op_type == "FakeQuantize"}
    ops = {o: n.op_type for n in fgraph.nodes for o in n.outputs}
    rows = []
    for n in fgraph.nodes:
        for v in n.outputs:
            q = seen.get(v, v)
            if v and q in qv and v in fv and np.shape(qv[q]) == np.shape(fv[v]):
                m = _metrics(qv[q], fv[v])
                rows.append({"value": v, "op": ops[v], "cosine": m["cosine"], "sqnr_db": m["sqnr_db"]})
    return rows


def _topk(logits: np.ndarray, k: int) -> np.ndarray:
    flat = logits.reshape(logits.shape[0] if logits.ndim > 1 else 1, -1)
    return np.argsort(-flat, axis=1)[:, :k]


def end_to_end(qengine, fengine, inputs: list[dict]) -> dict:
    cos, top1, top5 = [], [], []
    out = qengine.graph.outputs[0]
    for feeds in inputs:
        q, f = qengine.run(feeds)[out], fengine.run(feeds)[out]
        cos.append(_metrics(q, f)["cosine"])
        tq, tf = _topk(q, 5), _topk(f, 1)
        top1.append(float(np.mean(tq[:, 0] == tf[:, 0])))
        top5.append(float(np.mean([a in row for a, row in zip(tf[:, 0], tq)])))
    return {"inputs": len(inputs), "output": out, "cosine_mean": float(np.mean(cos)), "cosine_min": float(np.min(cos)),
            "top1_agreement": float(np.mean(top1)), "top5_agreement": float(np.mean(top5))}


def load_labelled(path, graph: Graph, limit: int = 10000) -> tuple[list[dict], np.ndarray]:
    path = Path(path)
    name, shape = graph.inputs[0], list(graph.shape(graph.inputs[0]))
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                x = z[name] if name in z.files else z["x"]
                y = z["y"] if "y" in z.files else z["labels"]
        except (KeyError, ValueError, OSError) as exc:
            raise InputError(f"--accuracy {path}: not an .npz with inputs `x` (or `{name}`) and labels `y` "
                             f"({type(exc).__name__}): save one with numpy.savez(x=..., y=...)") from None
        x = np.asarray(x, np.float32)[:limit]
        return [{name: x[k:k + 1].reshape(shape)} for k in range(len(x))], np.asarray(y).reshape(-1)[:limit]
    if not path.is_dir():
        raise InputError(f"--accuracy {path}: no such file or folder: give an .npz or a folder per class")
    from mace.quantize.calibration import load_inputs
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if not classes:
        raise InputError(f"--accuracy {path}: holds no class folders: one sub-folder per class, or an .npz")
    numbered = all(p.name.isdigit() for p in classes)
    feeds, labels = [], []
    for k, c in enumerate(classes):
        got = load_inputs(c, {name: shape}, graph.meta.get("input_ranges", {}), limit)
        feeds += got
        labels += [int(c.name) if numbered else k] * len(got)
    return feeds, np.asarray(labels)


def accuracy(qengine, fengine, feeds: list[dict], labels: np.ndarray) -> dict:
    out = qengine.graph.outputs[0]
    res = {"samples": len(feeds)}
    for key, engine in (("float", fengine), ("quantized", qengine)):
        top = np.concatenate([_topk(engine.run(f)[out], 5) for f in feeds])
        res[key] = {"top1": float(np.mean(top[:, 0] == labels)),
                    "top5": float(np.mean([lab in row for lab, row in zip(labels, top)]))}
    return res


def compare(qengine, float_path, seed: int | None = None, samples: int = 16, accuracy_data=None) -> dict:
    """The quantization section of `mace validate` (see the module docstring)."""
    import mace
    from mace.tools.validate import random_inputs
    fgraph = float_graph(float_path, qengine.graph)
    with mace.Engine(fgraph, runtime="cpu") as fengine:
        inputs = [random_inputs(qengine.graph, None if seed is None else seed + k) for k in range(samples)]
        res = {"float_model": str(float_path), "per_layer": per_layer(qengine.graph, fgraph, inputs[0]),
               "end_to_end": end_to_end(qengine, fengine, inputs)}
        if accuracy_data is not None:
            feeds, labels = load_labelled(accuracy_data, qengine.graph)
            res["accuracy"] = accuracy(qengine, fengine, feeds, labels)
            res["accuracy"]["data"] = str(accuracy_data)
    return res


def validate(engine, onnx_path, threshold: float | None = None, seed: int | None = None, inputs: dict | None = None,
             float_model=None, accuracy_data=None, samples: int = 16) -> dict:
    """`mace.tools.validate.validate`, and for a quantized model its comparison with the float model
    (`float_model`, default the reference when that is a float model) and MACE's quantized
    threshold (0.98) unless one is given."""
    from mace.tools.validate import validate as plain
    if not is_quantized(engine.graph):
        if float_model is not None or accuracy_data is not None:
            raise InputError(f"{onnx_path}: --float and --accuracy compare a quantized model with its float "
                             f"model: this model is not quantized")
        return plain(engine, onnx_path, threshold, seed, inputs)
    if threshold is None:
        meta = engine.graph.meta.get("validation_threshold", {}).get("gpu" if "gpu" in engine.runtime else "cpu")
        threshold = min(meta, QUANTIZED_THRESHOLD) if meta is not None else QUANTIZED_THRESHOLD
    doc = plain(engine, onnx_path, threshold, seed, inputs)
    if float_model is None:
        import onnx

        from mace.quantize.lower import is_quantized as onnx_quantized
        if onnx_quantized(onnx.load(str(onnx_path), load_external_data=False)):
            doc["quantization"] = {"note": "the reference is a quantized model: give --float FILE for the "
                                           "float comparison"}
            return doc
        float_model = onnx_path
    doc["quantization"] = compare(engine, float_model, seed, samples, accuracy_data)
    return doc

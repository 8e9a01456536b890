"""TFLite importers side by side, on which imports more models correctly (JSON on stdout,
progress on stderr).

Models, all made here with TF's TFLite converter (seeded, random weights): the .tflite files of
tests/sources (ResNet-like float and int8, MobileNetV2, the mobile-ops net, MediaPipe's custom ops
rewritten in), Keras applications (MobileNetV3 Small/Large, EfficientNetB0, ResNet50,
DenseNet121; float, two of them int8 too) and a small LSTM classifier.

Importers:
- tflite2onnx (last release 2022): ONNX run by onnxruntime;
- tf2onnx's TFLite frontend as mace calls it (`mace.convert.sources.tflite.to_onnx`: int8
  dequantized, MediaPipe's Convolution2DTransposeBias rewritten): ONNX run by onnxruntime, then
  mace's own CPU runtime on the converted .mace file;
- the three flatbuffer schemas a direct importer can stand on (tf2onnx's own generated copy, the
  `tflite` package, LiteRT's `schema_py_generated`): does each decode every operator of the model
  (its builtin code and its options table)? That is the part of an importer the schema decides;
  mapping decoded ops to ONNX is tf2onnx's handlers' work whichever schema decodes them.

"Correct" is cosine >= 0.999 of every output against the LiteRT interpreter (ai-edge-litert, its
XNNPACK delegate runs MediaPipe's custom ops) on one seeded uniform(-1, 1) input.
Needs the tflite extra, and tflite2onnx (`pip install --no-deps tflite2onnx`) for its column.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "sources"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
COSINE = 0.999
SCHEMAS = {"tf2onnx copy": "tf2onnx.tflite", "tflite package": "tflite", "LiteRT schema": "ai_edge_litert.schema_py_generated"}


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def _keras_apps(size: int):
    import tensorflow as tf
    apps = tf.keras.applications
    # logits, not softmax: near-uniform probabilities of random weights would agree whatever the import
    kw = {"input_shape": (size, size, 3), "weights": None, "classes": 10, "classifier_activation": None}
    return {
        "mobilenet_v3_small": lambda: apps.MobileNetV3Small(**kw),
        "mobilenet_v3_large": lambda: apps.MobileNetV3Large(**kw),
        "efficientnet_b0": lambda: apps.EfficientNetB0(**kw),
        "resnet50": lambda: apps.ResNet50(**kw),
        "densenet121": lambda: apps.DenseNet121(**kw),
    }


def _calibrated(build):
    """A Keras application whose batch-norm statistics are those of a random batch: with the
    default ones (mean 0, variance 1) random weights shrink the activations layer by layer to
    ~1e-10 logits, which int8 rounds to zero."""
    import tensorflow as tf

    def make():
        model = build()
        bns = [la for la in model.layers if isinstance(la, tf.keras.layers.BatchNormalization)]
        for la in bns:
            la.momentum = 0.0
        x = np.random.default_rng(1).uniform(-1, 1, (8, *model.input.shape[1:])).astype(np.float32)
        model(x, training=True)
        for la in bns:
            la.momentum = 0.99
        return model
    return make


def _lstm():
    import tensorflow as tf
    L = tf.keras.layers
    inp = L.Input((12, 8), batch_size=1)
    return tf.keras.Model(inp, L.Dense(4)(L.LSTM(16)(inp)))


def make_models(d: Path, size: int, quick: bool) -> dict[str, Path]:
    """name -> .tflite path, each made once in `d`."""
    import src_builders as b
    import src_custom_ops as c
    import tensorflow as tf
    made = {}

    def add(name, build, **kw):
        path = d / f"{name}.tflite"
        if not path.exists():
            say(f"making {name}")
            tf.keras.utils.set_random_seed(0)
            b.tflite(build(), path, **kw)
        made[name] = path

    add("resnet_like", b.resnet_like)
    add("resnet_like_int8", b.resnet_like, int8=True)
    add("mobilenet_v2_a035", b.mobilenet_v2)
    add("mobile_ops", b.mobile_ops)
    add("deconv", c.conv_transpose_net)
    made["deconv_bias_custom"] = c.with_conv_transpose_bias(made["deconv"], d / "deconv_bias_custom.tflite")
    add("pool", c.pool_unpool_net)
    made["argmax_unpool_custom"] = c.with_argmax_unpooling(made["pool"], d / "argmax_unpool_custom.tflite")
    if quick:
        return made
    for name, build in _keras_apps(size).items():
        add(name, _calibrated(build))
    for name in ("mobilenet_v3_small", "efficientnet_b0"):
        add(f"{name}_int8", _calibrated(_keras_apps(size)[name]), int8=True)
    add("lstm", _lstm)
    return made


def litert(path: Path, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from mace.convert.sources import SourceSpec, tflite
    info = tflite.inspect(SourceSpec(str(path), "tflite"))
    return tflite.reference(SourceSpec(str(path), "tflite"), x, info["inputs"], info["outputs"])


def feeds(path: Path) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(path))
    rng = np.random.default_rng(0)
    return {d["name"]: rng.uniform(-1, 1, d["shape"]).astype(np.float32) for d in it.get_input_details()}


def cosines(got: list[np.ndarray], want: list[np.ndarray]) -> list[float]:
    out = []
    for g, w in zip(got, want):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.size != w.size:
            out.append(float("nan"))
            continue
        if g.shape != w.shape and g.ndim == 4 and g.transpose(0, 2, 3, 1).shape == w.shape:
            g = g.transpose(0, 2, 3, 1)                                  # an NCHW output of an NHWC model
        g, w = g.ravel(), w.ravel()
        out.append(float(g @ w / (np.linalg.norm(g) * np.linalg.norm(w) + 1e-30)))
    return out


def _ort(model_bytes: bytes, x: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    inputs = []
    for i, arr in zip(sess.get_inputs(), x.values()):
        shape = [d if isinstance(d, int) else s for d, s in zip(i.shape, arr.shape)]
        a = arr if list(arr.shape) == shape else arr.transpose(0, 3, 1, 2)  # NCHW inputs of an NHWC model
        inputs.append((i.name, a))
    return sess.run(None, dict(inputs))


def _verdict(fn):
    t0 = time.perf_counter()
    try:
        res = fn()
    except Exception as exc:  # noqa: BLE001 - a converter's failure is a measured result
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
                "seconds": round(time.perf_counter() - t0, 2)}
    res["ok"] = bool(res["cosine"]) and all(c >= COSINE for c in res["cosine"])
    res["seconds"] = round(time.perf_counter() - t0, 2)
    return res


def run_tflite2onnx(path: Path, x, want, tmp: Path):
    def go():
        import tflite2onnx
        out = tmp / f"{path.stem}.t2o.onnx"
        tflite2onnx.convert(str(path), str(out))
        return {"cosine": cosines(_ort(out.read_bytes(), x), want)}
    return _verdict(go)


def run_tf2onnx(path: Path, x, want):
    def go():
        from mace.convert.sources import SourceSpec, tflite
        model = tflite.to_onnx(SourceSpec(str(path), "tflite")).model
        return {"cosine": cosines(_ort(model.SerializeToString(), x), want)}
    return _verdict(go)


def run_mace(path: Path, x, want, tmp: Path):
    def go():
        import mace
        from mace.convert import convert
        out = tmp / f"{path.stem}.mace"
        graph = convert(path, out)
        with mace.Engine(out, runtime="cpu") as engine:
            got = engine.run(dict(zip(graph.inputs, x.values())))
        return {"cosine": cosines([got[n] for n in graph.outputs], want)}
    return _verdict(go)


def schema_decode(path: Path) -> dict:
    """Per schema: operators decoded (builtin code in its enum, options table known) of all."""
    data = bytearray(path.read_bytes())
    res = {}
    for label, mod_name in SCHEMAS.items():
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as exc:
            res[label] = {"error": str(exc)}
            continue
        get = (lambda n, m=mod: getattr(m, n)) if mod_name.endswith("generated") else \
              (lambda n, m=mod_name: getattr(importlib.import_module(f"{m}.{n}"), n))
        ops = {v: k for k, v in vars(get("BuiltinOperator")).items() if not k.startswith("_")}
        opts = {v: k for k, v in vars(get("BuiltinOptions")).items() if not k.startswith("_")}
        model = get("Model").GetRootAsModel(data, 0)
        total, missed, unknown = 0, 0, set()
        for s in range(model.SubgraphsLength()):
            sub = model.Subgraphs(s)
            for k in range(sub.OperatorsLength()):
                op = sub.Operators(k)
                code = model.OperatorCodes(op.OpcodeIndex())
                builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
                total += 1
                if builtin not in ops:
                    unknown.add(f"builtin {builtin}")
                elif op.BuiltinOptionsType() not in opts:
                    unknown.add(f"{ops[builtin]} options {op.BuiltinOptionsType()}")
                else:
                    continue
                missed += 1
        res[label] = {"operators": total, "decoded": total - missed, "unknown": sorted(unknown)}
    return res


def schema_facts() -> dict:
    out = {}
    for label, mod_name in SCHEMAS.items():
        mod = importlib.import_module(mod_name)
        gen = mod_name.endswith("generated")
        get = (lambda n, m=mod: getattr(m, n)) if gen else \
              (lambda n, m=mod_name: getattr(importlib.import_module(f"{m}.{n}"), n))
        ops = {v: k for k, v in vars(get("BuiltinOperator")).items() if not k.startswith("_")}
        opts = [k for k in vars(get("BuiltinOptions")) if not k.startswith("_")]
        try:
            has2 = bool(get("BuiltinOptions2"))
        except (ImportError, AttributeError, ModuleNotFoundError):
            has2 = False
        out[label] = {"builtin_operators": len(ops), "last_operator": f"{max(ops)} {ops[max(ops)]}",
                      "builtin_options_tables": len(opts), "builtin_options2": has2}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, help="where the .tflite files are made (default: a temporary directory)")
    ap.add_argument("--size", type=int, default=96, help="input size of the Keras applications")
    ap.add_argument("--quick", action="store_true", help="only the tests' models")
    ap.add_argument("--no-mace", action="store_true", help="skip mace's own conversion and CPU run")
    args = ap.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):             # TF and Keras print progress on stdout
        report = measure(args)
    print(json.dumps(report, indent=1))


def measure(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        d = args.dir or tmp
        d.mkdir(parents=True, exist_ok=True)
        models = make_models(d, args.size, args.quick)
        rows = {}
        for name, path in models.items():
            say(f"importing {name}")
            x = feeds(path)
            want = list(litert(path, x).values())
            row = {"bytes": path.stat().st_size, "schemas": schema_decode(path),
                   "tflite2onnx": run_tflite2onnx(path, x, want, tmp), "tf2onnx": run_tf2onnx(path, x, want)}
            if not args.no_mace:
                row["mace_cpu"] = run_mace(path, x, want, tmp)
            sibling = path.with_name(path.name.replace("_int8", ""))
            if sibling != path and sibling.exists():         # quantization's own error, beside the import's
                row["int8_vs_float_litert"] = cosines(want, list(litert(sibling, dict(zip(feeds(sibling), x.values()))).values()))
            rows[name] = row
    import tensorflow as tf
    versions = {m: importlib.import_module(m).__version__ for m in ("tf2onnx", "onnxruntime", "onnx")}
    versions["tensorflow"] = tf.__version__
    for dist in ("tflite", "tflite2onnx", "ai-edge-litert"):
        try:
            from importlib.metadata import version
            versions[dist] = version(dist)
        except Exception:  # noqa: BLE001 - not installed
            versions[dist] = None
    summary = {k: sum(r[k]["ok"] for r in rows.values()) for k in ("tflite2onnx", "tf2onnx", "mace_cpu")
               if all(k in r for r in rows.values())}
    return {"versions": versions, "schemas": schema_facts(), "models": len(rows), "imported_correctly": summary,
            "results": rows}


if __name__ == "__main__":
    main()

"""Models from other frameworks: TensorFlow, TFLite, PyTorch (and Caffe, refused) -> ONNX.

Each source is one module with `to_onnx(spec) -> Imported` (an ONNX ModelProto whose inputs and
outputs carry the names the user gave, in the source's own layout) and `reference(spec, feeds)`
(the framework itself runs the model, for `mace validate --reference SOURCE`). The frameworks
are optional extras, imported only here and only when a model of theirs is converted or used
as a reference: a converted .mace model never needs them. `layouts.py` then puts the inputs and
outputs in the layout mace.yml asks for (input_data_formats / output_data_formats).
"""
from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mace.config import CALLABLE_RE
from mace.errors import ConversionError

log = logging.getLogger("mace.convert")

#: platform names of mace.yml's `platform:` field
PLATFORMS = ("onnx", "tensorflow", "tflite", "pytorch", "caffe")
_SUFFIXES = {".onnx": "onnx", ".pb": "tensorflow", ".tflite": "tflite", ".pt2": "pytorch", ".pt": "pytorch",
             ".pth": "pytorch", ".ts": "pytorch", ".torchscript": "pytorch", ".prototxt": "caffe",
             ".caffemodel": "caffe"}


@dataclass
class SourceSpec:
    """What mace.yml (or the command line) says about a source model."""

    path: str                                   # a file, a SavedModel directory or `module:callable`
    platform: str
    input_tensors: list[str] | None = None      # names as the framework spells them
    output_tensors: list[str] | None = None
    input_shapes: dict[str, list[int]] = field(default_factory=dict)   # in the runtime layout
    input_formats: list[str] | None = None      # NHWC | NCHW | NONE per input (None: the source's)
    output_formats: list[str] | None = None


@dataclass
class Imported:
    """A source model as ONNX: I/O named as the user names them, in the source's layouts."""

    model: object                               # onnx.ModelProto
    input_layouts: dict[str, str]               # NHWC / NCHW / NONE, the source's own
    output_layouts: dict[str, str]
    notes: list[str] = field(default_factory=list)   # info lines (e.g. "int8 runs dequantized")
    runtime_input_layouts: dict[str, str] = field(default_factory=dict)    # set by layouts.apply
    runtime_output_layouts: dict[str, str] = field(default_factory=dict)


def detect(path) -> str:
    """The platform of a model file, from its name and first bytes; a one-line error otherwise."""
    text = str(path)
    p = Path(text)
    if not p.exists() and CALLABLE_RE.match(text):
        return "pytorch"
    if not p.exists():
        raise ConversionError(f"{text}: no such model file or directory")
    if p.is_dir():
        if (p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists():
            return "tensorflow"
        raise ConversionError(f"{text}: a directory, but not a TensorFlow SavedModel (no saved_model.pb): "
                              f"pass a model file (.onnx, .pb, .tflite, .pt2, .pt) or a SavedModel directory")
    with open(p, "rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        return "tflite"
    if p.suffix.lower() in _SUFFIXES:
        return _SUFFIXES[p.suffix.lower()]
    if head[:2] == b"PK":  # a zip: torch.export (.pt2) and TorchScript archives both are
        return "pytorch"
    raise ConversionError(f"{text}: cannot tell the framework from the file name: give it a known suffix "
                          f"(.onnx, .pb, .tflite, .pt2, .pt) or set platform in mace.yml")


def require(module: str, extra: str, source):
    """Import a framework module, or a one-line error naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConversionError(f"{source}: reading this model needs {module.split('.')[0]} "
                              f"({type(exc).__name__}: {str(exc)[:80]}): pip install 'mace-engine[{extra}]'"
                              ) from None


def source_module(platform: str):
    if platform not in PLATFORMS or platform == "onnx":
        raise ConversionError(f"platform {platform!r} is not a source mace imports: use one of "
                              f"{', '.join(PLATFORMS)}")
    return importlib.import_module(f"mace.convert.sources.{platform}")


def load_model(model, platform: str | None, input_shapes: dict | None, io: dict | None):
    """(ONNX ModelProto, source meta or None) for a model path (any platform) or a ModelProto."""
    from mace.convert import frontend
    if not isinstance(model, (str, os.PathLike)):
        return model, None
    text, io = str(model), dict(io or {})
    if platform is None:
        onnx_like = Path(text).suffix.lower() == ".onnx" or (not Path(text).exists() and not CALLABLE_RE.match(text))
        platform = "onnx" if onnx_like else detect(text)
    spec = SourceSpec(text, platform, io.get("input_tensors"), io.get("output_tensors"),
                      dict(input_shapes or {}), io.get("input_formats"), io.get("output_formats"))
    if platform == "onnx":
        proto = frontend.load_onnx(model)
        if not (spec.input_formats or spec.output_formats):
            return proto, None
        imported = _onnx_layouts(proto)
    else:
        imported = source_module(platform).to_onnx(spec)
    from mace.convert.sources import layouts, rewrite
    rewrite.expand_depth_space(imported.model, text)
    layouts.apply(imported, spec)
    for note in imported.notes:
        log.info("%s", note)
    return imported.model, {"platform": platform, "path": text,
                            "input_layouts": imported.runtime_input_layouts,
                            "output_layouts": imported.runtime_output_layouts,
                            "source_input_layouts": imported.input_layouts,
                            "source_output_layouts": imported.output_layouts,
                            "notes": imported.notes}


def _onnx_layouts(proto) -> Imported:
    from mace.convert.sources.shapes import layout_of
    inits = {t.name for t in proto.graph.initializer}
    rank = lambda v: len(v.type.tensor_type.shape.dim)
    return Imported(proto, {v.name: layout_of(rank(v), "NCHW") for v in proto.graph.input if v.name not in inits},
                    {v.name: layout_of(rank(v), "NCHW") for v in proto.graph.output})


def to_onnx(spec: SourceSpec) -> Imported:
    """The source model as ONNX, its I/O in the layouts mace.yml asks for."""
    from mace.convert.sources import layouts
    imported = source_module(spec.platform).to_onnx(spec)
    return layouts.apply(imported, spec)


def digest(path) -> str:
    """sha256 of a model file, or of a SavedModel directory (mace.config.tree_sha256); a
    `module:callable` has no file: the sha256 of its text stands for it."""
    from mace.config import sha256_file, tree_sha256
    p = Path(path)
    if p.is_dir():
        return tree_sha256(p)
    if not p.exists():
        return hashlib.sha256(str(path).encode()).hexdigest()
    return sha256_file(p)


def tf_name(name: str) -> str:
    """A TensorFlow tensor name from MACE's op-name form (`input` -> `input:0`)."""
    return name if re.search(r":\d+$", name) else f"{name}:0"


def quiet_framework_logs() -> None:
    """TensorFlow prints banners on import; mace's own lines are the ones that matter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def _move(x, a: str, b: str):
    import numpy as np

    from mace.convert.sources.layouts import LAYOUTS, perm
    x = np.asarray(x)
    return np.transpose(x, perm(a, b)) if a != b and a in LAYOUTS and b in LAYOUTS and x.ndim == 4 else x


def to_source_layouts(graph, feeds: dict) -> dict:
    """mace's inputs (runtime layouts) as the source model takes them (its own layouts)."""
    meta = graph.meta.get("source") or {}
    rt, src = meta.get("input_layouts", {}), meta.get("source_input_layouts", {})
    return {n: _move(v, rt.get(n, "NONE"), src.get(n, "NONE")) for n, v in feeds.items()}


def to_runtime_layouts(graph, outs: dict) -> dict:
    """The source model's outputs in the layouts mace's outputs have."""
    meta = graph.meta.get("source") or {}
    rt, src = meta.get("output_layouts", {}), meta.get("source_output_layouts", {})
    return {n: _move(v, src.get(n, "NONE"), rt.get(n, "NONE")) for n, v in outs.items()}


def reference_outputs(path, graph, source_feeds: dict) -> dict:
    """The source framework's own outputs for `source_feeds` (in the source's layouts):
    `mace validate --reference SOURCE`."""
    from mace.errors import InputError, MaceError
    text = str(path)
    platform = detect(text)
    spec = SourceSpec(text, platform, list(graph.inputs), list(graph.outputs))
    try:
        return source_module(platform).reference(spec, source_feeds, list(graph.inputs), list(graph.outputs))
    except MaceError:
        raise
    except Exception as exc:  # noqa: BLE001 - each framework raises its own types (KeyError for a name)
        raise InputError(f"{text}: {platform} could not run it on the model's inputs ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:160] if str(exc) else ''}): pass the model this .mace "
                         f"file was converted from with --reference") from None

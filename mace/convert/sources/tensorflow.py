"""TensorFlow models: a frozen GraphDef (.pb, MACE's main input) or a SavedModel directory.

Converted by tf2onnx (maintained, covers TF's op set far beyond a hand-written importer; its
transpose optimizer removes the NHWC<->NCHW transposes around each conv). Tensor names are
TF's: `input` or `input:0` for a frozen graph (MACE's form, the op name, works), the signature's
input and output keys for a SavedModel. Inputs and outputs stay NHWC unless mace.yml says NCHW.
"""
from __future__ import annotations

import logging
from pathlib import Path

from mace.convert.sources import Imported, quiet_framework_logs, require, tf_name
from mace.convert.sources.shapes import check_names, layout_of
from mace.errors import ConversionError

log = logging.getLogger("mace.convert")
OPSET = 17
_FIX = "name them as in the TensorFlow model (input_tensors/output_tensors in mace.yml)"


def _tf(spec):
    quiet_framework_logs()
    require("tf2onnx", "tensorflow", spec.path)
    return require("tensorflow", "tensorflow", spec.path)


def _frozen(spec, tf):
    """(graph_def, input names, output names) of a frozen .pb; names as the user gives them."""
    gd = tf.compat.v1.GraphDef()
    try:
        gd.ParseFromString(Path(spec.path).read_bytes())
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and others
        raise ConversionError(f"{spec.path}: not a frozen TensorFlow GraphDef ({type(exc).__name__}): "
                              f"freeze the graph (or pass a SavedModel directory)") from None
    if any(n.op in ("VarHandleOp", "VariableV2") for n in gd.node):
        raise ConversionError(f"{spec.path}: the graph still holds variables: freeze it "
                              f"(convert_variables_to_constants) or pass the SavedModel directory")
    placeholders = [n.name for n in gd.node if n.op == "Placeholder"]
    used = {i.split(":")[0].lstrip("^") for n in gd.node for i in n.input}
    sinks = [n.name for n in gd.node if n.name not in used and n.op not in ("Const", "NoOp", "Placeholder")]
    ins = check_names([x.split(":")[0] for x in spec.input_tensors or []] or None, placeholders, "input",
                      spec.path, _FIX)
    ops = {n.name for n in gd.node}
    outs = spec.output_tensors or sinks
    missing = [o for o in outs if o.split(":")[0] not in ops]
    if missing:
        raise ConversionError(f"{spec.path}: the graph has no tensor {', '.join(missing)}: {_FIX}")
    given_in = spec.input_tensors or ins
    return gd, {tf_name(n): n for n in given_in}, {tf_name(n): n for n in outs}


def _saved(spec, tf):
    """(graph_def, {tf tensor: signature input key}, {tf tensor: signature output key})."""
    from tf2onnx import tf_loader
    try:
        gd, inputs, outputs, renames = tf_loader.from_saved_model(
            str(spec.path), None, None, return_tensors_to_rename=True)
    except Exception as exc:  # noqa: BLE001 - TF raises many types for a bad directory
        raise ConversionError(f"{spec.path}: TensorFlow cannot load the SavedModel ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
    keys_in = {renames.get(t, t): t for t in inputs}
    keys_out = {renames.get(t, t): t for t in outputs}
    want_in = check_names(spec.input_tensors, list(keys_in), "input", spec.path, _FIX)
    want_out = check_names(spec.output_tensors, list(keys_out), "output", spec.path, _FIX)
    return gd, {keys_in[k]: k for k in want_in}, {keys_out[k]: k for k in want_out}


def graph(spec):
    tf = _tf(spec)
    return (_saved if Path(spec.path).is_dir() else _frozen)(spec, tf)


def to_onnx(spec) -> Imported:
    import tf2onnx
    gd, ins, outs = graph(spec)
    try:
        model, _ = tf2onnx.convert.from_graph_def(gd, input_names=list(ins), output_names=list(outs),
                                                  opset=OPSET, tensors_to_rename={**ins, **outs})
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises ValueError/KeyError/... naming the op
        raise ConversionError(f"{spec.path}: tf2onnx cannot convert it ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    return Imported(model, _layouts(model.graph.input), _layouts(model.graph.output))


def _layouts(values) -> dict[str, str]:
    return {v.name: layout_of(len(v.type.tensor_type.shape.dim), "NHWC") for v in values}


_LOADED: dict = {}


def _load_saved(tf, path: str):
    """A SavedModel loaded once per process (validating on two runtimes asks twice)."""
    key = (path, tree_mtime(path))
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = tf.saved_model.load(path)
    return _LOADED[key]


def tree_mtime(path: str) -> float:
    return max(f.stat().st_mtime for f in Path(path).rglob("*"))


def reference(spec, feeds: dict, input_names: list[str], output_names: list[str]) -> dict:
    """TensorFlow's own outputs on `feeds` (in the source layout), by mace's I/O names: the
    SavedModel's serving signature, or a session over the frozen graph."""
    tf = _tf(spec)
    if Path(spec.path).is_dir():
        fn = _load_saved(tf, str(spec.path)).signatures["serving_default"]
        got = fn(**{n: tf.constant(feeds[n]) for n in input_names})
        return {n: got[n].numpy() for n in output_names}
    gd, ins, outs = graph(spec)
    by_name_in = {v: k for k, v in ins.items()}
    by_name_out = {v: k for k, v in outs.items()}
    with tf.Graph().as_default() as g:
        tf.import_graph_def(gd, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            got = sess.run([by_name_out[n] for n in output_names],
                           {by_name_in[n]: feeds[n] for n in input_names})
    return dict(zip(output_names, got))

"""`mace convert`: ONNX -> optimized IR -> .mace model file."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from mace.errors import ConversionError
from mace.ir import modelfile
from mace.ir.graph import Graph

log = logging.getLogger("mace.convert")


def convert(model, output: str | os.PathLike | None = None, input_shapes: dict | None = None,
            data_type: str = "fp32_fp32", runtime: str = "cpu+gpu", input_ranges: dict | None = None,
            obfuscate: bool = False, name: str | None = None, quantize=None, platform: str | None = None,
            io: dict | None = None) -> Graph:
    """Convert a model (an ONNX file or ModelProto; a TensorFlow, TFLite or PyTorch model, see
    mace.convert.sources) into an IR graph; write it when `output` is given. `platform` is
    detected from the file when not given; `io` holds mace.yml's input_tensors, output_tensors,
    input_formats and output_formats for a source model.
    `quantize` (mace.quantize.options.QuantizeOptions): quantize a float model (`quantize: 1`) or
    its weights only (`quantize_large_weights: 1`)."""
    from mace.convert import einsum, frontend, normalize, passes, support
    from mace.convert.sources import load_model
    from mace.ir import quantized as storage
    from mace.quantize import fakequant, lower
    from mace.runtime.cpu import registry as cpu_registry

    source = str(model) if isinstance(model, (str, os.PathLike)) else "<onnx model>"
    proto, source_meta = load_model(model, platform, input_shapes, io)
    if quantize is not None and quantize.mode == "full":
        from mace.quantize.quantizer import quantize_onnx
        if not isinstance(model, (str, os.PathLike)):
            raise ConversionError("quantize: 1 reads the model from its file: give a path")
        if source_meta and source_meta["platform"] != "onnx":
            raise ConversionError(f"{source}: quantize: 1 reads an ONNX model: convert this "
                                  f"{source_meta['platform']} model to ONNX first, or leave quantize out")
        proto = quantize_onnx(Path(model), quantize, _input_dims(proto, input_shapes), dict(input_ranges or {}))
    proto, quantized_weights = lower.lower(proto, source)
    graph = frontend.to_graph(proto, input_shapes, source=source)
    missing = [(n, o) for n in graph.nodes for o in n.outputs if o and o not in graph.shapes]
    if missing:
        n, o = missing[0]
        # Range's every input is a parameter: on constants it folds (frontend), on run-time values
        # its length is unknown until run time
        params = [i for i in n.inputs[0 if n.op_type == "Range" else 1:] if i and i not in graph.weights]
        if n.op_type not in cpu_registry.supported_ops() and not (n.op_type == "Range" and params):
            # onnx cannot infer shapes of ops it does not know
            raise ConversionError(f"{source}: node {n.name}: op type {n.op_type} is not supported by mace "
                                  f"(neither the CPU nor the GPU runtime has it)")
        if params:  # e.g. Reshape's shape, Resize's scales, Reduce*'s axes, Range's bounds given at run time
            raise ConversionError(f"{source}: node {n.name} ({n.op_type}): the shape of {o} depends on the "
                                  f"run-time value {params[0]} (input {n.inputs.index(params[0])}), and mace "
                                  f"needs static shapes: make {params[0]} a constant (an initializer)")
        raise ConversionError(f"{source}: cannot infer the shape of {o} (output of {n.name}, {n.op_type}): "
                              f"set static input_shapes (in mace.yml, or --input-shape)")
    fakequant.fuse(graph, source)
    support.check(graph, source)
    normalize.normalize(graph)
    einsum.lower(graph)
    stats = passes.optimize(graph)
    supported = cpu_registry.supported_ops()
    for n in graph.nodes:
        if n.op_type not in supported:
            raise ConversionError(f"{source}: node {n.name}: op type {n.op_type} is not supported by mace "
                                  f"(neither the CPU nor the GPU runtime has it)")
    if quantize is not None and quantize.mode == "weights":
        from mace.quantize.weights import quantize_weights
        quantized_weights.update(quantize_weights(graph, quantize.per_channel))
    stats["int8_weights"] = storage.mark(graph, quantized_weights)
    if quantize is not None:
        graph.meta["quantize"] = {"mode": quantize.mode, "stat": quantize.stat, "per_channel": quantize.per_channel}
    log.debug("optimization passes: %s", stats)
    if obfuscate:
        from mace.convert.obfuscate import obfuscate as _obf
        _obf(graph)
    graph.name = name or graph.name
    graph.meta.update({"data_type": data_type, "runtime": runtime, "passes": stats})
    if input_ranges:
        graph.meta["input_ranges"] = {k: list(v) for k, v in input_ranges.items()}
    if source_meta:
        graph.meta["source"] = source_meta
    if isinstance(model, (str, os.PathLike)):
        from mace.convert.sources import digest
        graph.meta["source_sha256"] = digest(model)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        graph.meta["model_sha256"] = modelfile.save(graph, output)
    return graph


def _input_dims(proto, input_shapes: dict | None) -> dict[str, list[int]]:
    """The static shape of each graph input (given shapes first; a dynamic dimension is 1)."""
    inits = {i.name for i in proto.graph.initializer}
    out = {}
    for i in proto.graph.input:
        if i.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
                for d in i.type.tensor_type.shape.dim]
        out[i.name] = list((input_shapes or {}).get(i.name, dims))
    return out

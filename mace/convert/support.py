"""What mace computes, checked at conversion so that nothing runs that would give a wrong answer.

Element types: the engine computes in float32 (with float16 storage on the GPU when the model's
data_type asks for it, and int8 for quantized models). int32/int64 and bool values exist only
while the converter folds shape arithmetic (ONNX's reference evaluator computes them, with ONNX's
integer semantics); a model whose inputs, outputs or run-time values have any other type is
refused here, naming the value, its type and the fix. Also refused: optional outputs no kernel
computes (a MaxPool's Indices, a Dropout's mask, BatchNormalization's training statistics),
Dropout in training mode, and outputs that are constants.
"""
from __future__ import annotations

import numpy as np

from mace.errors import ConversionError
from mace.ir.graph import Graph

#: the element type every run-time value of a converted model has
COMPUTE_TYPE = "float32"
#: element types folded at conversion only (shape arithmetic, indices, masks)
FOLD_TYPES = ("int32", "int64", "bool")
#: op type -> how many leading outputs its kernels compute (the rest are optional extras)
_OUTPUTS_COMPUTED = {"BatchNormalization": 1, "Dropout": 1, "MaxPool": 1, "LayerNormalization": 1}


def check(graph: Graph, source: str) -> None:
    """Refuse what no runtime computes correctly (see the module docstring)."""
    _check_outputs(graph, source)
    used = {i for n in graph.nodes for i in n.inputs if i} | set(graph.outputs)
    for node in graph.nodes:
        what = f"{source}: node {node.name} ({node.op_type})"
        keep = _OUTPUTS_COMPUTED.get(node.op_type)
        if keep is not None:
            extra = [o for o in node.outputs[keep:] if o and o in used]
            if extra:
                raise ConversionError(f"{what}: its optional output {extra[0]} (training statistics, mask "
                                      f"or indices) is not computed by mace: export the model for inference "
                                      f"without it")
        if node.op_type == "Dropout":
            _check_dropout(graph, node, what)
        for v in [*node.inputs, *node.outputs]:
            if v and v not in graph.weights:
                _check_type(graph, v, f"{what}: value {v}")


def _check_outputs(graph: Graph, source: str) -> None:
    for name in graph.inputs:
        _check_type(graph, name, f"{source}: input {name}")
    for name in graph.outputs:
        if name in graph.weights:
            raise ConversionError(f"{source}: output {name} is a constant (it depends on no input), "
                                  f"which mace does not compute at run time: take it from the model "
                                  f"file or drop it from the graph outputs")
        _check_type(graph, name, f"{source}: output {name}")


def _check_type(graph: Graph, name: str, what: str) -> None:
    dtype = graph.dtypes.get(name, COMPUTE_TYPE)
    if dtype != COMPUTE_TYPE:
        where = ("folded at conversion only (shape arithmetic)" if dtype in FOLD_TYPES
                 else "not supported")
        raise ConversionError(f"{what} has element type {dtype}, which mace computes only in {COMPUTE_TYPE} "
                              f"({dtype} is {where}): export the model with {COMPUTE_TYPE} inputs, "
                              f"outputs and activations")


def _check_dropout(graph: Graph, node, what: str) -> None:
    mode = node.inputs[2] if len(node.inputs) > 2 else ""
    if not mode:
        return
    if mode not in graph.weights:
        return  # a run-time training_mode is a bool value: refused by the type check
    if bool(np.asarray(graph.weights[mode]).reshape(-1)[0]):
        raise ConversionError(f"{what}: training_mode is true, so its result is random: export the model "
                              f"for inference (training_mode false)")

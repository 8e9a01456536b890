"""What mace computes, checked at conversion so that nothing runs that would give a wrong answer.

Element types (`mace.ops.dtypes`): float32 everywhere (float16 storage on the GPU when the
model's data_type asks for it); integer and bool values on the CPU runtime, for the ops whose
kernels declare them (`mace.runtime.cpu.registry.op_types`). A model whose inputs, outputs or
run-time values have another type (float16, float64, bfloat16, float8, string), or a node whose
values have a type its kernels do not compute in, is refused here, naming the node, the value, its
type and the fix. Also refused: optional outputs no kernel
computes (a MaxPool's Indices, a Dropout's mask, BatchNormalization's training statistics),
Dropout in training mode, and outputs that are constants.
"""
from __future__ import annotations

import numpy as np

from mace.errors import ConversionError
from mace.ir.graph import Graph
from mace.ops.dtypes import RUN_TYPES

#: the element type of float values
COMPUTE_TYPE = "float32"
#: op type -> how many leading outputs its kernels compute (the rest are optional extras)
_OUTPUTS_COMPUTED = {"BatchNormalization": 1, "Dropout": 1, "MaxPool": 1}


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
        _check_node_types(graph, node, what)
    _check_io_types(graph, source)


def _check_outputs(graph: Graph, source: str) -> None:
    for name in graph.outputs:
        if name in graph.weights:
            raise ConversionError(f"{source}: output {name} is a constant (it depends on no input), "
                                  f"which mace does not compute at run time: take it from the model "
                                  f"file or drop it from the graph outputs")


def _check_io_types(graph: Graph, source: str) -> None:
    """Inputs and outputs no node reads or writes (a node's values are checked with its op named)."""
    for name in graph.inputs:
        _check_type(graph, name, f"{source}: input {name}")
    for name in graph.outputs:
        _check_type(graph, name, f"{source}: output {name}")


def _check_type(graph: Graph, name: str, what: str) -> None:
    dtype = graph.dtypes.get(name, COMPUTE_TYPE)
    if dtype not in RUN_TYPES:
        raise ConversionError(f"{what} has element type {dtype}, which mace does not compute in (it computes "
                              f"float32, integers and bool): export the model with float32 values")


def _check_node_types(graph: Graph, node, what: str) -> None:
    """Every run-time value of the node has a type the node's CPU kernels compute in."""
    from mace.runtime.cpu import registry
    allowed = registry.op_types(node.op_type)
    for v in [*node.inputs, *node.outputs]:
        if not v or v in graph.weights:
            continue
        dtype = graph.dtypes.get(v, COMPUTE_TYPE)
        _check_type(graph, v, f"{what}: value {v}")
        if dtype not in allowed:
            raise ConversionError(f"{what}: value {v} has element type {dtype}, which mace computes "
                                  f"{node.op_type} in only as {'/'.join(sorted(allowed))}: export the model "
                                  f"with {COMPUTE_TYPE} values for it")


def _check_dropout(graph: Graph, node, what: str) -> None:
    mode = node.inputs[2] if len(node.inputs) > 2 else ""
    if not mode:
        return
    if mode not in graph.weights:
        return  # a run-time training_mode is a bool value: refused by the type check
    if bool(np.asarray(graph.weights[mode]).reshape(-1)[0]):
        raise ConversionError(f"{what}: training_mode is true, so its result is random: export the model "
                              f"for inference (training_mode false)")

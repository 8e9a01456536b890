"""Comparisons (Equal, Less, Greater, LessOrEqual, GreaterOrEqual -> bool), logic on bools
(Not, And, Or, Xor), Where (select by a bool condition, any element type) and IsNaN/IsInf; full
NumPy (= ONNX multidirectional) broadcasting."""
from __future__ import annotations

import numpy as np

from mace.ops.dtypes import ANY, BOOL, FLOAT
from mace.runtime.cpu.registry import cpu_op

_COMPARE = {"Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
            "GreaterOrEqual": np.greater_equal}
_LOGIC = {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}


@cpu_op(*_COMPARE, types=ANY)
def compare(node, inputs):
    return [np.asarray(_COMPARE[node.op_type](np.asarray(inputs[0]), np.asarray(inputs[1])), dtype=np.bool_)]


@cpu_op(*_LOGIC, "Not", types=BOOL)
def logic(node, inputs):
    if node.op_type == "Not":
        return [np.logical_not(np.asarray(inputs[0], np.bool_))]
    return [_LOGIC[node.op_type](np.asarray(inputs[0], np.bool_), np.asarray(inputs[1], np.bool_))]


@cpu_op("Where", types=ANY)
def where(node, inputs):
    x, y = np.asarray(inputs[1]), np.asarray(inputs[2])
    return [np.asarray(np.where(np.asarray(inputs[0], np.bool_), x, y), dtype=x.dtype)]


@cpu_op("IsNaN", "IsInf", types=FLOAT | BOOL)
def is_special(node, inputs):
    x = np.asarray(inputs[0], np.float32)
    if node.op_type == "IsNaN":
        return [np.isnan(x)]
    a = node.attrs
    neg, pos = int(a.get("detect_negative", 1)), int(a.get("detect_positive", 1))
    return [np.isinf(x) & (((x < 0) & bool(neg)) | ((x > 0) & bool(pos)))]

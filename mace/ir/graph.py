"""Graph and Node: the IR shared by the converter, both runtimes and the model file.

Ops keep their ONNX names and attribute names (defaults filled in by the frontend), so the ONNX
spec documents them. Converter passes add a few attributes of their own, listed here once:

- ``activation`` (str) and ``activation_params`` (list[float]) on Conv / ConvTranspose / Gemm /
  MatMul / Add / BatchNormalization: an activation fused into the producer (Relu, Clip, LeakyRelu,
  Sigmoid, Tanh, HardSigmoid, HardSwish, Gelu, GeluTanh (Gelu's tanh form), Silu (x * sigmoid(x))).
- ``residual`` (int, 1) on Conv: a 4th input (same shape as the output) is added after the bias,
  before the fused activation: y = act(conv(x) + bias + residual) (a folded Conv -> Add).
- Conv ``pads`` are always explicit (auto_pad resolved by the frontend).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Node:
    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "op_type": self.op_type, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "attrs": self.attrs}

    @classmethod
    def from_dict(cls, d: dict) -> Node:
        return cls(d["name"], d["op_type"], list(d["inputs"]), list(d["outputs"]), dict(d.get("attrs", {})))


@dataclass
class Graph:
    """A topologically sorted graph with a static shape and dtype for every value."""

    name: str
    nodes: list[Node]
    inputs: list[str]
    outputs: list[str]
    shapes: dict[str, list[int]]
    dtypes: dict[str, str]
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.shapes[name])

    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
        return counts

"""The intermediate representation: a graph of ONNX-named ops with static shapes and weights."""
from mace.ir.graph import Graph, Node

__all__ = ["Graph", "Node"]

"""Model protection (`obfuscate: true` in mace.yml): rename ops, tensors and weights.

Every op name and every tensor name except the graph's inputs and outputs becomes an 8-hex-digit
MD5-based name (as Xiaomi MACE does), so a shipped `.mace` file reveals no layer names; the
graph's structure, shapes and weights are unchanged, so results are identical. Unlike MACE the
digest is salted (a random salt per conversion unless one is given), so common layer names such as
`conv1` cannot be recovered with a dictionary of MD5 digests.
"""
from __future__ import annotations

import hashlib
import os

from mace.ir.graph import Graph


def _namer(salt: bytes, taken: set[str]):
    cache: dict[str, str] = {}

    def name(kind: str, old: str) -> str:
        if old in cache:
            return cache[old]
        digest = hashlib.md5(salt + kind.encode() + b"\0" + old.encode("utf-8")).hexdigest()
        width = 8
        new = digest[:width]
        while new in taken:                      # an MD5 prefix collision: take more digits
            width += 1
            if width > len(digest):
                digest = hashlib.md5(digest.encode()).hexdigest()
                width = 8
            new = digest[:width]
        taken.add(new)
        cache[old] = new
        return new
    return name


def obfuscate(graph: Graph, salt: bytes | None = None) -> None:
    """Rename ops and tensors (weights included) of `graph` in place, keeping its inputs and
    outputs. `salt` (default: random) makes the names unguessable; give one for reproducible
    output."""
    salt = os.urandom(16) if salt is None else bytes(salt)
    keep = set(graph.inputs) | set(graph.outputs)
    taken = set(keep)
    tensor = _namer(salt, taken)
    op = _namer(salt, taken)

    def t(name: str) -> str:
        return name if (not name or name in keep) else tensor("t", name)

    for n in graph.nodes:
        n.name = op("op", n.name)
        n.inputs = [t(v) for v in n.inputs]
        n.outputs = [t(v) for v in n.outputs]
        for key, value in list(n.attrs.items()):      # attrs naming tensors (rare: subgraph refs)
            if isinstance(value, str) and value in graph.shapes and value not in keep:
                n.attrs[key] = t(value)
    graph.weights = {t(k): v for k, v in graph.weights.items()}
    graph.shapes = {t(k): v for k, v in graph.shapes.items()}
    graph.dtypes = {t(k): v for k, v in graph.dtypes.items()}
    for key in ("value_names", "tensor_names", "debug_names"):   # never ship debug name maps
        graph.meta.pop(key, None)
    graph.meta["obfuscated"] = True


__all__ = ["obfuscate"]

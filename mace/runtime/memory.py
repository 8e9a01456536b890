"""Buffer planning: intermediates share a few reusable slots instead of one buffer each.

Greedy best-fit over the execution order (as MACE's memory optimizer): a value takes the free
slot whose size fits best, a slot is freed after the last reader of every value living in it,
and alias ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity) share their input's slot.
Graph inputs and outputs get slots of their own that are never reused.
"""
from __future__ import annotations

from dataclasses import dataclass

from mace.ir.graph import Graph


@dataclass
class MemoryPlan:
    slot_of: dict[str, int]        # value name -> slot index
    slot_bytes: list[int]          # size of each slot
    naive_bytes: int               # what one buffer per value would take

    @property
    def total_bytes(self) -> int:
        return sum(self.slot_bytes)


def plan(graph: Graph, nbytes, alias_ops: set[str], skip: set[str] = frozenset()) -> MemoryPlan:
    """`nbytes(name)` gives a value's size; nodes whose name is in `alias_ops` alias input 0."""
    root: dict[str, str] = {}
    for n in graph.nodes:
        if n.name in alias_ops:
            for o in n.outputs:
                root[o] = root.get(n.inputs[0], n.inputs[0])

    def r(v: str) -> str:
        return root.get(v, v)

    last_use: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        for v in n.inputs:
            if v and v not in graph.weights:
                last_use[r(v)] = max(last_use.get(r(v), -1), i)
    pinned = {r(v) for v in graph.inputs + graph.outputs}
    slot_of: dict[str, int] = {}
    slot_bytes: list[int] = []
    free: list[int] = []
    naive = 0

    def new_slot(size: int) -> int:
        slot_bytes.append(size)
        return len(slot_bytes) - 1

    for v in graph.inputs:
        slot_of[v] = new_slot(nbytes(v))
        naive += nbytes(v)
    for i, n in enumerate(graph.nodes):
        for o in n.outputs:
            if not o or o in skip:
                continue
            if r(o) != o:
                continue
            size = nbytes(o)
            naive += size
            if o in pinned:
                slot_of[o] = new_slot(size)
                continue
            fits = [s for s in free if slot_bytes[s] >= size]
            if fits:
                s = min(fits, key=lambda s: slot_bytes[s])
            elif free:
                s = max(free, key=lambda s: slot_bytes[s])
                slot_bytes[s] = size
            else:
                s = new_slot(size)
            if s in free:
                free.remove(s)
            slot_of[o] = s
        for o in n.outputs:
            if o and last_use.get(r(o), -1) < i and r(o) == o and o not in pinned and o in slot_of:
                free.append(slot_of[o])  # produced but never read
        for v in {r(x) for x in n.inputs if x and x not in graph.weights}:
            if last_use.get(v) == i and v not in pinned and v in slot_of:
                free.append(slot_of[v])
    for alias, base in root.items():
        b = r(base)
        if b in slot_of:
            slot_of[alias] = slot_of[b]
    return MemoryPlan(slot_of, slot_bytes, naive)

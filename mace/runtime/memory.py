"""Buffer planning: intermediates share a few reusable slots instead of one buffer each.

Greedy best-fit over the execution order (as MACE's memory optimizer): a value takes the free
slot whose size fits best, a slot is freed after the last reader of every value living in it,
and alias ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity) share their input's slot.
A view (a value its producer writes straight into a byte range of a base value, e.g. a slice of
an in-place concat) lives in its base's slot as well: the slot is taken at the first producer of
the base or of any of its views and freed after the last reader of all of them.
Graph inputs and outputs get slots of their own that are never reused.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mace.ir.graph import Graph


@dataclass
class MemoryPlan:
    slot_of: dict[str, int]        # value name -> slot index
    slot_bytes: list[int]          # size of each slot
    naive_bytes: int               # what one buffer per value would take
    #: values inside another value's slot (views and their aliases) -> byte offset in the slot;
    #: every other value starts at its slot's start
    offset_of: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(self.slot_bytes)


def plan(graph: Graph, nbytes, alias_ops: set[str],
         views: dict[str, tuple[str, int]] | None = None) -> MemoryPlan:
    """`nbytes(name)` gives a value's size; nodes whose name is in `alias_ops` alias input 0;
    `views` maps a value to (base value, byte offset of the value inside the base)."""
    views = views or {}
    alias_of = {o: n.inputs[0] for n in graph.nodes if n.name in alias_ops for o in n.outputs if o}
    place: dict[str, tuple[str, int, bool]] = {}

    def where(v: str) -> tuple[str, int, bool]:
        """(root value owning the slot, byte offset in it, whether a view is on the way)."""
        if v not in place:
            if v in views:
                base, off = views[v]
                root, base_off, _ = where(base)
                place[v] = (root, base_off + off, True)
            elif v in alias_of:
                place[v] = where(alias_of[v])
            else:
                place[v] = (v, 0, False)
        return place[v]

    def r(v: str) -> str:
        return where(v)[0]

    for v in graph.inputs + [o for n in graph.nodes for o in n.outputs if o]:
        where(v)  # in execution order, so alias chains resolve without deep recursion
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
        outs = [o for o in n.outputs if o]
        for o in outs:
            if o not in alias_of:
                naive += nbytes(o)
            root = r(o)
            if root in slot_of:  # an alias, or a base whose views came first
                continue
            size = nbytes(root)
            if root in pinned:
                slot_of[root] = new_slot(size)
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
            slot_of[root] = s
        for root in {r(o) for o in outs}:
            if last_use.get(root, -1) < i and root not in pinned and root in slot_of:
                free.append(slot_of[root])  # produced but never read
        for v in {r(x) for x in n.inputs if x and x not in graph.weights}:
            if last_use.get(v) == i and v not in pinned and v in slot_of:
                free.append(slot_of[v])
    offset_of: dict[str, int] = {}
    for v, (root, off, viewed) in place.items():
        if root in slot_of:
            slot_of[v] = slot_of[root]
            if viewed:
                offset_of[v] = off
    return MemoryPlan(slot_of, slot_bytes, naive, offset_of)

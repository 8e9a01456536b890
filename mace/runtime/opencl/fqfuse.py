"""FakeQuantize fused into the conv (or same-shape Add / Sub / Mul) that produces its input (the GPU runtime's one fusion of a
`quantize: 1` model: nearly every conv output there is read by one per-tensor FakeQuantize, and
that separate launch and pass over the activation cost more than the convs themselves).

Where a Conv's output is read only by a per-tensor FakeQuantize (and is no graph output, nor is
the FakeQuantize's), the conv applies it at the end of its epilogue (-DFQ, FAKEQ in common.h:
scale and zero point as kernel arguments, one program for all layers) and the FakeQuantize
becomes an alias of the conv's output: no launch, no buffer. The graph is unchanged, so
`qdot.input_grid` still finds the grid of an int8_dot input, and the CPU runtime runs the nodes
as they are. Conv variants without the epilogue (NO_FQ) run a FakeQuantize in place after their
launches. MACE_FQ_FUSE=0 keeps every FakeQuantize as its own launch."""
from __future__ import annotations

from mace import settings
from mace.ir.graph import Graph
from mace.runtime.opencl.ops.quantize import InPlaceFakeQuantize, fq_args, fq_options, per_tensor

#: conv variants whose last kernel has no FQ epilogue (their output gets an in-place FakeQuantize)
NO_FQ = frozenset({"winograd", "gpu_winograd", "int8_dot", "gpu_direct_splitk"})
#: producer op types; an Add / Sub / Mul fuses where its inputs have the output's shape (one launch)
PRODUCERS = ("Conv", "Add", "Sub", "Mul")


def plan(graph: Graph) -> dict[str, tuple[str, tuple]]:
    """producer node name -> (FakeQuantize node name, its (scale, zero point, qmin, qmax))."""
    if settings.get("MACE_FQ_FUSE", "1") == "0":
        return {}
    consumers = graph.consumers()
    outside = set(graph.outputs) | set(graph.inputs)
    out: dict[str, tuple[str, tuple]] = {}
    for n in graph.nodes:
        if n.op_type not in PRODUCERS or not n.outputs or n.outputs[0] in outside:
            continue
        readers = consumers.get(n.outputs[0], [])
        if len(readers) != 1 or readers[0].op_type != "FakeQuantize":
            continue
        fq = readers[0]
        grid = per_tensor(fq.attrs)
        if grid is not None and fq.inputs[0] == n.outputs[0] and fq.outputs[0] not in outside:
            out[n.name] = (fq.name, grid)
    return out


def grid_of(rt, node) -> tuple | None:
    """The grid of the FakeQuantize that the op of `node` is to apply, or None."""
    entry = getattr(rt, "fq_plan", {}).get(node.name)
    return entry[1] if entry is not None else None


def link(ops: dict, fq_plan: dict) -> int:
    """After placement: each planned FakeQuantize whose producer is a GPU op applying it becomes
    an alias (no launch); returns how many."""
    n = 0
    for prod, (fq_name, _) in fq_plan.items():
        p, q = ops.get(prod), ops.get(fq_name)
        if p is not None and q is not None and getattr(p, "fq", None) is not None:
            q.alias, q.fused_into = True, prod
            n += 1
    return n


def build_options(op, variant: str) -> list[str]:
    """The FQ compile options of `variant`'s main kernel (none for NO_FQ variants), and the
    in-place FakeQuantize those need."""
    op.fq_inplace = None
    if op.fq is None:
        return []
    if variant in NO_FQ:
        op.fq_inplace = InPlaceFakeQuantize(op, op.fq, op.out_elems)
        return []
    return fq_options(op.fq)


def add_args(op, variant: str) -> None:
    """FQ_ARGS values after the main kernel's arguments (`op.args`) of `variant`."""
    if op.fq is not None and variant not in NO_FQ:
        op.args = op.args + fq_args(op.fq)


def finish(op, launches: list, out) -> list:
    """The op's launches, then the in-place FakeQuantize of a NO_FQ variant."""
    if getattr(op, "fq_inplace", None) is not None:
        launches.append(op.fq_inplace.launch(out, op.node.name))
    return launches

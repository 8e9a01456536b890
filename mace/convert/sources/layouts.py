"""Input and output layouts (mace.yml's input_data_formats / output_data_formats).

A model's runtime inputs and outputs keep the source's layout (NHWC for TensorFlow and TFLite,
NCHW for ONNX and PyTorch) unless the deployment file asks for the other one: then a Transpose
is put in front of the input (behind the output), and a Transpose pair that cancels out, as an
NHWC model's own NHWC->NCHW transpose meets the one added here, is removed, so asking for the
layout the kernels use costs nothing.
"""
from __future__ import annotations

from mace.errors import ConversionError

LAYOUTS = ("NHWC", "NCHW")
#: values mace.yml may give: a layout, or NONE/AUTO for "the source's own"
FORMAT_VALUES = ("NHWC", "NCHW", "NONE", "AUTO")


def perm(src: str, dst: str) -> list[int]:
    """The Transpose perm that turns a tensor in layout `src` into layout `dst`."""
    return [src.index(c) for c in dst]


def _wanted(given: list[str] | None, names: list[str], own: dict[str, str], what: str, source) -> dict[str, str]:
    if given is None:
        return dict(own)
    if len(given) == 1 and len(names) > 1:
        given = given * len(names)
    if len(given) != len(names):
        raise ConversionError(f"{source}: {len(given)} {what}_data_formats for {len(names)} {what}s: give one "
                              f"per {what} (NHWC or NCHW)")
    out = {}
    for name, fmt in zip(names, given):
        fmt = fmt.upper()
        if fmt not in FORMAT_VALUES:
            raise ConversionError(f"{source}: {what}_data_formats: {fmt!r} for {name}: use NHWC or NCHW")
        out[name] = own[name] if fmt in ("NONE", "AUTO") or own[name] not in LAYOUTS else fmt
    return out


def apply(imported, spec):
    """Transpose the model's inputs/outputs into the layouts `spec` asks for (in place); the
    chosen layouts replace the source's in `imported.runtime_*_layouts`."""
    from onnx import helper
    model = imported.model
    g = model.graph
    inputs = [i.name for i in g.input if i.name not in {t.name for t in g.initializer}]
    outputs = [o.name for o in g.output]
    want_in = _wanted(spec.input_formats, inputs, imported.input_layouts, "input", spec.path)
    want_out = _wanted(spec.output_formats, outputs, imported.output_layouts, "output", spec.path)
    front, back = [], []
    for vi in g.input:
        own, want = imported.input_layouts.get(vi.name, "NONE"), want_in.get(vi.name)
        if vi.name in want_in and own != want and len(vi.type.tensor_type.shape.dim) == 4:
            inner = f"{vi.name}__{own.lower()}"
            _rename_uses(g, vi.name, inner)
            front.append(helper.make_node("Transpose", [vi.name], [inner], perm=perm(want, own),
                                          name=f"{vi.name}__to_{own.lower()}"))
            _permute_dims(vi, perm(own, want))
    for vo in g.output:
        own, want = imported.output_layouts.get(vo.name, "NONE"), want_out.get(vo.name)
        if own != want and len(vo.type.tensor_type.shape.dim) == 4:
            inner = f"{vo.name}__{own.lower()}"
            for n in g.node:
                n.output[:] = [inner if o == vo.name else o for o in n.output]
            _rename_uses(g, vo.name, inner)
            back.append(helper.make_node("Transpose", [inner], [vo.name], perm=perm(own, want),
                                         name=f"{vo.name}__to_{want.lower()}"))
            _permute_dims(vo, perm(own, want))
    nodes = front + list(g.node) + back
    del g.node[:]
    g.node.extend(nodes)
    cancel_transposes(g)
    imported.runtime_input_layouts = {n: want_in.get(n, imported.input_layouts.get(n, "NONE")) for n in inputs}
    imported.runtime_output_layouts = {n: want_out.get(n, imported.output_layouts.get(n, "NONE")) for n in outputs}
    return imported


def _rename_uses(g, old: str, new: str) -> None:
    for n in g.node:
        n.input[:] = [new if i == old else i for i in n.input]


def _permute_dims(vi, p: list[int]) -> None:
    dims = list(vi.type.tensor_type.shape.dim)
    copies = [type(d)() for d in dims]
    for c, d in zip(copies, dims):
        c.CopyFrom(d)
    for k, src in enumerate(p):
        vi.type.tensor_type.shape.dim[k].CopyFrom(copies[src])


def cancel_transposes(g) -> int:
    """Remove Transpose pairs whose perms compose to the identity (the middle value used once)."""
    removed = 0
    changed = True
    while changed:
        changed = False
        outputs = {o.name for o in g.output}
        uses: dict[str, int] = {}
        for n in g.node:
            for i in n.input:
                uses[i] = uses.get(i, 0) + 1
        producer = {o: n for n in g.node for o in n.output}
        for second in g.node:
            first = producer.get(second.input[0]) if second.op_type == "Transpose" and second.input else None
            if first is None or first.op_type != "Transpose" or uses.get(first.output[0], 0) != 1:
                continue
            p1, p2 = _perm_of(first), _perm_of(second)
            if p1 is None or p2 is None or len(p1) != len(p2) or [p1[k] for k in p2] != list(range(len(p1))):
                continue
            if second.output[0] in outputs or first.output[0] in outputs:
                continue
            _rename_uses(g, second.output[0], first.input[0])
            keep = [n for n in g.node if n is not first and n is not second]
            del g.node[:]
            g.node.extend(keep)
            removed += 1
            changed = True
            break
    return removed


def _perm_of(node):
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints)
    return None

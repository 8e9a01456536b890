"""Input shapes and names shared by the source importers.

mace.yml's input_shapes are in the runtime layout (input_data_formats, default the source's);
an importer that must trace or export the model needs them in the source's own layout.
"""
from __future__ import annotations

from mace.convert.sources.layouts import LAYOUTS, perm
from mace.errors import ConversionError


def in_source_layout(spec, name: str, own: str, index: int) -> list[int] | None:
    """The shape of input `name` in the source's layout `own`, or None when none was given."""
    shape = spec.input_shapes.get(name)
    if shape is None:
        return None
    fmts = spec.input_formats or []
    asked = (fmts[index] if index < len(fmts) else fmts[0] if len(fmts) == 1 else own).upper()
    if asked in LAYOUTS and own in LAYOUTS and asked != own and len(shape) == 4:
        return [shape[k] for k in perm(asked, own)]
    return list(shape)


def check_names(given: list[str] | None, have: list[str], what: str, source, fix: str) -> list[str]:
    """The names the user gave (all of them must exist), else the model's own."""
    if not given:
        return list(have)
    missing = [n for n in given if n not in have]
    if missing:
        raise ConversionError(f"{source}: the model has no {what} {', '.join(missing)} (its {what}s: "
                              f"{', '.join(have) or 'none'}): {fix}")
    return list(given)


def layout_of(rank: int, four_d: str) -> str:
    return four_d if rank == 4 else "NONE"

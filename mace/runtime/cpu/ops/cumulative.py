"""CumSum and CumProd (normalized `axis`, `exclusive`, `reverse`; the rule is
`mace.ops.cumulative`), in the input's type (float32 or an integer type)."""
from __future__ import annotations

from mace.ops import cumulative as rules
from mace.ops.dtypes import NUMERIC
from mace.runtime.cpu.registry import cpu_op


@cpu_op("CumSum", "CumProd", types=NUMERIC)
def cumulative(node, inputs):
    a = node.attrs
    return [rules.cumulate(inputs[0], int(a["axis"]), bool(a.get("exclusive", 0)), bool(a.get("reverse", 0)),
                           prod=node.op_type == "CumProd")]

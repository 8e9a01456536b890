"""Cast and CastLike between the run-time element types (`mace.ops.dtypes`): NumPy's
conversions, which are ONNX's for these types (float -> integer truncates toward zero, anything
-> bool is `!= 0`, bool -> number is 0/1). The target is the normalized `dtype` attribute (the
output's type); casts to other types are refused at conversion by the output's type check."""
from __future__ import annotations

import numpy as np

from mace.ops.dtypes import ANY
from mace.runtime.cpu.registry import cpu_op


@cpu_op("Cast", "CastLike", types=ANY)
def cast(node, inputs):
    with np.errstate(all="ignore"):
        return [np.array(inputs[0], dtype=np.dtype(node.attrs["dtype"]))]

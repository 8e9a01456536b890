"""BatchNormalization (inference form, NCHW, rank >= 2) on the CPU: y = x * scale + shift per channel
(folded by `mace.ops.batchnorm`)."""
from __future__ import annotations

import numpy as np

from mace.ops.batchnorm import bn_scale_shift
from mace.runtime.cpu import activation
from mace.runtime.cpu.registry import cpu_op

_F32 = np.float32


@cpu_op("BatchNormalization")
def batch_norm(node, inputs):
    x = np.asarray(inputs[0], _F32)
    scale, shift = bn_scale_shift(*inputs[1:5], node.attrs.get("epsilon", 1e-5))
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    out = x * scale.reshape(bshape)
    out += shift.reshape(bshape)
    return [activation.apply_node(out, node)]

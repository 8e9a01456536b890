"""FakeQuantize on the CPU (float in, float out, values on the quantization grid)."""
from __future__ import annotations

from mace.ops.quantize import fake_quantize
from mace.runtime.cpu.registry import cpu_op


@cpu_op("FakeQuantize")
def fake_quantize_op(node, inputs):
    return [fake_quantize(inputs[0], node.attrs)]

"""GPU comparisons (-> bool), bool logic (And/Or/Xor/Not), Where (any element type) and
IsNaN/IsInf, on typed values (`TypedOp`): one work item per output element, inputs read through
their broadcast strides (`broadcast6`, also used by the integer ops). The op is a kernel argument,
so one build serves every comparison of one pair of input types."""
from __future__ import annotations

from mace.runtime.opencl.ops.base import TypedOp, gpu_op, i32
from mace.runtime.opencl.ops.movement import coalesce, contiguous_strides, gws_of, numel, pad_dims

COMPARE = {"Equal": 0, "Less": 1, "Greater": 2, "LessOrEqual": 3, "GreaterOrEqual": 4, "And": 5, "Or": 6, "Xor": 7}


def broadcast6(out_shape, *shapes) -> tuple[list[int], list[list[int]]]:
    """The output's dims (coalesced, padded to 6) and each input's strides over them (0 where it
    broadcasts); ValueError past 6 dims."""
    r = len(out_shape)

    def bstrides(shape):
        shape = [1] * (r - len(shape)) + list(shape)
        return [0 if d == 1 and o != 1 else s for d, s, o in zip(shape, contiguous_strides(shape), out_shape)]

    dims, strides = coalesce(out_shape, *[bstrides(s) for s in shapes])
    return pad_dims(dims, *strides)


class BroadcastOp(TypedOp):
    """A typed op over broadcast inputs: `supports` is whether the pattern fits 6 dims."""

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        try:
            broadcast6(out_shapes[0], *in_shapes)
        except ValueError:
            return False
        return True

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.dims, self.strides = broadcast6(out_shapes[0], *in_shapes)
        self.total = numel(out_shapes[0])

    def bind_bcast(self, head: list, inputs_outputs: list) -> list:
        """Set (*buffers, *head, dims, strides...) and launch over the output, if not empty."""
        if self.total == 0:
            return []
        args = [*inputs_outputs, *head, *map(i32, self.dims[1:])]
        for s in self.strides:
            args += map(i32, s)
        self.kern.set_args(*args)
        return [self.launch(self.kern, self.key, gws_of(self.dims))]


@gpu_op
class Compare(BroadcastOp):
    op_types = tuple(COMPARE)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.kern, self.key = self.typed_kernel("logic", "compare", A=self.in_types[0], B=self.in_types[1])

    def bind(self, inputs, outputs):
        a, b = self.with_consts(inputs)[:2]
        return self.bind_bcast([i32(COMPARE[self.node.op_type])], [a, b, outputs[0]])


@gpu_op
class Where(BroadcastOp):
    op_types = ("Where",)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.kern, self.key = self.typed_kernel("logic", "where", A=self.in_types[1], B=self.in_types[2],
                                                Y=self.out_types[0])

    def bind(self, inputs, outputs):
        return self.bind_bcast([], [*self.with_consts(inputs)[:3], outputs[0]])


@gpu_op
class Special(TypedOp):
    """IsNaN, IsInf and Not: one input, a bool per element."""
    op_types = ("IsNaN", "IsInf", "Not")

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.total = numel(out_shapes[0])
        self.kern, self.key = self.typed_kernel("logic", "special", A=self.in_types[0])

    def bind(self, inputs, outputs):
        if self.total == 0:
            return []
        a = self.node.attrs
        op = {"IsNaN": 0, "IsInf": 1, "Not": 2}[self.node.op_type]
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0], i32(op), i32(a.get("detect_negative", 1)),
                           i32(a.get("detect_positive", 1)))
        return [self.launch(self.kern, self.key, (self.total,))]

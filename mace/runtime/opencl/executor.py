"""The OpenCL executor: places nodes, plans buffers, binds kernels once, enqueues runs.

Init: every node gets its GPU op (or, when the GPU runtime lacks it, a host step running the CPU
kernel, with one info line). Buffers come from `memory.plan`; a Concat input whose producer can
write straight into its slice of the output gets a sub-buffer there and no copy. A run enqueues
input copies, every launch and the output reads on one in-order queue, with no host
synchronization in between except around host steps. Where the device offers
cl_khr_command_buffer, the launches of a run are recorded once (at the first run after any
rebind) and replayed with one call (`command_buffer.py`); profiling runs enqueue each launch.
"""
from __future__ import annotations

import logging
import weakref

import numpy as np
import pyopencl as cl

from mace import settings
from mace.errors import DeviceError, KernelBuildError, MaceError
from mace.ir.graph import Graph, Node
from mace.runtime import memory
from mace.runtime.cpu import registry as cpu_registry
from mace.runtime.opencl import command_buffer, fqfuse, shared
from mace.runtime.opencl.caps import device_caps
from mace.runtime.opencl.ops.base import GpuOp, Launch, op_class
from mace.runtime.opencl.ops.movement import Concat
from mace.runtime.opencl.parallel import PendingKernel
from mace.runtime.opencl.programs import ProgramBuilder

log = logging.getLogger("mace.opencl")

_F32 = np.dtype(np.float32)


class HostStep:
    """A node run by the CPU runtime between GPU launches (the cpu+gpu fallback)."""

    def __init__(self, node: Node, graph: Graph, executor: "OpenCLExecutor"):
        self.node, self.graph, self.ex = node, graph, weakref.proxy(executor)  # no cycle

    def run(self, queue: cl.CommandQueue) -> None:
        ex = self.ex
        ins = []
        for v in self.node.inputs:
            if not v:
                ins.append(None)
            elif v in self.graph.weights:
                ins.append(np.asarray(self.graph.weights[v]))
            else:
                ins.append(ex.read_value(v))
        outs = cpu_registry.run_node(self.node, ins)
        for name, arr in zip(self.node.outputs, outs):
            if name:
                ex.write_value(name, arr)


def _cut_back_references(op: GpuOp) -> None:
    """An op's helper steps (a conv's padding or im2col launch) point back at it: a cycle only the
    garbage collector would free, with the op's device buffers. Cut it; the op stays readable."""
    for value in list(vars(op).values()):
        attrs = getattr(value, "__dict__", None)
        if attrs:
            for k, v in list(attrs.items()):
                if v is op:
                    attrs[k] = None


class OpenCLExecutor:
    def __init__(self, graph: Graph, device: cl.Device, data_type: str = "fp32_fp32",
                 cache=None, allow_cpu_fallback: bool = True, tuning_lookup=None,
                 force_source: set[str] | None = None):
        self.graph, self.device = graph, device
        self.ctx = shared.context(device)
        self.queue = cl.CommandQueue(self.ctx, device,
                                     properties=cl.command_queue_properties.PROFILING_ENABLE)
        self.caps = device_caps(device, cache)
        if data_type == "fp16_fp32" and not self.caps.half_storage:
            log.warning("%s failed the half-storage probe (vload_half/vstore_half): running this "
                        "fp16_fp32 model with float32 storage", self.caps.device)
            data_type = "fp32_fp32"
        self.store_dtype = np.dtype(np.float16 if data_type == "fp16_fp32" else np.float32)
        self.dtype_options = ["-DSTORAGE_HALF"] if data_type == "fp16_fp32" else []
        self.data_type = data_type
        self._cpu_device = self.caps.is_cpu
        self.tuning_lookup = tuning_lookup
        self.builder = ProgramBuilder(self.ctx, device, cache, force_source=force_source)
        self.fallback_nodes: list[str] = []
        self.build_fallbacks: dict[str, str] = {}   # node -> why no GPU variant built
        self.command_buffer: command_buffer.RecordedRun | None = None
        self.command_buffer_note = "not recorded yet"
        self._use_command_buffer = settings.get("MACE_COMMAND_BUFFER", "1") != "0"
        self.builder.defer = self.builder.mode != "serial"   # compile together once bound (parallel.py)
        self._place(allow_cpu_fallback)
        self._allocate()
        self._bind()
        if not self.builder.resolve([l for seg in self._segments.values() for l in seg]):
            # a build failed (recorded): place and bind again, its op takes its next variant
            self.fallback_nodes, self.build_fallbacks = [], {}
            self._place(allow_cpu_fallback)
            self._allocate()
            self._bind()
        for seg in self._segments.values():   # the kernels that stood in resolved (parallel.PendingKernel)
            for l in seg:
                l.kernel = getattr(l.kernel, "resolved", None) or l.kernel
                l.program_key = self.builder.key_of_kernel.get(l.kernel.int_ptr, l.program_key)
        self._flatten()

    # -- init --------------------------------------------------------------------------
    def _place(self, allow_fallback: bool) -> None:
        """A GPU op per node; where the GPU runtime has no kernel for a node, `cpu+gpu` runs it on
        the CPU runtime (one info line) and `gpu` refuses the model, naming every such node. A
        kernel the device's compiler cannot build falls back in both (never fatal: the warning
        names op, variant and compiler message)."""
        g = self.graph
        self.ops: dict[str, GpuOp | None] = {}
        self.fq_plan = fqfuse.plan(g)   # FakeQuantizes their producing convs apply (read by ConvOp)
        refused = []
        for n in g.nodes:
            ins = [g.shape(v) if v else () for v in n.inputs]
            outs = [g.shape(v) for v in n.outputs if v]
            cls = op_class(n.op_type, self._value_types(n))
            baked = all(i >= len(n.inputs) or not n.inputs[i] or n.inputs[i] in g.weights
                        for i in (cls.const_inputs if cls is not None else ()))
            if cls is not None and baked and cls.supports(n, ins, outs):
                if self._construct(cls, n, ins, outs):
                    continue
            elif n.op_type not in cpu_registry.supported_ops():
                raise MaceError(f"op {n.name} ({n.op_type}) is supported by neither runtime")
            elif not allow_fallback:
                refused.append(f"{n.name} ({n.op_type})")
                continue
            else:
                log.info("Op %s(%s) falls back to the CPU runtime", n.name, n.op_type)
            self.fallback_nodes.append(n.name)
            self.ops[n.name] = None
        fqfuse.link(self.ops, self.fq_plan)
        if refused:
            raise DeviceError(f"runtime gpu: {len(refused)} op(s) have no GPU kernel for their shapes or inputs: "
                              f"{', '.join(refused)}: use runtime cpu+gpu (runs them on the CPU runtime)")

    def _value_types(self, n: Node) -> set[str]:
        """The element types of a node's run-time values (weights are the op's to upload)."""
        return {self.graph.dtypes.get(v, "float32") for v in [*n.inputs, *n.outputs]
                if v and v not in self.graph.weights}

    def _construct(self, cls, n: Node, ins, outs) -> bool:
        """Build the node's GPU op; False (with a warning) when no variant of it builds here."""
        g = self.graph
        consts = [np.asarray(g.weights[v]) if v in g.weights else None for v in n.inputs]
        try:
            # ops keep their runtime; a weak proxy, so that dropping the executor frees it at once
            self.ops[n.name] = cls(weakref.proxy(self), n, ins, outs, consts)
            return True
        except KernelBuildError as exc:
            if n.op_type not in cpu_registry.supported_ops():
                raise
            log.log(logging.DEBUG if exc.known else logging.WARNING,
                    "Op %s(%s) runs on the CPU runtime: no GPU variant builds on this device (%s)",
                    n.name, n.op_type, exc)
            self.build_fallbacks[n.name] = str(exc)
            return False

    def _dtype(self, v: str) -> np.dtype:
        """How a value is stored: float32 tensors in the storage type, others as they are."""
        t = self.graph.dtypes.get(v, "float32")
        return self.store_dtype if t == "float32" else np.dtype(t)

    def _data_bytes(self, v: str) -> int:
        return int(np.prod(self.graph.shape(v), dtype=np.int64)) * self._dtype(v).itemsize

    def _nbytes(self, v: str) -> int:
        return max(self._data_bytes(v), 4)

    def _allocate(self) -> None:
        alias = {n.name for n in self.graph.nodes if self.ops[n.name] is not None and self.ops[n.name].alias}
        self.plan = memory.plan(self.graph, self._nbytes, alias, views=self._concat_views())
        mf = cl.mem_flags
        self.slots = [shared.DeviceBuffer(self.ctx, mf.READ_WRITE, size=max(s, 4)) for s in self.plan.slot_bytes]
        self.buffers = {v: self.slots[s] for v, s in self.plan.slot_of.items()}
        for v, off in self.plan.offset_of.items():  # in-place concat slices (and their aliases)
            self.buffers[v] = self.slots[self.plan.slot_of[v]].get_sub_region(off, self._data_bytes(v))

    def _concat_views(self) -> dict[str, tuple[str, int]]:
        """Concat inputs whose producers write straight into their slice of the concat output:
        value -> (concat output, byte offset). Only where the slices are contiguous, the producer
        is a GPU kernel of ours (no graph input or output, weight, alias or host step), the value
        takes one slice only (not twice in this concat, not in an earlier in-place one), and the
        offset is a multiple of the device's sub-buffer alignment; other inputs keep the copy.
        None on drivers whose sub-buffers are unsafe (`caps.subbuffers_safe`)."""
        if not self.caps.subbuffers_safe:
            log.debug("Concat: copies (sub-buffers are unsafe on %s)", self.device.platform.name.strip())
            return {}
        g = self.graph
        producer = {o: self.ops[n.name] for n in g.nodes for o in n.outputs if o}
        outside = set(g.inputs) | set(g.outputs) | set(g.weights)
        align = self.caps.subbuffer_align
        views: dict[str, tuple[str, int]] = {}
        total = 0
        for n in g.nodes:
            op = self.ops[n.name]
            if not isinstance(op, Concat):
                continue
            total += len(n.inputs)
            offsets = op.slice_offsets()
            if offsets is None:
                continue
            out, itemsize = n.outputs[0], self._dtype(n.outputs[0]).itemsize
            placed = set()
            for k, (v, off) in enumerate(zip(n.inputs, offsets)):
                p, root = producer.get(v), v
                if getattr(p, "fused_into", None):  # a FakeQuantize its conv applies: the conv's output
                    p, root = self.ops[p.fused_into], p.node.inputs[0]
                if (v and root not in outside and root not in views and n.inputs.count(v) == 1
                        and p is not None and not p.alias and self._dtype(v).itemsize == itemsize
                        and self._data_bytes(v) > 0 and off * itemsize % align == 0):
                    views[root] = (out, off * itemsize)
                    placed.add(k)
            op.in_place = frozenset(placed)
        if total:
            log.debug("Concat: %d of %d inputs written in place by their producers", len(views), total)
        return views

    def _bind(self) -> None:
        """Bind every op once; apply tuning records (variant + local sizes) where they fit."""
        self._segments: dict[str, list[Launch]] = {}
        self._order: list[str | HostStep] = []
        self._binding = True
        for n in self.graph.nodes:
            op = self.ops[n.name]
            if op is None:
                self._order.append(HostStep(n, self.graph, self))
                continue
            if op.alias:
                continue
            self._order.append(n.name)
            self._segments[n.name] = self._bind_op(n.name)
            if self.tuning_lookup is not None:
                self.tuning_lookup(self, n.name, op)
        self._binding = False
        self._checks = [op for op in self.ops.values() if op is not None and op.run_check is not None]
        self._flatten()

    def _bind_op(self, name: str) -> list[Launch]:
        n, op = self.ops[name].node, self.ops[name]
        ins = [self.buffers.get(v) if v and v not in self.graph.weights else None for v in n.inputs]
        outs = [self.buffers[v] for v in n.outputs if v]
        launches = op.bind(ins, outs)
        for l in launches:   # the key of the program the kernel came from (one per kernel or per file)
            l.kernel = getattr(l.kernel, "resolved", None) or l.kernel   # parallel.PendingKernel
            if not isinstance(l.kernel, PendingKernel):
                l.program_key = self.builder.key_of_kernel.get(l.kernel.int_ptr, l.program_key)
        if not self._cpu_device:
            # ops ask for one work-item per group where that suits CPU drivers (PoCL runs a
            # work-group as one thread's task); a GPU starts from its driver's choice instead
            for l in launches:
                if l.lws is not None and all(x == 1 for x in l.lws):
                    l.lws = None
        return launches

    # -- the public view the tuner, profilers and tests drive ----------------------------
    def op_names(self) -> list[str]:
        """The GPU ops that launch kernels, in run order."""
        return [item for item in self._order if isinstance(item, str)]

    def launches_of(self, name: str) -> list[Launch]:
        """The launches op `name` enqueues on every run."""
        return self._segments[name]

    def rebind(self, name: str, lws: list | None = None) -> list[Launch]:
        """Bind op `name` again (after `op.use_variant`), with local sizes `lws` per launch if
        given (None entries: the driver's choice), and run those launches from now on."""
        launches = self._bind_op(name)
        if lws is not None:
            for launch, size in zip(launches, lws):
                launch.lws = tuple(size) if size else None
        self.set_launches(name, launches)
        return launches

    def set_launches(self, name: str, launches: list[Launch]) -> None:
        """Run `launches` for op `name` from now on."""
        self._segments[name] = launches
        if not self._binding:
            self._flatten()

    def _flatten(self) -> None:
        self.steps: list[Launch | HostStep] = []
        for item in self._order:
            if isinstance(item, HostStep):
                self.steps.append(item)
            else:
                self.steps.extend(self._segments[item])
        self.launches = [s for s in self.steps if isinstance(s, Launch)]
        self._drop_recording()

    # -- the recorded run (cl_khr_command_buffer) ----------------------------------------
    def set_command_buffer(self, on: bool) -> None:
        """Replay recorded runs (where the device offers it) or enqueue each launch."""
        self._use_command_buffer = on
        self._drop_recording()

    def _drop_recording(self) -> None:
        if self.command_buffer is not None:
            self.command_buffer.release()
        self.command_buffer, self._recording_stale = None, True

    def _recorded(self) -> command_buffer.RecordedRun | None:
        if self._recording_stale:
            self._recording_stale = False
            if not self._use_command_buffer:
                note = "switched off (MACE_COMMAND_BUFFER=0)"
            elif len(self.launches) != len(self.steps):
                note = "ops run on the CPU runtime between launches"
            else:
                self.command_buffer, note = command_buffer.record(self.queue, self.launches)
            self.command_buffer_note = note
            if self.command_buffer is not None:
                log.debug("recorded %d launches into one command buffer", self.command_buffer.count)
            else:
                log.debug("launches enqueued one by one: %s", note)
        return self.command_buffer

    def release(self) -> None:
        """Drop the device objects now, in a fixed order: the queue's work finished, kernels
        (ops, launches) before the buffers they were bound to, then the queue (`Engine.close`,
        and tuning replacing the executor). Idempotent."""
        if getattr(self, "queue", None) is not None:
            try:
                self.queue.finish()
            except cl.Error:
                pass
        self._drop_recording()
        self.steps, self.launches, self._order = [], [], []
        self._segments.clear()
        for op in self.ops.values():
            if op is not None:
                _cut_back_references(op)
        self.ops.clear()
        self._checks = []
        self.buffers.clear()
        self.slots = []
        self.__dict__.pop("_mace_scratch", None)
        self.queue = None

    def __del__(self):
        """Dropped without close() (its engine dropped): release now, cycles cut."""
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter teardown: the driver may be gone
            pass

    # -- helpers used by ops -----------------------------------------------------------
    def upload(self, array: np.ndarray, dtype=None) -> cl.Buffer:
        """A read-only device copy of a constant, in the storage type unless `dtype` is given;
        one copy per process and device for equal bytes (`shared.upload`)."""
        return shared.upload(self.ctx, np.ascontiguousarray(array, dtype=dtype or self.store_dtype))

    def read_value(self, v: str) -> np.ndarray:
        dt = self._dtype(v)
        out = np.empty(self.graph.shape(v), dtype=dt)
        cl.enqueue_copy(self.queue, out, self.buffers[v], is_blocking=True)
        return out.astype(np.float32) if dt == np.float16 else out

    def write_value(self, v: str, arr: np.ndarray) -> None:
        host = np.ascontiguousarray(arr, dtype=self._dtype(v))
        cl.enqueue_copy(self.queue, self.buffers[v], host, is_blocking=True)

    # -- run ---------------------------------------------------------------------------
    def run(self, inputs: dict[str, np.ndarray], profile: bool = False):
        """Run once; returns outputs (and per-launch kernel times in seconds if `profile`)."""
        q = self.queue
        keep = []
        for name in self.graph.inputs:
            host = np.ascontiguousarray(inputs[name], dtype=self._dtype(name))
            keep.append(host)
            cl.enqueue_copy(q, self.buffers[name], host, is_blocking=False)
        events = []
        first = self.builder.unlaunched          # kernels of cached binaries not launched yet
        recorded = None if profile or first else self._recorded()
        if recorded is not None:
            try:
                recorded.enqueue()
            except command_buffer.CommandBufferError as exc:
                log.info("replaying the recorded run failed (%s): enqueuing launches one by one from now on", exc)
                self._use_command_buffer = False
                self._drop_recording()
                recorded = None
        for step in self.steps if recorded is None else ():
            if isinstance(step, HostStep):
                step.run(q)
                continue
            if first and step.program_key in first:
                with self.builder.first_launch(step.program_key):
                    ev = cl.enqueue_nd_range_kernel(q, step.kernel, step.gws, step.lws)
                    q.finish()
            else:
                ev = cl.enqueue_nd_range_kernel(q, step.kernel, step.gws, step.lws)
            if profile:
                events.append((step, ev))
        outs = {}
        for name in self.graph.outputs:
            host = np.empty(self.graph.shape(name), dtype=self._dtype(name))
            cl.enqueue_copy(q, host, self.buffers[name], is_blocking=False)
            outs[name] = host
        q.finish()
        del keep
        for op in self._checks:
            op.run_check(q)
        outs = {k: (v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in outs.items()}
        if profile:
            times = [(s, (e.profile.end - e.profile.start) * 1e-9) for s, e in events]
            return outs, times
        return outs

"""The search: per op instance, time every (variant, local size) candidate with OpenCL
profiling events and keep the fastest, or the driver's default when nothing beats it.

Timing per candidate: one warm-up launch, then repeated launches until the per-candidate
budget of the mode is spent (at least `min_samples`), the median kernel time. Inputs are the
engine's dummy inputs (uniform in [-1, 1], not zeros). Candidates that fail to build or launch
are skipped and counted. A global budget in seconds stops the search; untuned ops keep defaults.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import pyopencl as cl

from mace.latency import latency_stats
from mace.tuning import records, space

log = logging.getLogger("mace.tuning")

MODES = {
    "fast": {"candidate_s": 0.003, "min_samples": 3, "variants": False},
    "normal": {"candidate_s": 0.010, "min_samples": 5, "variants": True},
    "exhaustive": {"candidate_s": 0.040, "min_samples": 10, "variants": True},
}
#: a candidate must beat the default by this fraction to replace it (timing noise margin)
MIN_GAIN = 0.03


@dataclass
class OpResult:
    name: str
    op_type: str
    key: str
    default_s: float
    tuned_s: float
    variant: str
    lws: list
    candidates: int
    failed: int
    # evidence for the record and the configuration to fall back to
    spread_s: float = 0.0
    samples: int = 0
    sources: list = field(default_factory=list)
    default_variant: str = ""
    base_lws: list = field(default_factory=list)
    #: what the per-op search found, kept even when the whole-model guard reverts to the default
    found_s: float | None = None

    @property
    def gain(self) -> float:
        return 1.0 - self.tuned_s / self.default_s if self.default_s > 0 else 0.0

    @property
    def found_gain(self) -> float:
        found = self.tuned_s if self.found_s is None else self.found_s
        return 1.0 - found / self.default_s if self.default_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {"name": self.name, "op_type": self.op_type, "key": self.key, "default_ms": self.default_s * 1e3,
                "tuned_ms": self.tuned_s * 1e3, "gain": self.gain, "variant": self.variant, "lws": self.lws,
                "found_ms": (self.tuned_s if self.found_s is None else self.found_s) * 1e3,
                "found_gain": self.found_gain, "changed": self.changed, "candidates": self.candidates,
                "failed": self.failed}

    @property
    def changed(self) -> bool:
        """Whether the kept configuration differs from the op's default."""
        return self.variant != self.default_variant or self.lws != self.base_lws


@dataclass
class TuneResult:
    mode: str
    budget_s: float | None
    seconds: float = 0.0
    ops: list[OpResult] = field(default_factory=list)
    untuned_ops: int = 0
    model_before_s: float = 0.0
    model_after_s: float = 0.0
    launches_timed: int = 0
    #: program keys whose launches tuning changed (variant or local size): rebuilt afterwards
    changed_keys: set = field(default_factory=set)
    #: the whole-model check found the tuned configuration no faster: defaults kept
    reverted: bool = False
    #: the whole-model check's measurements (None: no op changed, nothing to check)
    guard: dict | None = None

    def to_dict(self) -> dict:
        return {"mode": self.mode, "budget_s": self.budget_s, "seconds": self.seconds,
                "model_before_ms": self.model_before_s * 1e3, "model_after_ms": self.model_after_s * 1e3,
                "gain": 1.0 - self.model_after_s / self.model_before_s if self.model_before_s else 0.0,
                "untuned_ops": self.untuned_ops, "launches_timed": self.launches_timed,
                "reverted_to_defaults": self.reverted, "min_gain": MIN_GAIN, "guard": self.guard,
                "candidates": sum(o.candidates for o in self.ops), "failed": sum(o.failed for o in self.ops),
                "ops": [o.to_dict() for o in self.ops]}


def _time(queue, launches, lws_list, candidate_s: float, min_samples: int) -> tuple[float, float, int]:
    """Median and spread (p90 - p10) of the summed kernel time of `launches`."""
    for l, lws in zip(launches, lws_list):
        cl.enqueue_nd_range_kernel(queue, l.kernel, l.gws, lws)
    queue.finish()
    samples: list[float] = []
    t0 = time.perf_counter()
    while len(samples) < min_samples or (time.perf_counter() - t0 < candidate_s and len(samples) < 200):
        evs = [cl.enqueue_nd_range_kernel(queue, l.kernel, l.gws, lws) for l, lws in zip(launches, lws_list)]
        evs[-1].wait()
        samples.append(sum((e.profile.end - e.profile.start) for e in evs) * 1e-9)
    st = latency_stats(samples, with_samples=False)
    return st["median_ms"] * 1e-3, (st["p90_ms"] - st["p10_ms"]) * 1e-3, st["runs"]


def _model_latency(engine, runs: int = 5) -> float:
    inputs = engine.dummy_inputs()
    engine.executor.run(inputs)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        engine.executor.run(inputs)
        ts.append(time.perf_counter() - t0)
    return latency_stats(ts, with_samples=False)["median_ms"] * 1e-3


def tune(engine, mode: str = "normal", budget: float | None = None, progress=None) -> TuneResult:
    """Tune every GPU op of `engine`, store the records in its program cache, rebuild the kept
    programs from source (so no discarded local size is stored) and save the cache."""
    from mace.errors import MaceError
    if mode not in MODES:
        raise MaceError(f"unknown tuning mode {mode!r}: choose fast, normal or exhaustive")
    if engine.device is None:
        raise MaceError("tuning needs the GPU runtime (runtime='gpu' or 'cpu+gpu')")
    cfg = MODES[mode]
    ex = engine.executor
    dev = engine.device
    result = TuneResult(mode, budget)
    t_start = time.perf_counter()
    ex.run(engine.dummy_inputs())  # buffers hold real (non-zero) data from here on
    result.model_before_s = _model_latency(engine)
    names = ex.op_names()
    dev_dims = tuple(dev.max_work_item_sizes)
    done: dict[str, OpResult] = {}
    for idx, name in enumerate(names):
        if budget is not None and time.perf_counter() - t_start > budget:
            result.untuned_ops = len(names) - idx
            log.info("tuning budget of %.0f s spent: %d ops keep their defaults", budget, result.untuned_ops)
            break
        op = ex.ops[name]
        twin = done.get(records.op_key(op, ex.data_type))
        if twin is not None:  # same op, shapes and attributes: the same search, done once
            res = copy.copy(twin)
            res.name, res.candidates, res.failed = name, 0, 0
            if twin.variant != twin.default_variant or twin.lws != twin.base_lws:
                result.changed_keys.update(l.program_key for l in _apply(ex, name, op, twin.variant, twin.lws))
            result.ops.append(res)
            if progress:
                progress(idx + 1, len(names), name)
            continue
        res = _tune_op(ex, name, op, dev, dev_dims, cfg, mode, result)
        if res is not None:
            result.ops.append(res)
            done[res.key] = res
        if progress:
            progress(idx + 1, len(names), name)
    _whole_model_guard(engine, result)
    if engine.program_section is not None:
        for res in result.ops:
            engine.program_section.put_tuning(res.key, {
                "variant": res.variant, "lws": res.lws, "median_s": res.tuned_s,
                "spread_s": res.spread_s, "samples": res.samples, "default_s": res.default_s,
                "driver": dev.driver_version, "device": dev.name.strip(), "mode": mode,
                "source_hashes": res.sources, "tuned_at": time.time(),
            })
    result.seconds = time.perf_counter() - t_start
    engine.rebuild_after_tuning(result.changed_keys)
    return result


def _apply(ex, name: str, op, variant: str, lws: list) -> list:
    """Put one op in a configuration (variant + local sizes) on the live executor."""
    if op.variant != variant:
        op.use_variant(variant)
    return ex.rebind(name, lws)


def _whole_model_guard(engine, result: TuneResult) -> None:
    """Per-op wins must add up: time the whole model with the tuned and with the default
    configurations, interleaved; unless the tuned model is faster by the noise margin
    (MIN_GAIN), keep every default (tuning never makes a model slower)."""
    ex = engine.executor
    changed = [r for r in result.ops if r.changed]
    if not changed:
        result.model_after_s = min(result.model_before_s, _model_latency(engine))
        return
    tuned_t, default_t = [], []
    for _ in range(3):
        for r in changed:
            _apply(ex, r.name, ex.ops[r.name], r.default_variant, r.base_lws)
        default_t.append(_model_latency(engine))
        for r in changed:
            _apply(ex, r.name, ex.ops[r.name], r.variant, r.lws)
        tuned_t.append(_model_latency(engine))
    result.model_before_s, result.model_after_s = min(default_t), min(tuned_t)
    kept = result.model_after_s < result.model_before_s * (1 - MIN_GAIN)
    result.guard = {"changed_ops": len(changed), "default_ms": result.model_before_s * 1e3,
                    "tuned_ms": result.model_after_s * 1e3, "min_gain": MIN_GAIN, "kept_tuned": kept,
                    "gain": 1.0 - result.model_after_s / result.model_before_s if result.model_before_s else 0.0}
    if kept:
        return
    log.info("the tuned configuration ran the whole model in %.2f ms against %.2f ms with the defaults: "
             "keeping the defaults", result.model_after_s * 1e3, result.model_before_s * 1e3)
    for r in changed:
        _apply(ex, r.name, ex.ops[r.name], r.default_variant, r.base_lws)
        r.found_s = r.tuned_s
        r.variant, r.lws, r.tuned_s = r.default_variant, r.base_lws, r.default_s
        r.sources = records.source_hashes(ex.launches_of(r.name))
    result.changed_keys.clear()
    result.reverted = True
    result.model_after_s = result.model_before_s


def _tune_op(ex, name, op, dev, dev_dims, cfg, mode, result) -> OpResult | None:
    default_variant = op.variant
    key = records.op_key(op, ex.data_type)
    launches = ex.launches_of(name)
    if not launches:
        return None
    base_lws = [l.lws for l in launches]  # the op's own choice is the default to beat
    default_s, _, _ = _time(ex.queue, launches, base_lws, cfg["candidate_s"], cfg["min_samples"])
    result.launches_timed += 1
    best = (default_s, default_variant, base_lws)
    tried = failed = 0
    variants = op.variants() if cfg["variants"] else [default_variant]
    if ex.caps.is_cpu and mode != "exhaustive":
        # "gpu_*" variants are written for GPUs (work-groups of 256, local memory); on CPU
        # drivers they are an order of magnitude slower, so only exhaustive mode times them
        variants = [v for v in variants if not v.startswith("gpu_") or v == default_variant]
    for variant in variants:
        try:
            if variant != op.variant:
                op.use_variant(variant)
            cand_launches = ex.rebind(name) if variant != default_variant else launches
        except Exception as exc:  # a variant that fails to build is skipped and counted
            failed += 1
            log.debug("variant %s of %s failed: %s", variant, name, exc)
            continue
        # coordinate search: each launch's local size in turn, the others fixed
        chosen = [l.lws for l in cand_launches]
        for li, l in enumerate(cand_launches):
            kmax = l.kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, dev)
            best_l = None
            best_t = None
            for lws in space.local_sizes(tuple(l.gws), kmax, dev_dims, mode, default=l.lws,
                                         cpu_device=ex.caps.is_cpu):
                trial = list(chosen)
                trial[li] = lws
                tried += 1
                try:
                    t, _, _ = _time(ex.queue, cand_launches, trial, cfg["candidate_s"], cfg["min_samples"])
                except cl.Error as exc:
                    failed += 1
                    log.debug("local size %s of %s failed: %s", lws, name, exc)
                    continue
                result.launches_timed += 1
                if best_t is None or t < best_t:
                    best_t, best_l = t, lws
            chosen[li] = best_l
        t, _, _ = _time(ex.queue, cand_launches, chosen, cfg["candidate_s"], cfg["min_samples"])
        if t < best[0] * (1 - MIN_GAIN):
            best = (t, variant, chosen)
    _, variant, lws = best
    chosen_launches = _apply(ex, name, op, variant, lws)  # the winner, on the live executor
    med, spread, n = _time(ex.queue, chosen_launches, [l.lws for l in chosen_launches],
                           cfg["candidate_s"], cfg["min_samples"])
    if variant == default_variant and list(lws) == list(base_lws):
        med = default_s  # the default kept: same configuration, so no gain (a second timing is noise)
    else:
        result.changed_keys.update(l.program_key for l in chosen_launches)
    res = OpResult(name, op.node.op_type, key, default_s, med, variant,
                   [list(w) if w else None for w in lws], tried, failed)
    res.spread_s, res.samples = spread, n
    res.sources = records.source_hashes(chosen_launches)
    res.default_variant = default_variant
    res.base_lws = [list(w) if w else None for w in base_lws]
    return res


def make_lookup(section, device):
    """The executor's hook that applies stored records at init (variant + local sizes) from
    this device's section of the program cache (`cache.section(fp)`)."""
    from mace.programcache.errors import Finding

    def lookup(ex, name: str, op) -> None:
        key = records.op_key(op, ex.data_type)
        rec = section.get_tuning(key)
        if rec is None:
            return
        why = None
        if rec.get("driver") != device.driver_version:
            why = f"tuned on driver {rec.get('driver')}, this is {device.driver_version}"
        launches = ex.launches_of(name)
        original = op.variant
        if why is None and rec.get("variant", op.variant) != op.variant:
            try:
                op.use_variant(rec["variant"])
                launches = ex.rebind(name)
            except Exception as exc:
                why = f"variant {rec['variant']} unusable ({exc})"
        if why is None and rec.get("source_hashes") and records.source_hashes(launches) != rec["source_hashes"]:
            why = "kernel source changed since tuning"
        if why is None:     # range checks: the record may come from an untrusted file
            why = records.lws_problem(rec.get("lws"), launches, device)
        if why is not None:
            section.report.tuning_hits -= 1
            section.report.tuning_misses += 1
            section.report.findings.append(Finding("TUNING_STALE", f"tuning record {key} not applied: {why}; "
                                                 f"re-run `mace tune`", severity="info", key=key))
            if op.variant != original:
                op.use_variant(original)
                ex.rebind(name)
            return
        for l, w in zip(launches, rec["lws"]):
            l.lws = tuple(w) if w else None
        ex.set_launches(name, launches)
    return lookup

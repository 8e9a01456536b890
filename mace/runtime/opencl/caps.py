"""What the device can do: asked (clGetDeviceInfo), corrected by a probe, once per fingerprint.

Kernels and op modules read a `DeviceCaps`, never constants or device-name tests: the vector
width of the register-tiled kernels, the work-group and local-memory limits of the tiled GEMMs,
sub-buffer alignment and safety, half storage, command buffers. Drivers lie (PyPI's PoCL on AMD
Zen 4 reports 16-wide float vectors and then cannot compile them), so the widths the kernels use
are confirmed by `probe.py` in a child process (a compiler crash there costs nothing), and the
result is stored in the device's section of the program cache: later starts don't probe again.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pyopencl as cl

from mace import settings
from mace.runtime.opencl import probe as probe_script

log = logging.getLogger("mace.opencl")

#: bump when the fields or the probe change: caps stored by an older mace are probed again
SCHEMA = 2  # 2: integer_dot
PROBE_TIMEOUT_S = 120.0
_MEMO: dict[str, "DeviceCaps"] = {}
_MEMO_LOCK = threading.Lock()


@dataclass(frozen=True)
class DeviceCaps:
    """One device's capabilities; `probe` says what each probed vector width did."""

    device: str
    is_cpu: bool
    max_vector_width: int                 # widest float vector the probe built and checked
    reported_vector_width: int            # max(CL_DEVICE_{PREFERRED,NATIVE}_VECTOR_WIDTH_FLOAT)
    half_storage: bool                    # vload_half/vstore_half (probed with the widths)
    fp16_arithmetic: bool                 # cl_khr_fp16
    max_work_group_size: int
    max_work_item_sizes: tuple[int, ...]
    local_mem_size: int
    compute_units: int
    subbuffer_align: int                  # bytes (CL_DEVICE_MEM_BASE_ADDR_ALIGN is in bits)
    subbuffers_safe: bool
    command_buffer: bool                  # cl_khr_command_buffer
    #: 8-bit integer dot products the device reports (cl_khr_integer_dot_product,
    #: cl_arm_integer_dot_product_int8) and a probe kernel confirmed: the build options of kernels
    #: using them ("-DDOT_KHR -cl-std=CL3.0", "-DDOT_ARM"), or "" (none)
    integer_dot: str = ""
    probe: dict = field(default_factory=dict)
    probe_seconds: float = 0.0
    source: str = "probed"                # probed | program cache | not probed (MACE_DEVICE_PROBE=0)
    schema: int = SCHEMA

    def to_dict(self) -> dict:
        d = asdict(self)
        d["max_work_item_sizes"] = list(self.max_work_item_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DeviceCaps":
        names = set(cls.__dataclass_fields__)
        d = {k: v for k, v in d.items() if k in names}
        d["max_work_item_sizes"] = tuple(int(x) for x in d.get("max_work_item_sizes", ()))
        return cls(**d)

    def vector_width(self, width: int, max_pb: int = 2) -> tuple[int, int]:
        """(VW, PB): pixel vector width and vectors per tile for a row of `width` outputs, never
        wider than the device handles."""
        for vw, pb in ((16, 2), (16, 1), (8, 1), (4, 1)):
            if vw <= self.max_vector_width and pb <= max_pb and width >= vw * pb:
                return vw, pb
        return 1, 1

    def fits_work_group(self, lws: tuple[int, ...], local_bytes: int = 0) -> bool:
        """The device runs a work-group of this shape with this much local memory."""
        total = 1
        for i, n in enumerate(lws):
            total *= n
            if i < len(self.max_work_item_sizes) and n > self.max_work_item_sizes[i]:
                return False
        return total <= self.max_work_group_size and local_bytes <= self.local_mem_size

    def summary(self) -> str:
        probed = ", ".join(f"{w}: {r}" for w, r in sorted(self.probe.items(), key=lambda kv: -int(kv[0]))) or "-"
        return (f"vector width {self.max_vector_width} (reported {self.reported_vector_width}; "
                f"probe {probed}), half storage {'yes' if self.half_storage else 'no'}, "
                f"work-group {self.max_work_group_size}, local memory {self.local_mem_size // 1024} KiB, "
                f"sub-buffers {'safe' if self.subbuffers_safe else 'unsafe'} "
                f"(align {self.subbuffer_align} B), command buffers "
                f"{'yes' if self.command_buffer else 'no'}, integer dot products "
                f"{'yes' if self.integer_dot else 'no'} [{self.source}]")


def subbuffers_safe(device: cl.Device) -> bool:
    """NVIDIA's OpenCL driver (580) segfaults releasing sub-buffers an executor used (seen at
    garbage collection after runs on an H100): a crash, so not something a probe may try."""
    return "NVIDIA" not in device.platform.name


def kernel_per_program(device: cl.Device) -> bool:
    """Whether each kernel the model launches gets a program of its own (else one program per
    `.cl` file and build options, holding every kernel of the file): on every driver measured
    (docs/architecture.md, "Cold start") it costs nothing and spares compiling unused kernels."""
    return True


#: below this many CPUs, compile processes lose: PoCL's binary holds a generic work-group
#: function per kernel, about 3x the code generation of the first launch it replaces
PROCESSES_MIN_CPUS = 4


def compile_mode(device: cl.Device, workers: int, chosen: bool = False) -> str:
    """How a cold start compiles its programs (parallel.py): "processes" (PoCL, which compiles
    one program at a time per process; by default only with PROCESSES_MIN_CPUS workers or more),
    "threads" (other drivers, only when `chosen`, i.e. MACE_COMPILE_PROCESSES is set: NVIDIA's
    MobileNetV2 cold start took 7.8 s threaded against 7.0 s, Intel's CPU runtime 59 s against
    50 s on 2 loaded cores), or "serial"."""
    if workers < 2:
        return "serial"
    if "Portable Computing Language" in device.platform.name:
        return "processes" if chosen or workers >= PROCESSES_MIN_CPUS else "serial"
    return "threads" if chosen else "serial"


def queried(device: cl.Device) -> dict:
    """What clGetDeviceInfo says (the fields that need no probe)."""
    ext = set(device.extensions.split())
    return dict(
        device=f"{device.platform.name.strip()} / {device.name.strip()}",
        is_cpu=bool(device.type & cl.device_type.CPU),
        reported_vector_width=max(int(device.preferred_vector_width_float),
                                  int(device.native_vector_width_float)),
        fp16_arithmetic="cl_khr_fp16" in ext,
        max_work_group_size=int(device.max_work_group_size),
        max_work_item_sizes=tuple(int(x) for x in device.max_work_item_sizes),
        local_mem_size=int(device.local_mem_size),
        compute_units=int(device.max_compute_units),
        subbuffer_align=max(int(device.mem_base_addr_align) // 8, 1),
        subbuffers_safe=subbuffers_safe(device),
        command_buffer="cl_khr_command_buffer" in ext,
        integer_dot="-DDOT_KHR" if "cl_khr_integer_dot_product" in ext
        else "-DDOT_ARM" if "cl_arm_integer_dot_product_int8" in ext else "",
    )


def locate(device: cl.Device) -> tuple[int, int]:
    """(platform index, device index) of `device`, as the child process will enumerate them."""
    for pi, p in enumerate(cl.get_platforms()):
        for di, d in enumerate(p.get_devices()):
            if d.int_ptr == device.int_ptr:
                return pi, di
    raise LookupError(f"{device.name.strip()} is not among this process's OpenCL devices")


def _child(platform: int, index: int, mode: str) -> tuple[list[dict], str]:
    """Run probe.py; returns the JSON lines it printed and, if it died, how."""
    env = dict(os.environ, POCL_KERNEL_CACHE="0", PYTHONWARNINGS="ignore")  # never poison a cache
    cmd = [sys.executable, str(Path(probe_script.__file__)), str(platform), str(index), mode]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=PROBE_TIMEOUT_S, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        out, death = exc.stdout or b"", f"timed out after {PROBE_TIMEOUT_S:.0f} s"
    else:
        out, death = proc.stdout, ""
        if proc.returncode:
            rc = proc.returncode
            sig = f" ({signal.Signals(-rc).name})" if rc < 0 and -rc in signal.valid_signals() else ""
            tail = " ".join(proc.stderr.decode("utf-8", "replace").split()[-30:])
            death = f"the probe process died with exit code {rc}{sig}: {tail}"[:400]
    lines = []
    for raw in out.decode("utf-8", "replace").splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines, death


def _widths_ok(lines: list[dict], death: str) -> dict[int, str]:
    """width -> "ok" or why not, from the child's lines (a started probe with no result died)."""
    result: dict[int, str] = {}
    for line in lines:
        for w in line.get("widths", []):
            if "ok" in line:
                result[int(w)] = "ok" if line["ok"] else str(line.get("why", "failed"))
            else:
                result.setdefault(int(w), death or "no result")
    return result


def run_probe(device: cl.Device) -> tuple[dict[int, str], float]:
    """Probe every width in one child (one build on a healthy device); if anything failed,
    probe each width alone, so one broken width does not condemn the others, starting a new
    child after one that died."""
    t0 = time.perf_counter()
    platform, index = locate(device)
    lines, death = _child(platform, index, "all")
    result = _widths_ok(lines, death)
    if all(result.get(w) == "ok" for w in probe_script.WIDTHS):
        return result, time.perf_counter() - t0
    result = {}
    while len(result) < len(probe_script.WIDTHS):
        todo = [w for w in probe_script.WIDTHS if w not in result]
        lines, death = _child(platform, index, ",".join(str(w) for w in todo))
        found = _widths_ok(lines, death)
        if not found:            # died before it started: nothing more to learn
            found = {todo[0]: death or "no result"}
        result.update(found)
    return {w: result[w] for w in probe_script.WIDTHS}, time.perf_counter() - t0


def _from_probe(facts: dict, probe: dict[int, str], seconds: float) -> DeviceCaps:
    ok = [w for w in probe_script.WIDTHS if probe.get(w) == "ok"]
    width = max(ok) if ok else 1
    if width < max(probe_script.WIDTHS):
        failed = {w: r for w, r in probe.items() if r != "ok"}
        log.warning("%s cannot run %s-wide float vectors (%s): kernels use width %d",
                    facts["device"], "/".join(str(w) for w in failed),
                    "; ".join(f"{w}: {r}" for w, r in failed.items())[:300], width)
    return DeviceCaps(**facts, max_vector_width=width, half_storage=bool(ok),
                      probe={str(w): r for w, r in probe.items()}, probe_seconds=round(seconds, 3))


def device_caps(device: cl.Device, section=None) -> DeviceCaps:
    """The device's caps: from this process's memo, else the program cache's section of this
    device (`cache.section(fp)`), else the probe (stored in the section when one is given).
    MACE_DEVICE_PROBE=0 trusts the driver."""
    if section is not None:
        fp_id = section.id
    else:
        from mace.programcache import DeviceFingerprint
        fp_id = DeviceFingerprint.from_cl_device(device).id
    with _MEMO_LOCK:
        caps = _MEMO.get(fp_id)
        if caps is None:
            caps = _stored(device, section) or _discover(device)
            _MEMO[fp_id] = caps
    if section is not None and caps.source == "probed" and section.get_caps() is None:
        section.put_caps(caps.to_dict())
    return caps


def _stored(device: cl.Device, section) -> DeviceCaps | None:
    """The probe's findings from the cache; what the driver reports is asked again (cheap), so a
    record from a file of unknown origin can only narrow the vector width, never claim limits
    or quirks the device does not have."""
    if section is None:
        return None
    rec = section.get_caps()
    if not rec or rec.get("schema") != SCHEMA:
        return None
    width, probe = rec.get("max_vector_width"), rec.get("probe")
    if width not in (1, *probe_script.WIDTHS) or not isinstance(probe, dict) \
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in probe.items()):
        return None  # a record we did not write: probe again
    facts = queried(device)
    dot = rec.get("integer_dot")
    facts["integer_dot"] = dot if facts["integer_dot"] and dot in (facts["integer_dot"],
                                                                   facts["integer_dot"] + " -cl-std=CL3.0") else ""
    return DeviceCaps(**facts, max_vector_width=width, half_storage=rec.get("half_storage") is True,
                      probe={k[:8]: v[:400] for k, v in probe.items()}, source="program cache")


def _discover(device: cl.Device) -> DeviceCaps:
    facts = queried(device)
    if settings.get("MACE_DEVICE_PROBE", "1") == "0":
        reported = facts["reported_vector_width"]
        width = max([w for w in probe_script.WIDTHS if w <= reported] or [1])
        return DeviceCaps(**facts, max_vector_width=width, half_storage=True,
                          source="not probed (MACE_DEVICE_PROBE=0)")
    probe, seconds = run_probe(device)
    if facts["integer_dot"]:  # reported: confirmed by a kernel (and its build options), or not used
        flavour = facts["integer_dot"].removeprefix("-DDOT_").lower()
        lines, death = _child(*locate(device), f"dot-{flavour}")
        done = [ln for ln in lines if "ok" in ln]
        facts["integer_dot"] = str(done[0].get("options", ""))[:60] if done and done[0]["ok"] else ""
        if not facts["integer_dot"]:
            log.info("%s reports %s integer dot products, but the probe kernel %s: not used", facts["device"],
                     flavour, (done[0]["why"] if done else death or "gave no result")[:200])
    caps = _from_probe(facts, probe, seconds)
    log.debug("probed %s in %.2f s: %s", facts["device"], seconds, caps.summary())
    return caps


def forget() -> None:
    """Drop this process's memo (tests that probe again)."""
    with _MEMO_LOCK:
        _MEMO.clear()

"""Deploy a converted model to remote devices over ssh, run it there, bring the results back.

Per device (`device.yml`), in four ssh/scp connections:

1. probe: create `<workdir>/<model name>/`, remove upload leftovers older than an hour, and
   check `<python> -m mace --version` (nothing is installed there silently);
2. upload the model, the local program file (when there is one) and the inputs in one `scp -r`
   to a fresh `.incoming-<random>/` directory beside the final files;
3. move them into place with `mv` (a rename: atomic) and run there
   `<python> -m mace run model.mace --program mace-cl-compiled-program.bin --json
   [--runtime R] [--input NAME=inputs/inK.npy] --output-dir outputs`; its JSON comes back on stdout;
4. download `outputs/` (the .npy outputs and a hard link to the device's updated program file)
   in one `scp -r` into a local temporary directory, then `os.replace` each file into place and
   merge the device's program file into the local one (mace.programcache: one section per device
   fingerprint).

An interrupted transfer leaves no partial file at a final path on either side: uploads land in
`.incoming-*` (removed on failure, or by the next deploy), downloads in a temporary directory.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shlex
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mace import __version__, fileio
from mace.deploy import provenance
from mace.deploy.devices import DeviceSpec, LoadedDevices, load_devices, remote_python
from mace.deploy.errors import RemoteDiskFull, RemoteError, RemoteMaceMissing, RemotePythonMissing, RemoteRunFailed
from mace.deploy.transport import SshTransport, _last_line
from mace.errors import InputError, MaceError, ModelFileError
from mace.runtime import RUNTIMES

log = logging.getLogger("mace.deploy")

REMOTE_MODEL = "model.mace"
REMOTE_PROGRAM = "mace-cl-compiled-program.bin"
PULLED_PROGRAM = ".mace-program.bin"       # hard link beside the outputs, for the one download
RESULT_JSON = "mace-run.json"              # the remote run's JSON, beside the local outputs
TUNE_JSON = ".mace-tune.json"              # the remote `mace tune --json`, downloaded with the outputs
STALE_UPLOAD_MINUTES = 60

# exit codes of our remote scripts (mace itself exits 0, 1 or 2)
_RC_WORKDIR, _RC_CD, _RC_MOVE, _RC_OUTDIR = 91, 92, 93, 94


@dataclass
class Job:
    """What to run: the same for every device of a deploy."""

    model: Path
    program: Path
    runtime: str | None = None
    inputs: list[tuple[str, Path]] = field(default_factory=list)
    seed: int | None = None
    runs: int = 0
    warmup: bool = False
    tune_budget: float = 0.0       # > 0: `mace tune --budget` there first (the device farm's board jobs)

    @property
    def model_dir_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", self.model.stem) or "model"


def parse_inputs(inputs) -> list[tuple[str, Path]]:
    """`{"NAME": path}` or `["NAME=FILE.npy", ...]` -> [(name, path)]; each file must exist."""
    if not inputs:
        return []
    if isinstance(inputs, Mapping):
        items = [(str(k), Path(v)) for k, v in inputs.items()]
    else:
        items = []
        for item in inputs:
            if "=" not in str(item):
                raise InputError(f"--input {item!r}: expected NAME=FILE.npy")
            name, path = str(item).split("=", 1)
            items.append((name, Path(path)))
    for name, path in items:
        if not name:
            raise InputError(f"--input ={path}: the input name is empty: write NAME=FILE.npy")
        if not path.is_file():
            raise InputError(f"--input {name}: {path}: no such file: give a .npy file")
    return items


def make_job(model, program=None, runtime=None, inputs=(), *, seed=None, runs=0, warmup=False) -> Job:
    """Check the local side before any connection: the model, the inputs, the program file."""
    model = Path(model)
    if not model.is_file():
        raise ModelFileError(f"{model}: no such model file: convert one first (mace convert)")
    with open(model, "rb") as f:
        head = f.read(8)
    from mace.ir.modelfile import MAGIC
    if head != MAGIC:
        raise ModelFileError(f"{model}: not a .mace model file: convert the ONNX model first "
                             f"(mace convert model.onnx -o model.mace)")
    if runtime is not None and runtime not in RUNTIMES:
        raise MaceError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    from mace.programcache.settings import default_cache_path
    prog = Path(program) if program is not None else default_cache_path()
    if prog.is_dir():
        raise InputError(f"--program {prog}: is a directory: give the program cache file")
    if prog.is_file() and prog.stat().st_size > 0:
        from mace.programcache import ProgramCacheError
        from mace.programcache.maintenance import load
        try:
            load(prog)
        except (OSError, ProgramCacheError) as exc:
            raise InputError(f"--program {prog}: cannot merge device programs into it "
                             f"({getattr(exc, 'message', None) or exc}): check it with `mace doctor "
                             f"{prog}` or pass another --program") from None
    items = parse_inputs(inputs)
    if items:        # names and files checked here, before anything is uploaded; shapes there
        from mace.feeds import read_npy
        from mace.ir.modelfile import load as load_model
        graph = load_model(model)
        for name, path in items:
            if name not in graph.inputs:
                raise InputError(f"--input {name}={path}: the model has no input {name!r} (its inputs: "
                                 f"{', '.join(graph.inputs)}): fix the name")
            read_npy(path, f"--input {name}")
    return Job(model, prog, runtime, items, seed, runs, warmup)


def _q(s: str) -> str:
    return shlex.quote(s)


def _env_lines(spec: DeviceSpec) -> str:
    return "".join(f"export {k}={_q(v)}\n" for k, v in spec.env.items())


class RemoteDevice:
    """One device of device.yml and the steps of a remote run on it."""

    def __init__(self, name: str, spec: DeviceSpec):
        self.name, self.spec = name, spec
        self.t = SshTransport(name, spec)

    @property
    def label(self) -> str:
        return self.t.label

    # -- 1. probe --------------------------------------------------------------------------
    def probe(self, rdir: str) -> str:
        """Create the run directory and return the remote mace's version."""
        py = self.spec.python
        script = (f"mkdir -p {_q(rdir)} && cd {_q(rdir)} || exit {_RC_WORKDIR}\n"
                  f"find . -maxdepth 1 -name '.incoming-*' -mmin +{STALE_UPLOAD_MINUTES} "
                  f"-exec rm -rf {{}} + 2>/dev/null\n"
                  f"{_env_lines(self.spec)}{remote_python(self.spec)} -m mace --version")
        res = self.t.ssh(script)
        last = _last_line(res.stderr)
        fix = (f"install it there: build the wheel here (pip wheel --no-deps -w dist .), copy it over and "
               f"run {py} -m pip install ./mace_engine-{__version__}-py3-none-any.whl, or set python: in "
               f"device.yml to a Python that has it")
        if res.returncode == _RC_WORKDIR:
            if "No space left" in res.stderr:
                raise RemoteDiskFull(f"{self.label}: no space left to create {rdir} ({last}): free space "
                                     f"there or set workdir: in device.yml to a larger disk")
            raise RemoteError(f"{self.label}: cannot create {rdir} ({last}): set workdir: in "
                              f"device.yml to a writable directory")
        if res.returncode in (126, 127):
            raise RemotePythonMissing(f"{self.label}: cannot run {py!r} there ({last}): install "
                                      f"Python 3.10+ there, or set python: in device.yml to its path")
        if res.returncode != 0:
            if "No module named mace" in res.stderr:
                raise RemoteMaceMissing(f"{self.label}: mace is not installed for {py!r} there: {fix}")
            raise RemoteMaceMissing(f"{self.label}: `{py} -m mace --version` failed there (exit "
                                    f"{res.returncode}{': ' + last if last else ''}): mace is not "
                                    f"usable there: {fix}")
        m = re.search(r"\bmace\b.*?version\s+(\S+)", res.stdout)
        if not m:
            raise RemoteMaceMissing(f"{self.label}: `{py} -m mace --version` printed "
                                    f"{res.stdout.strip()[:60]!r}, not mace's version: {fix}")
        version = m.group(1)
        if version != __version__:
            log.warning("%s runs mace %s, this machine %s: upgrade one of them if the model or the "
                        "program file is refused", self.label, version, __version__)
        return version

    # -- 2. upload -------------------------------------------------------------------------
    def upload(self, job: Job, rdir: str) -> tuple[str, list[str], int]:
        """Stage the files under `.incoming-<random>/`; returns (that name, the files, bytes)."""
        incoming = f".incoming-{secrets.token_hex(6)}"
        stage = Path(tempfile.mkdtemp(prefix="mace-deploy-"))
        files: list[str] = []
        size = 0
        try:
            def add(rel: str, src: Path) -> None:
                nonlocal size
                dst = stage / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(src.resolve(), dst)        # scp follows symlinks: no local copy
                files.append(rel)
                size += src.stat().st_size
            add(REMOTE_MODEL, job.model)
            own = self.own_sections(job.program)
            if own is not None:                   # the device's own section only, never ours
                fileio.write_atomic(stage / REMOTE_PROGRAM, own)
                files.append(REMOTE_PROGRAM)
                size += len(own)
            for i, (_, path) in enumerate(job.inputs):
                add(f"inputs/in{i}.npy", path)
            try:
                self.t.upload(str(stage), f"{rdir}/{incoming}")
            except RemoteError:
                self._cleanup(rdir, incoming)
                raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return incoming, files, size

    @property
    def origin(self) -> dict:
        return provenance.origin(self.name, self.spec.address, self.spec.username)

    def own_sections(self, program: Path) -> bytes | None:
        """The bytes of a program file holding only what came from this device (None: nothing)."""
        if not (program.is_file() and program.stat().st_size > 0):
            return None
        from mace.programcache import maintenance
        from mace.programcache.format import encode
        data = provenance.for_device(maintenance.load(program)[0], self.origin)
        return encode(data) if data.sections else None

    def _cleanup(self, rdir: str, incoming: str) -> None:
        """Best effort: remove a half-uploaded staging directory (the next deploy would too)."""
        try:
            self.t.ssh(f"rm -rf {_q(rdir + '/' + incoming)}", timeout=30, check_connection=False)
        except MaceError:
            pass

    # -- 3. run ----------------------------------------------------------------------------
    def run_command(self, job: Job) -> str:
        """The `mace run` command line run on the device (inside the run directory)."""
        argv = ["-m", "mace", "run", REMOTE_MODEL, "--program", REMOTE_PROGRAM, "--json",
                "--output-dir", "outputs"]
        if job.runtime:
            argv += ["--runtime", job.runtime]
        for i, (name, _) in enumerate(job.inputs):
            argv += ["--input", f"{name}=inputs/in{i}.npy"]
        if job.seed is not None:
            argv += ["--seed", str(job.seed)]
        if job.runs:
            argv += ["--runs", str(job.runs)]
        if job.warmup:
            argv.append("--warmup")
        return f"{remote_python(self.spec)} " + " ".join(_q(a) for a in argv)

    def tune_command(self, job: Job) -> str:
        """`mace tune` within the job's budget, its JSON into outputs/ (empty when not tuning)."""
        if not job.tune_budget:
            return ""
        argv = ["-m", "mace", "tune", REMOTE_MODEL, "--program", REMOTE_PROGRAM, "--mode", "fast",
                "--budget", str(job.tune_budget), "--json"]
        return f"{remote_python(self.spec)} " + " ".join(_q(a) for a in argv) + f" > outputs/{TUNE_JSON} || exit $?\n"

    def run(self, job: Job, rdir: str, incoming: str, files: list[str]) -> tuple[dict, str]:
        moves = " && ".join(f"mv -f {_q(incoming + '/' + f)} {_q(f)}" for f in files)
        cmd = self.run_command(job)
        script = (f"cd {_q(rdir)} || exit {_RC_CD}\n"
                  f"mkdir -p inputs && {moves} && rm -rf {_q(incoming)} || exit {_RC_MOVE}\n"
                  f"rm -rf outputs && mkdir outputs || exit {_RC_OUTDIR}\n"
                  f"{_env_lines(self.spec)}{self.tune_command(job)}{cmd}\n"
                  f"rc=$?\n"
                  f"if [ -f {REMOTE_PROGRAM} ]; then ln -f {REMOTE_PROGRAM} outputs/{PULLED_PROGRAM} "
                  f"2>/dev/null || cp {REMOTE_PROGRAM} outputs/{PULLED_PROGRAM}; fi\n"
                  f"exit $rc")
        res = self.t.ssh(script)
        for line in res.stderr.splitlines():
            log.debug("%s: %s", self.name, line)
        last = _last_line(res.stderr)
        rc = res.returncode
        if rc in (_RC_CD, _RC_MOVE, _RC_OUTDIR):
            if "No space left" in res.stderr:
                raise RemoteDiskFull(f"{self.label}: no space left in {rdir} ({last}): free space there "
                                     f"or set workdir: in device.yml to a larger disk")
            raise RemoteError(f"{self.label}: cannot prepare {rdir} ({last}): check that the "
                              f"directory is writable, or set workdir: in device.yml")
        if rc in (126, 127):
            raise RemotePythonMissing(f"{self.label}: cannot run {self.spec.python!r} there ({last}): "
                                      f"set python: in device.yml")
        if rc != 0:
            errors = [ln.strip() for ln in res.stderr.splitlines() if ln.strip().startswith("error:")]
            why = errors[-1].removeprefix("error:").strip() if errors else (last or "no message")
            if rc > 128:
                why += f" (killed by signal {rc - 128}{', out of memory?' if rc == 137 else ''})"
            raise RemoteRunFailed(f"{self.label}: `mace run` failed there (exit {rc}): {why}")
        try:
            result = json.loads(res.stdout)
        except ValueError:
            raise RemoteRunFailed(f"{self.label}: `mace run --json` printed no JSON "
                                  f"({res.stdout.strip()[:80]!r}): upgrade mace there to "
                                  f"{__version__}") from None
        return result, cmd

    # -- 4. download -----------------------------------------------------------------------
    def download(self, rdir: str, tmp: Path) -> Path:
        pulled = tmp / "outputs"
        self.t.download(f"{rdir}/outputs", str(pulled))
        return pulled


def merge_program(local: Path, pulled: Path, origin: dict, device_fp: str | None) -> dict:
    """Merge the device's own section of its program file into the local one (created when
    missing), marked with its origin (provenance.py); every other section of the pulled file
    is dropped. `device_fp`: the fingerprint id the device's run reported. Never raises:
    problems become findings (the run's outputs are already in place)."""
    from mace.programcache import ProgramCacheError, maintenance
    from mace.programcache.format import CacheData, encode
    out: dict = {"path": str(local), "pulled": True, "sections": [], "new_sections": [],
                 "dropped_sections": [], "origin": origin, "findings": []}
    try:
        everything, _ = maintenance.load(pulled)
        own = device_fp if device_fp in everything.sections else (
            next(iter(everything.sections)) if device_fp is None and len(everything.sections) == 1
            else None)
        out["dropped_sections"] = sorted(f for f in everything.sections if f != own)
        if out["dropped_sections"]:
            msg = (f"the device's program file holds {len(out['dropped_sections'])} section(s) of "
                   f"other devices ({', '.join(out['dropped_sections'])}): not taken, only the "
                   f"device's own section {own or '(none reported)'} is merged")
            log.warning("%s", msg)
            out["findings"].append({"code": "FOREIGN_SECTION", "severity": "warning", "message": msg})
        data = provenance.take_section(everything, own, origin) if own else CacheData()
        fileio.write_atomic(pulled, encode(data))
        before = set(maintenance.load(local, missing_ok=True)[0].sections)
        res = maintenance.merge_files(local, [local, pulled], missing_ok=True)
        out["sections"] = [{"id": k, "short": fp.short()} for k, fp in sorted(data.sections.items())]
        out["new_sections"] = [s for s in out["sections"] if s["id"] not in before]
        out["stats"] = res.stats
        out["findings"] += [f.to_dict() for f in res.findings]
    except (OSError, ProgramCacheError) as exc:
        msg = (f"cannot merge the device's program file into {local} "
               f"({getattr(exc, 'message', None) or exc}): the outputs are fine; check the file with "
               f"`mace doctor {local}`")
        log.warning("%s", msg)
        out["findings"].append({"code": "MERGE_FAILED", "severity": "warning", "message": msg})
    return out


def run_on_device(name: str, spec: DeviceSpec, job: Job, output_dir: str | Path | None) -> dict:
    """Deploy `job` to one device, run it, bring everything back. Raises MaceError subclasses."""
    t_start = time.perf_counter()
    dev = RemoteDevice(name, spec)
    rdir = f"{spec.workdir}/{job.model_dir_name}"
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    version = dev.probe(rdir)
    timings["probe_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    incoming, files, nbytes = dev.upload(job, rdir)
    timings["upload_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    result, cmd = dev.run(job, rdir, incoming, files)
    timings["run_s"] = time.perf_counter() - t0

    out_dir = Path(output_dir) if output_dir is not None else None
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--output-dir {out_dir}: cannot create it ({exc.strerror}): choose "
                             f"a writable directory") from None
    # the temporary directory sits inside the output directory: os.replace stays on one disk
    tmp = Path(tempfile.mkdtemp(prefix=".mace-pull-", dir=out_dir))
    outputs: dict[str, str] = {}
    try:
        t0 = time.perf_counter()
        pulled = dev.download(rdir, tmp)
        timings["download_s"] = time.perf_counter() - t0
        if out_dir is not None:
            for f in sorted(pulled.glob("*.npy")):
                fileio.move_into(f, out_dir / f.name)
                outputs[f.stem] = str(out_dir / f.name)
            fileio.write_atomic(out_dir / RESULT_JSON, json.dumps(result, indent=2))
        if (pulled / TUNE_JSON).is_file():
            result["tuning"] = json.loads((pulled / TUNE_JSON).read_text())
        t0 = time.perf_counter()
        if (pulled / PULLED_PROGRAM).is_file():
            summary = result.get("summary") if isinstance(result, dict) else None
            fp = summary.get("device_fingerprint") if isinstance(summary, dict) else None
            program = merge_program(job.program, pulled / PULLED_PROGRAM, dev.origin,
                                    fp if isinstance(fp, str) else None)
        else:
            program = {"path": str(job.program), "pulled": False, "sections": [], "new_sections": [],
                       "findings": []}
        timings["merge_s"] = time.perf_counter() - t0
    except OSError as exc:
        if exc.errno == 28:
            raise RemoteDiskFull(f"{dev.label}: no space left on this machine in "
                                 f"{out_dir or tempfile.gettempdir()}: free space here or choose "
                                 f"another --output-dir") from None
        raise InputError(f"cannot write the results of {dev.label} to {out_dir} "
                         f"({exc.strerror or exc}): choose a writable --output-dir") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    program["uploaded"] = REMOTE_PROGRAM in files
    timings["total_s"] = time.perf_counter() - t_start
    return {"device": name, "ok": True, "address": spec.address, "username": spec.username,
            "target_abis": spec.target_abis, "target_socs": spec.target_socs, "models": spec.models,
            "remote": {"dir": rdir, "python": spec.python, "mace_version": version, "command": cmd},
            "uploaded_bytes": nbytes, "output_dir": str(out_dir) if out_dir is not None else None,
            "output_files": outputs, "program": program, "timings": timings, "run": result}


def deploy(device_conf, device: str | None, model, program=None, runtime=None, inputs=(),
           output_dir=None, *, seed=None, runs=0, warmup=False) -> list[dict]:
    """Run on every device of device.yml (or the one named): one result per device, in order.
    A device that fails gives {"device", "ok": False, "error", "error_type"}; the others go on.
    Config and local-input errors raise before any connection."""
    conf = device_conf if isinstance(device_conf, LoadedDevices) else load_devices(device_conf)
    targets = conf.select(device)
    job = make_job(model, program, runtime, inputs, seed=seed, runs=runs, warmup=warmup)
    results = []
    for name, spec in targets:
        out = Path(output_dir) / name if output_dir is not None else None
        try:
            results.append(run_on_device(name, spec, job, out))
        except MaceError as exc:
            log.debug("%s failed", name, exc_info=True)
            results.append({"device": name, "ok": False, "address": spec.address,
                            "error": str(exc), "error_type": type(exc).__name__})
    return results


def run_remote(device_conf, device_name, model, program=None, runtime=None, inputs=(),
               output_dir=None, *, seed=None, runs=0, warmup=False) -> dict:
    """`mace run --device-conf device.yml --device NAME MODEL ...`: run on one remote device.

    `inputs`: {"NAME": path} or ["NAME=FILE.npy", ...]; outputs land in `output_dir` as NAME.npy
    (with the run's JSON as mace-run.json). Returns the result dict (the remote `mace run --json`
    document under "run"). Raises MaceError subclasses with a one-line message."""
    conf = device_conf if isinstance(device_conf, LoadedDevices) else load_devices(device_conf)
    [(name, spec)] = conf.select(device_name, one=True)
    job = make_job(model, program, runtime, inputs, seed=seed, runs=runs, warmup=warmup)
    return run_on_device(name, spec, job, output_dir)


__all__ = ["run_remote", "deploy", "run_on_device", "make_job", "merge_program", "Job",
           "RemoteDevice", "REMOTE_PROGRAM", "RESULT_JSON"]

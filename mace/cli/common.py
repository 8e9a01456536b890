"""What every verb shares: the `mace` group (a MaceError becomes one line and its exit code),
logging to stderr, the common options and the one `--json` emitter."""
from __future__ import annotations

import logging
import sys

import click

from mace import __version__
from mace.runtime import RUNTIMES

OK, FINDINGS, BAD_INPUT = 0, 1, 2


def setup_logging(verbose: int, quiet: bool) -> None:
    from mace import settings
    named = (settings.get("MACE_LOG_LEVEL", "INFO") or "INFO").upper()
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else getattr(logging, named, logging.INFO))
    root = logging.getLogger("mace")
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("mace %(levelname)s: %(message)s"))
        root.addHandler(h)
    root.setLevel(level)
    root.propagate = False


OFF_TTY_WIDTH = 4096


def console(**kwargs):
    """stdout's rich console: the terminal's width on a terminal; off one (a pipe, a file) as wide
    as the content needs (or $COLUMNS), so tables are never squeezed into 80 columns."""
    import os

    from rich.console import Console
    if not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        kwargs.setdefault("width", OFF_TTY_WIDTH)
    return Console(**kwargs)


def emit_json(obj) -> None:
    """The one `--json` document of a command, on stdout."""
    from mace.jsondoc import dumps
    click.echo(dumps(obj))


def error_doc(message: str, code: int, kind: str = "MaceError") -> dict:
    """The `--json` document of a failed command: what went wrong and the exit code."""
    return {"ok": False, "error": message, "code": code, "type": kind}


def bad_input(message: str, as_json: bool) -> None:
    """One line on stderr (with --json, the error document on stdout instead), exit 2."""
    if as_json:
        emit_json(error_doc(message, BAD_INPUT))
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(BAD_INPUT)


def _wants_json(ctx) -> bool:
    """Whether the command line asks for --json (the verb's own context is gone after an error)."""
    args = list(getattr(ctx, "_protected_args", []) or []) + list(ctx.args or [])
    return "--json" in (args[:args.index("--")] if "--" in args else args)


class MaceGroup(click.Group):
    """Turns MaceError into a one-line message and its exit code, never a traceback; with
    --json the error is also a JSON document on stdout (so a pipe always gets one)."""

    def invoke(self, ctx):
        from mace.errors import MaceError
        as_json = _wants_json(ctx)                   # read before click hands the args to the verb
        try:
            return super().invoke(ctx)
        except MaceError as exc:
            from mace.cli import termtext
            message = termtext.plain(exc)
            click.echo(f"error: {message}", err=True)
            if as_json:
                emit_json(error_doc(message, exc.exit_code, type(exc).__name__))
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            if as_json:
                emit_json(error_doc(exc.format_message(), exc.exit_code, "UsageError"))
            raise
        finally:
            _finish_harvests()


def _finish_harvests() -> None:
    """Binaries a verb's engines are still saving: the verb ends when its program file is whole
    (within MACE_HARVEST_EXIT_SECONDS), in a process or under click's test runner alike."""
    harvest = sys.modules.get("mace.runtime.opencl.harvest")
    if harvest is not None:
        harvest.finish()


@click.group(cls=MaceGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mace")
@click.option("-v", "--verbose", count=True, help="More log output (debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """mace: run ONNX models on OpenCL GPUs (PoCL by default) and the CPU."""
    from mace import settings
    settings.check()
    setup_logging(verbose, quiet)
    from mace.cli.progress import show_builds  # one line while a cold start compiles
    show_builds(not quiet and not _wants_json(click.get_current_context()))


RUNTIME_OPT = click.option("--runtime", type=click.Choice(RUNTIMES), default=None,
                           help="Runtime (default: the model's, from mace.yml's `runtime`, else cpu+gpu). "
                                "gpu refuses a model with ops the GPU runtime lacks; cpu+gpu runs those "
                                "on the CPU runtime.")
DEVICE_OPT = click.option("--device", default=None, help="OpenCL device index or name (MACE_DEVICE).")
PROGRAM_OPT = click.option("--program", type=click.Path(dir_okay=False), default=None,
                           help="Compiled program cache file (default MACE_PROGRAM_PATH or the user cache dir).")
JSON_OPT = click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")

"""What every verb shares: the `mace` group (a MaceError becomes one line and its exit code),
logging to stderr, the common options and the one `--json` emitter."""
from __future__ import annotations

import logging
import sys

import click

from mace import __version__

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


def emit_json(obj) -> None:
    """The one `--json` document of a command, on stdout."""
    from mace.jsondoc import dumps
    click.echo(dumps(obj))


def bad_input(message: str, as_json: bool) -> None:
    """One line on stderr (with --json, also `{"ok": false, "error": ...}` on stdout), exit 2."""
    if as_json:
        emit_json({"ok": False, "error": message})
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(BAD_INPUT)


class MaceGroup(click.Group):
    """Turns MaceError into a one-line message and its exit code, never a traceback."""

    def invoke(self, ctx):
        from mace.errors import MaceError
        try:
            return super().invoke(ctx)
        except MaceError as exc:
            from mace.cli import termtext
            click.echo(f"error: {termtext.plain(exc)}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=MaceGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mace")
@click.option("-v", "--verbose", count=True, help="More log output (debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """mace: run ONNX models on OpenCL GPUs (PoCL by default) and the CPU."""
    from mace import settings
    settings.check()
    setup_logging(verbose, quiet)


RUNTIME_OPT = click.option("--runtime", type=click.Choice(["cpu", "gpu", "cpu+gpu"]), default=None,
                           help="Runtime (default: the model's, from mace.yml's `runtime`, else cpu+gpu). "
                                "gpu refuses a model with ops the GPU runtime lacks; cpu+gpu runs those "
                                "on the CPU runtime.")
DEVICE_OPT = click.option("--device", default=None, help="OpenCL device index or name (MACE_DEVICE).")
PROGRAM_OPT = click.option("--program", type=click.Path(dir_okay=False), default=None,
                           help="Compiled program cache file (default MACE_PROGRAM_PATH or the user cache dir).")
JSON_OPT = click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")

"""What every command shares: the error-to-exit-code group, signals, progress, defaults from the configs."""

from __future__ import annotations

import contextlib
import signal
import threading
import traceback

import click

from vsr_pipeline.cli.progress import PROGRESS_MODES, progress_bar  # noqa: F401  (re-exported)
from vsr_pipeline.errors import EXIT_INTERRUPTED, Terminated, VsrError

EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 internal error, 2 usage error, 3 input error, 4 output error, "
    "5 model error, 6 damaged input (--on-error stop), 7 configuration error, 8 some files of a batch failed, 130 interrupted (Ctrl-C), "
    "143 terminated (SIGTERM), 129 hung up (SIGHUP)."
)

_HANDLED = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def signals_as_exceptions():
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread while inside (as Ctrl-C raises KeyboardInterrupt).

    The exception unwinds like Ctrl-C's: temporary files are removed and an ffmpeg child
    is stopped on the way out. Outside the main thread (nothing can be installed) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in _HANDLED:
        try:
            previous[signum] = signal.signal(signum, _raise_terminated)
        except (ValueError, OSError):
            pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class VsrGroup(click.Group):
    """A click group that turns VsrError into one sentence and its exit code, and signals into exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            with signals_as_exceptions():
                return super().invoke(ctx)
        except VsrError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("\nInterrupted; nothing was written to the output path.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Terminated as exc:
            click.echo(f"\nStopped by {exc.name}; nothing was written to the output path.", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: say so, show the traceback only when asked
            click.secho(f"Internal error: {type(exc).__name__}: {exc}", fg="red", err=True)
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            else:
                click.echo("Run with -v for the traceback, and please report it.", err=True)
            ctx.exit(1)


def fps_option(arg: str = "INPUT", use: str = "needed to make a video of it"):
    """The ``--fps`` option of every command that reads image sequences: one name, type and wording.

    ``arg`` names the argument(s) it applies to, ``use`` says what the rate is for there.
    """
    return click.option(
        "--fps", type=float, default=None,
        help=f"Frame rate of an image-sequence {arg} (a folder, frames/%06d.png or frames/*.tif); {use}.",
    )


def given(ctx: click.Context, name: str) -> bool:
    """True when the option ``name`` was set on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


__all__ = ["EXIT_CODES_HELP", "PROGRESS_MODES", "VsrGroup", "fps_option", "given", "progress_bar", "signals_as_exceptions"]

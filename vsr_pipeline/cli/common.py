"""What every command shares: the error-to-exit-code group, the progress bar, defaults from the configs."""

from __future__ import annotations

import sys
import traceback

import click

from vsr_pipeline.errors import EXIT_INTERRUPTED, VsrError

EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 internal error, 2 usage error, 3 input error, 4 output error, "
    "5 model error, 6 damaged input (--on-error stop), 7 configuration error, 130 interrupted."
)


class VsrGroup(click.Group):
    """A click group that turns VsrError into one sentence and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VsrError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("\nInterrupted; nothing was written to the output path.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: say so, show the traceback only when asked
            click.secho(f"Internal error: {type(exc).__name__}: {exc}", fg="red", err=True)
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            else:
                click.echo("Run with -v for the traceback, and please report it.", err=True)
            ctx.exit(1)


def progress_bar(quiet: bool):
    """(bar, update) for a tqdm bar with fps and ETA, or (None, None) when quiet or not on a terminal."""
    if quiet or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(unit="frame", dynamic_ncols=True, leave=False, smoothing=0.1)

    def update(done: int, expected: int | None) -> None:
        if expected and bar.total != expected:
            bar.total = expected
            bar.refresh()
        bar.update(done - bar.n)

    return bar, update


def given(ctx: click.Context, name: str) -> bool:
    """True when the option ``name`` was set on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")

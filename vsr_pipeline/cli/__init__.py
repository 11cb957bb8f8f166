"""The ``vsrpipe`` command line: one click group, one module per command group.

Commands are imported only when they are looked up, and their modules import nothing
heavy at module level, so ``vsrpipe --help``, ``vsrpipe <command> --help`` and
``vsrpipe models`` never import torch.

Exit codes: 0 ok · 1 internal error · 2 usage · 3 input · 4 output · 5 model · 6 damaged
input (--on-error stop) · 7 configuration · 130 interrupted · 143 SIGTERM · 129 SIGHUP
(see vsr_pipeline.errors).
"""

from __future__ import annotations

import importlib
import logging

import click

from vsr_pipeline import __version__
from vsr_pipeline.cli.common import EXIT_CODES_HELP, VsrGroup

# command name -> "module:attribute", in the order `vsrpipe --help` lists them
COMMANDS = {
    "enhance": "vsr_pipeline.cli.enhance:enhance",
    "batch": "vsr_pipeline.cli.batch:batch",
    "models": "vsr_pipeline.cli.models:models",
    "estimate-kernel": "vsr_pipeline.cli.kernel:estimate_kernel",
    "degrade": "vsr_pipeline.cli.tools:degrade",
    "evaluate": "vsr_pipeline.cli.tools:evaluate",
    "compare": "vsr_pipeline.cli.tools:compare",
    "train": "vsr_pipeline.cli.train:train",
}


class LazyGroup(VsrGroup):
    """A group whose commands are imported when they are looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _, attr = COMMANDS[name].partition(":")
        command = getattr(importlib.import_module(module), attr)
        command.epilog = command.epilog or EXIT_CODES_HELP
        return command


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="vsrpipe")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """vsrpipe: video super-resolution that adapts its network to each clip."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")


if __name__ == "__main__":
    main()

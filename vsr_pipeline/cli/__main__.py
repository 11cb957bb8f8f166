"""``python -m vsr_pipeline.cli``: the ``vsrpipe`` command."""

from vsr_pipeline.cli import main

main(prog_name="vsrpipe")

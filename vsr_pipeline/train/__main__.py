"""``python -m vsr_pipeline.train``: the ``vsrpipe train`` command on its own."""

import logging

from vsr_pipeline.cli.train import train

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
train(prog_name="python -m vsr_pipeline.train")

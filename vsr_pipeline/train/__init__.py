"""Training of the project's VSR networks: data from clips and stills, losses, the loop, the CLI.

Heavy modules are imported on use; ``from vsr_pipeline.train.loop import train`` runs a run.
"""

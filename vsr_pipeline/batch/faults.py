"""Fault injection for the crash tests: ``VSRPIPE_BATCH_FAULT=<point>`` kills the process there with SIGKILL.

Points: ``segment`` (half-way through encoding the second segment of a file), ``join``
(half-way through joining the segments), ``frame:N`` (once N frames of an image-sequence
output are staged), ``manifest:N`` (inside the N-th manifest
transaction of the run, before it commits) and ``worker-once:<marker file>`` (a batch worker kills itself at the
start of its first job if the marker does not exist yet, creating it: the retry then
succeeds). Unset (always, outside tests) it does nothing.
"""

from __future__ import annotations

import os
import signal

ENV = "VSRPIPE_BATCH_FAULT"
_counts: dict[str, int] = {}


def fault(point: str, count: int | None = None) -> None:
    """Kill this process with SIGKILL when the environment asks for a fault at ``point`` (``point:count`` when counted)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    if wanted == (point if count is None else f"{point}:{count}"):
        os.kill(os.getpid(), signal.SIGKILL)
    if point == "manifest" and wanted.startswith("manifest:"):
        _counts[point] = _counts.get(point, 0) + 1
        if _counts[point] == int(wanted.partition(":")[2]):
            os.kill(os.getpid(), signal.SIGKILL)
    if point == "worker" and wanted.startswith("worker-once:"):
        marker = wanted.partition(":")[2]
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

"""Keep PyAV's cached frame converter out of forked processes (mutation testing).

PyAV keeps one ``VideoReformatter`` per thread (``av.video.frame._thread_local``) and
reuses its swscale context, which runs a pool of slice threads. ``mutmut run`` runs the
tests once in its own process and then forks a child per mutant: the child inherits the
converter but not its threads, and the first conversion that reconfigures it (another
size, format or matrix) waits forever for those threads (``avpriv_slicethread_free``), a
deadlock that mutmut reports as a "timeout". After a fork the child drops the inherited
converter (kept referenced, never freed: freeing it would wait on the same threads) and
PyAV makes a fresh one on first use. Plain pytest runs never fork, so this changes nothing
for them.
"""

import os

_inherited = []  # converters inherited across fork(): referenced forever so that they are never freed


def _drop_inherited_reformatter() -> None:
    try:
        from av.video import frame
    except ImportError:  # pragma: no cover - PyAV is a dependency
        return
    local = getattr(frame, "_thread_local", None)
    reformatter = getattr(local, "reformatter", None)
    if reformatter is not None:
        _inherited.append(reformatter)
        local.reformatter = None


os.register_at_fork(after_in_child=_drop_inherited_reformatter)

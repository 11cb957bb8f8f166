"""The VsrError hierarchy: every failure a user can cause has one clear sentence and an exit code.

Exit codes (documented in README and ``vsrpipe --help``):

====  =====================================================================
code  meaning
====  =====================================================================
0     success
1     unexpected internal error (a bug: please report it with the traceback)
2     usage error (bad option, bad argument; raised by click)
3     input error: the input is missing, unreadable, not a video, empty
4     output error: output exists, unwritable, same as input, format refused
5     model error: unknown model, bad weights, unsupported scale
6     decode error: the input is corrupt and ``--on-error stop`` was in force
7     configuration error: bad degradation spec, bad option combination
8     ``vsrpipe batch``: some files failed (the others are done; see its table)
129   hung up (SIGHUP); nothing is left at the output path
130   interrupted (Ctrl-C, SIGINT); nothing is left at the output path
143   terminated (SIGTERM: ``timeout``, systemd, ``docker stop``); nothing is left
====  =====================================================================
"""

from __future__ import annotations


class VsrError(Exception):
    """Base class: ``str(err)`` is a complete sentence meant for the user."""

    exit_code = 1


class InputError(VsrError):
    """The input file is missing, unreadable, not a video, or holds no frames."""

    exit_code = 3


class OutputError(VsrError):
    """The output cannot be written where or how it was asked for."""

    exit_code = 4


class ModelError(VsrError):
    """The model is unknown, its weights are unusable, or it cannot serve the scale."""

    exit_code = 5


class DecodeError(VsrError):
    """The input is damaged and decoding stopped (``--on-error stop``)."""

    exit_code = 6


class ConfigError(VsrError):
    """An option or spec string is malformed or inconsistent with the others."""

    exit_code = 7


EXIT_SOME_FAILED = 8  # vsrpipe batch: at least one file failed, the rest finished
EXIT_INTERRUPTED = 130


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM or SIGHUP arrives, so that cleanup runs as for Ctrl-C.

    A BaseException (like KeyboardInterrupt), so ``except Exception`` never swallows it.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"{self.name} received")

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as shells report a process killed by it (143 SIGTERM, 129 SIGHUP)."""
        return 128 + self.signum

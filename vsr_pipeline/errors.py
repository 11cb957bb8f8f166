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
130   interrupted (Ctrl-C); nothing is left at the output path
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


EXIT_INTERRUPTED = 130

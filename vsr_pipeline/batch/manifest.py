"""The batch manifest: one SQLite file in WAL mode, one committed transaction per state change.

It lives in ``OUT_DIR/.vsrpipe/manifest.sqlite`` (``enhance --resume``: in a work folder
beside the output) and survives ``kill -9`` at any point: SQLite either has a change or
has not. Any SQLite tool reads it (``sqlite3 OUT_DIR/.vsrpipe/manifest.sqlite 'select *
from files'``). Only the driver writes it; workers return results and the driver records
them as they arrive. Schema (docs/batch.md):

``files``: one row per input file, keyed by its path relative to IN_DIR —
``size``, ``mtime_ns``, ``head_tail`` (SHA-256 of its first and last MiB): the input's
identity (an image-sequence folder: its frames' total size, newest mtime and a SHA-256 of
their names, sizes and mtimes); ``settings`` (hash of every option that changes the output); ``status``
(queued / running / done / failed); ``frames``, ``seconds`` (worker time), ``output``
(relative to OUT_DIR), ``output_hash`` (SHA-256 of the published file), ``output_size`` and
``output_mtime_ns`` (checked on every run; the hash where they differ), ``error``,
``exit_code``, ``plan`` (JSON segment plan of a long file), ``updated`` (unix time).

``segments``: one row per finished segment of a long file: ``path``, ``idx``, ``frames``,
``seconds``, ``file`` (its encoded file in the work folder, fsynced before the row is
written), ``report`` (JSON adaptation records), ``size`` and ``sha256`` of the file: a
segment whose file no longer matches is encoded again.

A lock file (``fcntl.flock``, released by the kernel when the process dies, so ``kill
-9`` leaves no stale lock) keeps two batches from writing one manifest.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from vsr_pipeline.errors import OutputError

SCHEMA_VERSION = 2
HEAD_TAIL = 1 << 20  # bytes hashed at each end of an input for its identity

_SCHEMA = """
create table if not exists meta (key text primary key, value text);
create table if not exists files (
    path text primary key, output text, size integer, mtime_ns integer, head_tail text, settings text,
    status text not null, frames integer, seconds real, output_hash text, error text, exit_code integer,
    plan text, updated real, output_size integer, output_mtime_ns integer
);
create table if not exists segments (
    path text not null, idx integer not null, frames integer, seconds real, file text, report text,
    size integer, sha256 text, primary key (path, idx)
);
"""
# columns added since schema 1: (table, column, type); a manifest of version 1 gains them on open
_ADDED = (("files", "output_size", "integer"), ("files", "output_mtime_ns", "integer"),
          ("segments", "size", "integer"), ("segments", "sha256", "text"))


_FULL_SENTENCE = "the disk is full (no space left on device); free some space and run again"


def _is_full(exc: sqlite3.Error) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full"), or an I/O error from a full disk."""
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


@dataclass(frozen=True)
class Identity:
    """What identifies an input file's content without reading all of it."""

    size: int
    mtime_ns: int
    head_tail: str  # SHA-256 of the first and last HEAD_TAIL bytes

    @classmethod
    def of(cls, path: Path) -> "Identity":
        """Stat and hash ``path`` (OSError when it cannot be read); a folder is an image sequence, see :meth:`of_sequence`."""
        if os.path.isdir(path):
            return cls.of_sequence(path)
        st = os.stat(path)
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            h.update(fh.read(HEAD_TAIL))
            if st.st_size > HEAD_TAIL:
                fh.seek(max(HEAD_TAIL, st.st_size - HEAD_TAIL))
                h.update(fh.read(HEAD_TAIL))
        return cls(st.st_size, st.st_mtime_ns, h.hexdigest())

    @classmethod
    def of_sequence(cls, folder: Path) -> "Identity":
        """The identity of the image sequence in ``folder``: total size, newest mtime, hash of every frame's name, size, mtime.

        Stats only (a sequence's frames are many files): a frame replaced, added or removed
        changes it. Raises the sequence's one-sentence :class:`~vsr_pipeline.errors.InputError`
        when the folder is not one gapless run (the refusal ``enhance`` gives).
        """
        from vsr_pipeline.io.sequence import list_sequence

        h = hashlib.sha256()
        size = newest = 0
        for frame in list_sequence(folder).files:
            st = os.stat(frame)
            size += st.st_size
            newest = max(newest, st.st_mtime_ns)
            h.update(f"{frame.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return cls(size, newest, h.hexdigest())


@dataclass
class FileRow:
    """One row of ``files``."""

    path: str
    output: str | None
    size: int | None
    mtime_ns: int | None
    head_tail: str | None
    settings: str | None
    status: str
    frames: int | None
    seconds: float | None
    output_hash: str | None
    error: str | None
    exit_code: int | None
    plan: str | None
    updated: float | None
    output_size: int | None = None
    output_mtime_ns: int | None = None

    @property
    def identity(self) -> Identity | None:
        if self.size is None:
            return None
        return Identity(self.size, self.mtime_ns or 0, self.head_tail or "")


class Manifest:
    """The manifest of one output folder; use as a context manager (holds the lock while open)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "manifest.sqlite"
        self._lock_fd: int | None = None
        self.db: sqlite3.Connection | None = None

    def __enter__(self) -> "Manifest":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Take the lock, then open (or create) the database."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"Cannot create the batch work folder {str(self.folder)!r} ({exc.strerror}).") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise OutputError(
                f"Another vsrpipe run (pid {holder}) is writing to {str(self.folder.parent)!r}; "
                "wait for it to finish or choose another output folder."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("pragma journal_mode=wal")
            self.db.execute("pragma synchronous=full")  # a committed state change survives power loss
            self.db.executescript(_SCHEMA)
            for table, column, kind in _ADDED:
                have = {r[1] for r in self.db.execute(f"pragma table_info({table})")}
                if column not in have:
                    self.db.execute(f"alter table {table} add column {column} {kind}")
            self.db.execute("insert or replace into meta values ('schema', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            self.close()
            if _is_full(exc):
                raise OutputError(f"Cannot write the batch manifest {str(self.path)!r}: {_FULL_SENTENCE}.") from exc
            raise OutputError(f"The batch manifest {str(self.path)!r} is unreadable ({exc}); move it away to start afresh.") from exc

    def close(self) -> None:
        """Close the database and release the lock."""
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # One committed transaction per state change --------------------------------------
    def _write(self, sql_args: list[tuple[str, tuple]]) -> None:
        from vsr_pipeline.batch.faults import fault

        assert self.db is not None
        try:
            with self.db:  # commits, or rolls back on an exception
                self.db.execute("begin immediate")
                for sql, args in sql_args:
                    self.db.execute(sql, args)
                fault("manifest")  # tests: kill -9 inside an open transaction
        except sqlite3.OperationalError as exc:  # the change is rolled back: the manifest still tells the truth
            why = _FULL_SENTENCE if _is_full(exc) else str(exc)
            raise OutputError(f"Cannot record progress in the batch manifest {str(self.path)!r}: {why}.") from exc

    def get(self, path: str) -> FileRow | None:
        """The row of the input ``path`` (relative to IN_DIR), or None."""
        assert self.db is not None
        cur = self.db.execute(f"select {', '.join(FileRow.__dataclass_fields__)} from files where path = ?", (path,))
        row = cur.fetchone()
        return FileRow(*row) if row else None

    def rows(self) -> list[FileRow]:
        """Every file row, by path."""
        assert self.db is not None
        cur = self.db.execute(f"select {', '.join(FileRow.__dataclass_fields__)} from files order by path")
        return [FileRow(*r) for r in cur.fetchall()]

    def start(self, path: str, output: str, identity: Identity, settings: str, *, keep_segments: bool) -> None:
        """Mark ``path`` queued for ``identity``/``settings``; without ``keep_segments`` its old plan and segments go."""
        stmts = [(
            "insert into files (path, output, size, mtime_ns, head_tail, settings, status, updated) "
            "values (?, ?, ?, ?, ?, ?, 'queued', ?) on conflict(path) do update set output=excluded.output, "
            "size=excluded.size, mtime_ns=excluded.mtime_ns, head_tail=excluded.head_tail, settings=excluded.settings, "
            "status='queued', error=null, exit_code=null, updated=excluded.updated",
            (path, output, identity.size, identity.mtime_ns, identity.head_tail, settings, time.time()),
        )]
        if not keep_segments:
            stmts.append(("update files set plan=null where path=?", (path,)))
            stmts.append(("delete from segments where path=?", (path,)))
        self._write(stmts)

    def running(self, path: str) -> None:
        """Mark ``path`` running: a worker has started on it."""
        self._write([("update files set status='running', updated=? where path=? and status='queued'", (time.time(), path))])

    def requeue(self) -> None:
        """Put every running file back in the queue (the engine could not start, or stopped)."""
        self._write([("update files set status='queued', updated=? where status='running'", (time.time(),))])

    def set_output(self, path: str, size: int, mtime_ns: int) -> None:
        """Record the size and mtime of a done file's output as found now (its hash was checked)."""
        self._write([("update files set output_size=?, output_mtime_ns=? where path=?", (size, mtime_ns, path))])

    def set_plan(self, path: str, plan: dict) -> None:
        """Record the segment plan of a long file."""
        self._write([("update files set plan=?, updated=? where path=?", (json.dumps(plan), time.time(), path))])

    def segment_done(self, path: str, idx: int, frames: int, seconds: float, file: str, report: dict | None,
                     size: int, sha256: str) -> None:
        """Record a finished (encoded and fsynced) segment, with its file's size and hash."""
        self._write([(
            "insert or replace into segments (path, idx, frames, seconds, file, report, size, sha256) "
            "values (?, ?, ?, ?, ?, ?, ?, ?)",
            (path, idx, frames, seconds, file, json.dumps(report) if report is not None else None, size, sha256),
        )])

    def segments(self, path: str) -> dict[int, dict]:
        """The finished segments of ``path``: idx -> {frames, seconds, file, report, size, sha256}."""
        assert self.db is not None
        cur = self.db.execute(
            "select idx, frames, seconds, file, report, size, sha256 from segments where path=? order by idx", (path,))
        return {
            i: {"frames": f, "seconds": s, "file": fl, "report": json.loads(r) if r else None, "size": n, "sha256": h}
            for i, f, s, fl, r, n, h in cur.fetchall()
        }

    def done(self, path: str, frames: int, seconds: float, output_hash: str, output_size: int | None = None,
             output_mtime_ns: int | None = None) -> None:
        """Mark ``path`` done (its output is published, with this hash, size and mtime); its segments are forgotten."""
        self._write([
            ("update files set status='done', frames=?, seconds=?, output_hash=?, output_size=?, output_mtime_ns=?, "
             "error=null, exit_code=null, plan=null, updated=? where path=?",
             (frames, seconds, output_hash, output_size, output_mtime_ns, time.time(), path)),
            ("delete from segments where path=?", (path,)),
        ])

    def failed(self, path: str, error: str, exit_code: int) -> None:
        """Mark ``path`` failed with one sentence; finished segments are kept for a retry."""
        self._write([("update files set status='failed', error=?, exit_code=?, updated=? where path=?",
                      (error, exit_code, time.time(), path))])

    def forget(self, path: str) -> None:
        """Drop every record of ``path``."""
        self._write([("delete from files where path=?", (path,)), ("delete from segments where path=?", (path,))])

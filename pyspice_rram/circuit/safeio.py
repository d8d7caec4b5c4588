"""Safe outputs of the circuit and surrogate commands: a lock file per output, no silent
overwrite, signals that unwind (so temporary files are removed), readable HDF5 errors.

* :class:`OutputLock` -- ``<output>.lock`` holding the writer's PID and locked with
  ``flock`` (``O_EXCL`` where there is no ``fcntl``); a second writer to the same output is
  refused with a message; the lock of a writer that no longer runs (a killed job) is taken
  over.
* :func:`check_output` -- an existing output is refused unless ``force`` (overwrite) or
  ``resume`` (continue) is given.
* :func:`signals_unwind` -- SIGTERM (and SIGHUP) raise :class:`Interrupted` in the main
  thread, as SIGINT raises ``KeyboardInterrupt``, so ``finally`` blocks and temporary
  directories are cleaned up; :func:`raise_if_interrupted` raises such a signal again at a
  safe point when a library swallowed it.
* :func:`open_h5` -- ``h5py.File`` whose errors name the file (not an HDF5 file, truncated,
  missing) as a one-line ``ValueError`` / ``FileNotFoundError``.
* :func:`atomic_h5` -- write (or append to a copy of) an HDF5 file beside its final path and
  ``os.replace`` it there: a kill at any moment leaves the earlier file byte-identical.
* :class:`H5Checkpoints` -- per-tile / per-item results of a long job committed through
  :func:`atomic_h5` in batches (every ``CHECKPOINT_S`` seconds, and at least 20 times the
  last commit's duration apart, so the copies cost < 5 % of the run), and on an interrupt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError, PyspiceRramError, UserInputError


class OutputLocked(UserInputError):
    """Another running process writes the same output."""


class OutputExists(UserInputError):
    """The output exists and neither ``--force`` nor ``--resume`` was given."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM / SIGHUP received (handled like SIGINT)."""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class OutputLock:
    """Exclusive lock ``<path>.lock`` (holds the PID) for writing ``path``.

    Use as a context manager; the lock file is removed on exit. On POSIX the lock is an
    ``flock`` on the lock file, which the kernel releases when its holder dies, so the lock
    file of a killed writer is stale and is taken over (whatever PID it names); the PID is
    only there for the message. Without ``fcntl`` the lock file is created with ``O_EXCL``
    and a lock whose PID no longer runs is taken over.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock = self.path.with_name(self.path.name + ".lock")
        self._fd: int | None = None
        self._held = False

    def _refuse(self, pid: int) -> OutputLocked:
        return OutputLocked(
            f"{self.path} is being written by another process (PID {pid or '?'}, lock file "
            f"{self.lock}); wait for it or choose another -o/--output")

    def acquire(self) -> "OutputLock":
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self._acquire_excl()
        for _ in range(20):
            fd = os.open(self.lock, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    pid = int(os.read(fd, 32).decode().strip() or "0")
                except ValueError:
                    pid = 0
                os.close(fd)
                raise self._refuse(pid) from None
            try:  # the file locked must still be the lock file (not one just released)
                same = os.stat(self.lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd, self._held = fd, True
            self._remove_stale_temporaries()
            return self
        raise OutputLocked(f"could not take the lock file {self.lock} of {self.path}")

    def _acquire_excl(self) -> "OutputLock":  # pragma: no cover - not POSIX
        for _ in range(3):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.lock.read_text().strip() or "0")
                except (OSError, ValueError):
                    pid = 0
                if pid and _alive(pid) and pid != os.getpid():
                    raise self._refuse(pid) from None
                with contextlib.suppress(FileNotFoundError):
                    self.lock.unlink()      # stale lock of a dead writer: take it over
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            self._held = True
            return self
        raise OutputLocked(f"could not take the lock file {self.lock} of {self.path}")

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of :func:`atomic_h5` / :func:`atomic_write_text` for this output
        left by a killed writer (the lock is ours: no other writer of it runs)."""
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def release(self) -> None:
        if self._held:
            with contextlib.suppress(FileNotFoundError):
                self.lock.unlink()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._held = False

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_output(path: str | Path, *, force: bool = False, resume: bool = False,
                 option: str = "-o/--output") -> bool:
    """Refuse an existing ``path`` unless ``force`` or ``resume``; returns whether it exists."""
    p = Path(path)
    if p.exists() and not (force or resume):
        raise OutputExists(f"{option} {p} exists: give --force to overwrite it"
                           + (" or --resume to continue it" if resume is not None else ""))
    return p.exists()


#: Signals received inside :func:`signals_unwind` (for :func:`raise_if_interrupted`).
_SEEN: list[int] = []


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Interrupted` (main thread only), as
    SIGINT raises ``KeyboardInterrupt``; every such signal is also remembered, so that
    :func:`raise_if_interrupted` raises it again when a library swallowed it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        _SEEN.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(f"signal {signal.Signals(signum).name}")

    import sys

    old_hook = sys.unraisablehook

    def unraisable(info):   # the signal lost in a weakref callback / __del__: no traceback
        if isinstance(info.exc_value, KeyboardInterrupt) and _SEEN:
            return          # raised again by raise_if_interrupted
        old_hook(info)

    old = {}
    _SEEN.clear()
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            old[sig] = signal.signal(sig, handler)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        sys.unraisablehook = old_hook
        for sig, h in old.items():
            signal.signal(sig, h)
        _SEEN.clear()


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` / :class:`Interrupted` again if a signal arrived inside
    :func:`signals_unwind`: called at safe points of a long job (after an epoch, a tile,
    a commit). A ``KeyboardInterrupt`` raised while a library runs a weakref callback or
    ``__del__`` (h5py closing a file) is printed as "Exception ignored" and lost; without
    this the job would go on after Ctrl-C."""
    if _SEEN:
        signum = _SEEN[-1]
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(f"signal {signal.Signals(signum).name}")


class SolverFailed(PyspiceRramError, ValueError):
    """ngspice failed on a tile: one line naming the kept netlist and its log."""


@contextlib.contextmanager
def ngspice_errors_as_one_line() -> Iterator[None]:
    """Turn an ngspice failure (:class:`~pyspice_rram.circuit.ngspice_run.NgspiceError`,
    not a missing ngspice) into :class:`SolverFailed`: its first line, the kept netlist and
    the ngspice output written beside it as ``.log``."""
    from .ngspice_run import NgspiceError, NgspiceNotFound

    try:
        yield
    except NgspiceNotFound:
        raise
    except NgspiceError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = ""
        if exc.netlist_path is not None:
            log = Path(exc.netlist_path).with_suffix(".log")
            with contextlib.suppress(OSError):
                log.write_text(exc.log)
            where = f"; netlist kept at {exc.netlist_path}, ngspice output at {log}"
        raise SolverFailed(f"{type(exc).__name__}: {first}{where}") from None


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a
    rename: a reader (or a crash) never sees half a file."""
    import tempfile

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.chmod(tmp, 0o644)             # mkstemp makes 0600; an output is a normal file
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return p


def open_h5(path: str | Path, mode: str = "r", *, what: str = "HDF5 file"):
    """``h5py.File(path, mode)`` with one-line errors that name the file and ``what``."""
    import h5py

    p = Path(path)
    if mode == "r" and not p.is_file():
        raise FileNotFoundError(f"{what} {p} not found")
    try:
        return h5py.File(p, mode)
    except OSError as exc:
        msg = str(exc).split("(", 1)[-1].rstrip(")") if "(" in str(exc) else str(exc)
        raise ConfigError(f"{p}: not a readable HDF5 file ({msg}); expected a {what}") from None


def _tmp_beside(p: Path) -> Path:
    import tempfile

    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)                 # mkstemp makes 0600; an output is a normal file
    return Path(tmp)


@contextlib.contextmanager
def atomic_h5(path: str | Path, *, append: bool = False, timing: dict | None = None):
    """An ``h5py.File`` open on a temporary file in the directory of ``path``; when the block
    ends without an error the file is closed and renamed to ``path`` (``os.replace``), else
    it is removed. ``append=True`` starts from a copy of the existing ``path`` (which must
    exist), so appending never modifies the earlier file in place: a kill (even SIGKILL)
    at any moment leaves ``path`` as it was before, byte for byte. ``timing`` (a dict), if
    given, receives ``copy_s``: the seconds spent copying.

    Yields
    ------
    h5py.File
        Open in mode ``"a"`` (append) or ``"w"``.
    """
    import shutil

    import h5py

    p = Path(path)
    tmp = _tmp_beside(p)
    try:
        if append:
            import time

            t0 = time.perf_counter()
            shutil.copyfile(p, tmp)
            if timing is not None:
                timing["copy_s"] = time.perf_counter() - t0
        with h5py.File(tmp, "a" if append else "w") as f:
            yield f
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


#: Shortest interval (s) between two commits of :class:`H5Checkpoints` (0: every record).
CHECKPOINT_S = 2.0


class H5Checkpoints:
    """Crash-safe, batched appends of a long job's results to an HDF5 file.

    Records given to :meth:`add` are buffered and committed with ``write(h5file, records)``
    through :func:`atomic_h5` (a copy of the file, appended to and renamed over it): when
    ``CHECKPOINT_S`` seconds have passed since the last commit and at least ``1/overhead``
    times the last copy's duration (so the copies of the growing file cost at most
    ``overhead`` of the run's time; writing the records costs what it would in place), on :meth:`commit` and on leaving the ``with`` block (also on
    an exception such as ``KeyboardInterrupt``). A SIGKILL loses at most the uncommitted
    records, never what was committed.

    Parameters
    ----------
    path : path of the HDF5 file
    write : callable ``write(h5py.File, list)`` appending the records (an empty list on a
        commit with nothing pending)
    new : the first commit writes a new file (replacing an existing ``path`` only then, so
        an earlier result stays intact until there is something to replace it with); else
        every commit appends to a copy of the existing ``path``
    interval_s : shortest interval between commits (s); default ``CHECKPOINT_S``
    overhead : largest fraction of the time spent in commits
    """

    def __init__(self, path: str | Path, write, *, new: bool = False,
                 interval_s: float | None = None, overhead: float = 0.05) -> None:
        import time

        self.path = Path(path)
        self._new = new
        self.write = write
        self.interval_s = CHECKPOINT_S if interval_s is None else float(interval_s)
        self.overhead = overhead
        self.pending: list = []
        self.committed = 0
        self.commit_s = 0.0          # total seconds spent committing
        self.n_commits = 0
        self._last = time.perf_counter()
        self._last_cost = 0.0        # seconds of the last commit's copy of the file
        self.copy_s = 0.0            # total seconds spent copying

    def add(self, *records) -> None:
        """Buffer ``records``; commit when due."""
        import time

        self.pending.extend(records)
        raise_if_interrupted()       # a Ctrl-C swallowed by a library: stop here
        wait = max(self.interval_s, self._last_cost / self.overhead if self.overhead else 0.0)
        if time.perf_counter() - self._last >= wait:
            self.commit()

    def commit(self, always: bool = False) -> int:
        """Write the buffered records now (``always``: even when none are pending); returns
        the number of records committed so far."""
        import time

        if self.pending or always:
            t0 = time.perf_counter()
            timing = {"copy_s": 0.0}
            with atomic_h5(self.path, append=not self._new, timing=timing) as f:
                self.write(f, self.pending)
            self._new = False
            self.n_commits += 1
            self.committed += len(self.pending)
            self.pending = []
            self._last_cost = timing["copy_s"]
            self.copy_s += timing["copy_s"]
            self.commit_s += time.perf_counter() - t0
            self._last = time.perf_counter()
        return self.committed

    def __enter__(self) -> "H5Checkpoints":
        return self

    def __exit__(self, *exc) -> None:
        self.commit()

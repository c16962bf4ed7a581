"""Which folder a run may write to, and one run at a time in it.

A run claims its folder before it writes anything (:func:`claim_run_folder`): a new or empty
folder, or one of this app's run folders, never a folder of the user's files; a run that cannot
start gives back what it claimed (:func:`release_run_folder`). While it writes it holds the folder's lock
(:func:`run_folder_lock`), so that a second run into the same folder, from the command line or the
app, is refused with a message naming the first.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from semclust.core.runfolder.artefacts import MARKER, RunFolderError, RunPaths, write_json

try:  # POSIX: the run folder's lock is held with flock
    import fcntl
except ImportError:  # Windows
    fcntl = None

#: Held by the run writing into a run folder (``{"pid", "host", "since"}``), removed when it ends.
LOCK = ".semclust-run.lock"
#: Files an operating system leaves in any folder: they do not make a folder the user's.
_LITTER = {".DS_Store", "Thumbs.db", "desktop.ini", MARKER, LOCK}


def claim_run_folder(paths: RunPaths) -> str:
    """Makes ``paths.root`` this app's run folder, or refuses it before anything is written.

    A new folder is created, an empty one taken, a run folder (with the marker, or a ``config.json``
    written by a run of an older version) reused; any other folder holds the user's files and is refused.

    Returns:
        ``"created"``, ``"marked"`` (an empty or older run folder, marker added) or ``"owned"``: what
        :func:`release_run_folder` must undo when the run cannot start.

    Raises:
        RunFolderError: the path is not a folder, or a folder of other files.
    """
    root = paths.root
    if root.exists() and not root.is_dir():
        raise RunFolderError(f"{root} is a file, not a folder; choose a folder for the run.")
    if paths.marker.is_file():
        return "owned"
    try:
        root.mkdir(parents=True)
        how = "created"
    except FileExistsError:  # there already, or made this moment by a run started at once
        if paths.marker.is_file():
            return "owned"
        if not (all(_litter(entry.name) for entry in root.iterdir()) or _older_run(paths)):
            raise RunFolderError(
                f"{root} already holds files and is not a semclust run folder; choose a new or "
                "empty folder for the run (nothing was written)."
            ) from None
        how = "marked"
    write_json(paths.marker, {"app": "semclust", "purpose": "run folder"})
    return how


def _litter(name: str) -> bool:
    """A file that does not make a folder the user's: the system's, or the temporary of a marker
    whose write was killed (a run killed as it claimed the folder is resumed, not refused)."""
    return name in _LITTER or name.startswith(f".{MARKER}.")


@contextlib.contextmanager
def run_folder_lock(paths: RunPaths) -> Iterator[None]:
    """Holds the run folder's lock while a run writes into it: a second run into a folder in use, from
    the command line or the app, is refused with a message naming the holder; the lock of a process
    that died on this machine is taken over.

    Where the system has ``fcntl`` (Linux, macOS) the lock file is also held with ``flock``, which the
    kernel lets go when its process ends, even killed: of two runs taking over the same dead
    process's lock at the same moment, only one gets it. Elsewhere the holder's process id decides.

    Raises:
        RunFolderError: another live process holds the lock (or it cannot be made).
    """
    lock = paths.root / LOCK
    me = {"pid": os.getpid(), "host": platform.node(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    if fcntl is None:
        with _pid_lock(paths, lock, me):
            yield
        return
    fd = _flock(paths, lock)
    try:
        holder = _lock_holder(lock)
        if holder is not None and holder.get("pid") != me["pid"] and not _stale(holder):
            # a live holder that does not flock (a version without it, another machine's)
            raise _in_use(paths, holder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)  # still ours: nobody else can hold the flock meanwhile
    finally:
        os.close(fd)  # lets go of the flock


def _flock(paths: RunPaths, lock: Path) -> int:
    """An open descriptor of the lock file that holds its ``flock``; the file at ``lock`` is the one
    locked (one unlinked by its previous holder meanwhile is opened again)."""
    for _ in range(50):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise RunFolderError(f"Cannot write into the run folder {paths.root}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a live process
            os.close(fd)
            raise _in_use(paths, _written_holder(lock) or {}) from None
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder before us removed that file as we locked it: again
    raise RunFolderError(f"{paths.root} is in use by another run; choose another run folder.")


def _in_use(paths: RunPaths, holder: dict) -> RunFolderError:
    return RunFolderError(
        f"{paths.root} is in use by another run (process {holder.get('pid', '?')} on "
        f"{holder.get('host', '?')}, since {holder.get('since', '?')}): wait for it to finish, or "
        "choose another run folder."
    )


@contextlib.contextmanager
def _pid_lock(paths: RunPaths, lock: Path, me: dict) -> Iterator[None]:
    """The lock where ``flock`` is missing: a file made exclusively, holding its process's id."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _written_holder(lock)
            if holder is not None and not _stale(holder):
                raise _in_use(paths, holder) from None
            lock.unlink(missing_ok=True)  # a dead process's lock (or an unreadable one): taken over
            continue
        except OSError as exc:
            raise RunFolderError(f"Cannot write into the run folder {paths.root}: {exc}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        break
    else:
        raise RunFolderError(f"{paths.root} is in use by another run; choose another run folder.")
    try:
        yield
    finally:
        if _lock_holder(lock) == me:
            lock.unlink(missing_ok=True)


def _written_holder(lock: Path) -> dict | None:
    """The lock's holder, waiting up to 1 s for a lock made this moment to hold its record."""
    for _ in range(20):
        holder = _lock_holder(lock)
        if holder is not None:
            return holder
        time.sleep(0.05)
    return _lock_holder(lock)


def _lock_holder(lock: Path) -> dict | None:
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _stale(holder: dict) -> bool:
    """A lock of a process that no longer runs on this machine (another machine's is kept)."""
    pid = holder.get("pid")
    if holder.get("host") != platform.node() or not isinstance(pid, int):
        return False
    return not process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, another user's
        return True
    return True


def release_run_folder(paths: RunPaths, how: str) -> None:
    """Undoes :func:`claim_run_folder` for a run that could not start: only what it made goes."""
    if how == "created":
        shutil.rmtree(paths.root, ignore_errors=True)
    elif how == "marked":
        paths.marker.unlink(missing_ok=True)


def _older_run(paths: RunPaths) -> bool:
    """A run folder written before the marker existed: its config.json records the image folder."""
    try:
        meta = json.loads(paths.config.read_text(encoding="utf-8")).get("_meta")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("image_folder"), str)

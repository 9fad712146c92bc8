"""Atomic file writes and JSON helpers shared by checkpoints, logs and results; checks that
an output location can be written, and the lock that keeps two runs off one output."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the file onto ``path`` in one rename.

    A reader (or a resumed run after a kill) sees either the old file or the new one,
    never a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600: follow the umask
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, naming the file in the error when it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON record as a line and flush it to disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_folder(folder: str | os.PathLike, *, what: str = "output folder") -> None:
    """ValueError unless files can be created in ``folder`` (or, when it does not exist yet,
    the folders leading to it can be made): checked before any work, nothing is left behind."""
    folder = Path(folder)
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise ValueError(f"cannot write the {what} {folder}: {base} is a file, not a folder")
    problem = None
    if not os.access(base, os.W_OK | os.X_OK):
        problem = "permission denied"
    else:
        try:
            fd, probe = tempfile.mkstemp(prefix=".lpbench-probe.", dir=base)
        except OSError as err:
            problem = err.strerror or str(err)
        else:
            os.close(fd)
            os.unlink(probe)
    if problem is not None:
        where = "" if base == Path(os.path.abspath(folder)) else f" (in {base})"
        raise ValueError(f"cannot write the {what} {folder}{where}: {problem}")


def check_output_file(path: str | os.PathLike, *, flag: str = "--out") -> None:
    """ValueError unless ``path`` can be written as a file: not a folder, in a writable one."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{flag} {path} is a folder; give a file name, e.g. {flag} {path / 'results.json'}"
        )
    check_writable_folder(path.parent, what=f"folder of {flag} {path}")


class LockedError(FileExistsError):
    """Another live process holds an output's lock."""


def _holder(handle: Any) -> str:
    handle.seek(0)
    text = handle.read().strip()
    try:
        facts = json.loads(text)
        return f"pid {facts['pid']} on {facts['host']}, since {facts['since']}"
    except (ValueError, KeyError, TypeError):
        return "a process that left no pid"


@contextmanager
def output_lock(path: str | os.PathLike, *, what: str) -> Iterator[Path]:
    """Hold an exclusive lock on the file ``path`` (``PATH`` holds the holder's pid, host and
    start) for the ``with`` block; LockedError naming the live holder when another process
    holds it. The lock is the kernel's (``flock``): a killed holder's lock is free at once,
    so there are no stale locks to take over. The file (and folders made for it) are
    removed on the way out."""
    path = Path(path)
    made = []
    parent = path.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+")  # noqa: SIM115 - kept open for the lock's life
        if fcntl is None:  # pragma: no cover
            break
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(handle)
            handle.close()
            _remove_empty(made)
            raise LockedError(
                f"{what} is in use by another lpbench run ({holder}); wait for it to "
                "finish or stop it"
            ) from None
        try:  # the holder before us may have removed the file between our open and lock
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        facts = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(facts) + "\n")
        handle.flush()
        yield path
    finally:
        path.unlink(missing_ok=True)
        handle.close()
        _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders made for a lock, innermost first, where they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return

"""Small file helpers shared by masks, checkpoints and reports."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".tmp-"
LOCK_FILE = ".lock"


def file_mode() -> int:
    """The mode a new file gets from ``open(path, "w")`` under the process's umask (0o644 under umask 022)."""
    umask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    A crash at any point leaves either the old file or the new one, never a half-written file. The file
    gets the mode of any new file of the user (``file_mode()``), whatever ``write`` did to it, so every file
    of a run (JSON, safetensors, PNG, Markdown) has the same mode.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.basename(path), dir=folder)
    os.close(fd)
    try:
        write(tmp)
        # after the write: mkstemp makes owner-only files, and some writers (safetensors' save_file) replace
        # the file with their own 0600 one; results should be as readable as any file the user creates
        os.chmod(tmp, file_mode())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON atomically."""
    import json

    text = json.dumps(obj, indent=2, sort_keys=False)

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text + "\n")

    atomic_write(path, write)


def remove_temp_files(*folders: str | os.PathLike) -> None:
    """Remove the temp files a killed ``atomic_write`` left in ``folders`` (call it while holding
    ``directory_lock``: another writer's temp files are in flight)."""
    for folder in folders:
        for tmp in Path(folder).glob(TEMP_PREFIX + "*"):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def directory_lock(path: str | os.PathLike, *, busy: str, error: type[Exception] = RuntimeError) -> Iterator[None]:
    """An advisory lock (flock on ``path/.lock``) on a directory, created if missing: two processes must not write
    one result directory at once. The kernel drops it when the process dies, so a killed writer never leaves the
    directory locked. Raises ``error`` (the caller's error type) when ``path`` is a file, and ``error(busy)`` when
    another process holds the lock. When the block raises (a refused start), what this call created is removed:
    the lock file, and the directory if it is left empty, so a refusal leaves the user's folder as it was."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise error(f"output path {path} exists and is not a directory; choose a directory")
    created_dir = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield
        return
    lock_file = path / LOCK_FILE
    created_lock = not lock_file.exists()
    with open(lock_file, "a") as handle:  # "a": never truncates, so the file is left untouched
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise error(busy) from None
        try:
            current = os.stat(lock_file).st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(handle.fileno()).st_ino:  # a refused writer unlinked the file we opened
            fcntl.flock(handle, fcntl.LOCK_UN)
            raise error(busy)
        try:
            yield
        except BaseException:
            if created_lock:  # unlinked while held, so no other writer can hold this inode's lock next
                lock_file.unlink(missing_ok=True)
                if created_dir and not any(path.iterdir()):
                    path.rmdir()
            raise
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

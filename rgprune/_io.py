"""Small file helpers shared by masks, checkpoints and reports."""
from __future__ import annotations

import os
import tempfile


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
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
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

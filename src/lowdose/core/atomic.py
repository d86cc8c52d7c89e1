"""Atomic file writes: a temporary file in the target's folder, fsync, then rename.

A killed process leaves either the old file or the new one under the final name, never half of
one. On an error (a full disk, a read-only folder, an exception of the caller) nothing new is left
behind: the temporary file (``.<name>.<random>.tmp``) is removed, and so are the folders the write
created for it if they are still empty; the ``OSError`` is re-raised naming the final path, not the
temporary one, so the command line can say which output could not be written.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``.

    Parameters
    ----------
    path
        Final destination. Its parent folder is created if missing (and removed again, if still
        empty, when the write fails).

    Yields
    ------
    pathlib.Path
        Where the caller writes the complete file (any library: h5py, torch.save, pandas).

    Raises
    ------
    OSError
        Whatever creating the folder, writing or renaming raised (``ENOSPC``, ``EACCES`` ...),
        with ``filename`` set to ``path`` where it named the temporary file or nothing.
    """
    final = Path(path)
    created = _missing_folders(final.parent)
    tmp: Path | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        # mkstemp creates 0600; give the final file the mode a plain open() would (umask).
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException as exc:
        if tmp is not None:
            _remove_temporary(tmp)
        _remove_if_empty(created)
        if isinstance(exc, OSError):
            _name_the_target(exc, final)
        raise
    _fsync_dir(final.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # The rename itself lives in the directory entry; fsync it so it survives a power cut.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_temporary(tmp: Path) -> None:
    # Also files a writer staged under the temporary name plus a suffix (nibabel picks its format
    # from the suffix: ``.<name>.<random>.tmp.nii.gz``), which a failed write can leave behind.
    for path in (tmp, *tmp.parent.glob(glob.escape(tmp.name) + ".*")):
        path.unlink(missing_ok=True)


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    # Deepest first; rmdir refuses a folder that holds anything, e.g. another writer's file.
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _name_the_target(exc: OSError, final: Path) -> None:
    # The temporary name means nothing to a user; the error is about the file they asked for.
    # (mkstemp and os.replace name the temporary file; a write that fills the disk names none.)
    temporary = exc.filename is None or Path(exc.filename).name.startswith(f".{final.name}.")
    if exc.errno is not None and temporary:
        exc.filename, exc.filename2 = str(final), None

"""The SHA-256 of a file's bytes: one home for every hash lowdose takes of a whole file.

Stage caches key on checkpoint hashes (:mod:`lowdose.pipeline.cache`) and BioImage packages list
the hash of every file (:mod:`lowdose.models.bioimageio_export`); both read files that can be
larger than memory should hold, so the bytes are read in blocks.
"""

from __future__ import annotations

import hashlib
import os

BLOCK_BYTES = 1 << 20
"""Bytes read at a time (1 MiB)."""


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the bytes of the file at ``path``, as 64 lower-case hex digits.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "empty"
    ...     _ = path.write_bytes(b"")
    ...     file_sha256(path)[:16]
    'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()

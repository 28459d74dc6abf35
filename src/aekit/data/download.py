"""Verified downloads: stream to a temp file next to the target, check SHA-256, then rename."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from aekit.errors import ChecksumError, DataFileError

__all__ = ["download_file", "is_offline", "sha256_of"]

logger = logging.getLogger(__name__)
_CHUNK = 1 << 20


def is_offline() -> bool:
    """True when ``AEKIT_OFFLINE`` is set to 1/true/yes/on: aekit then never downloads."""
    return os.environ.get("AEKIT_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download_file(
    url: str, dest: str | os.PathLike, *, sha256: str | None, timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``dest``, verifying its SHA-256 before it appears there.

    The bytes go to a temporary file in ``dest``'s folder, which is renamed onto ``dest``
    only after the checksum matches; on any failure the temporary file is removed, so a
    half-downloaded or wrong file is never left behind.

    Parameters
    ----------
    url : str
        Source address.
    dest : str or path-like
        Final file path; its folder is created if needed.
    sha256 : str or None
        Expected hex digest; None skips the check (the caller must then validate content).
    timeout : float, default=60.0
        Socket timeout in seconds.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    ChecksumError
        The downloaded bytes do not have the expected SHA-256.
    DataFileError
        The download failed (network error, HTTP error, disk full).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    logger.info("downloading %s -> %s", url, dest)
    try:
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                while chunk := r.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DataFileError(f"could not download {url}: {reason}") from exc
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise ChecksumError(
                f"{url} does not have the expected SHA-256 (expected {sha256}, got {got}); "
                f"the file was discarded. The mirror may be serving a different or damaged "
                f"file: try again later or use another mirror"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest

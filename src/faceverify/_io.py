"""Reading a file an outsider may have named: regular files only, bounded."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ._errors import FaceVerifyError, InvalidInputError

_CHUNK = 1024 * 1024


def read_regular_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int,
    what: str = "the file",
    error: type[FaceVerifyError] = InvalidInputError,
    too_large: type[FaceVerifyError] = InvalidInputError,
) -> bytes:
    """A regular file's bytes, at most ``max_bytes``; ``error`` for anything else.

    What ``stat`` says of a device or a pipe is not trusted: ``/dev/zero``, a
    FIFO (which blocks until a writer comes), a socket or a directory is refused
    before it is read; the open is non-blocking, so a FIFO swapped in after a
    check cannot hang it either; and the read stops one byte past the limit,
    whatever size the file claims.
    """
    name = _name(path, what)
    fd = _open_regular(path, name, max_bytes, error, too_large)
    try:
        chunks, left = [], max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, _CHUNK))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise error(f"{name} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise too_large(f"{name} is more than {max_bytes} bytes; the limit is {max_bytes}")
    return data


def check_regular_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int,
    what: str = "the file",
    error: type[FaceVerifyError] = InvalidInputError,
    too_large: type[FaceVerifyError] = InvalidInputError,
) -> None:
    """What ``read_regular_file`` would refuse before reading, without reading: for failing fast."""
    os.close(_open_regular(path, _name(path, what), max_bytes, error, too_large))


def _name(path: str | os.PathLike[str], what: str) -> str:
    return f"{what} '{Path(path)}'" if what else f"'{Path(path)}'"


def _open_regular(
    path: str | os.PathLike[str],
    name: str,
    max_bytes: int,
    error: type[FaceVerifyError],
    too_large: type[FaceVerifyError],
) -> int:
    if "\x00" in os.fspath(path):
        raise error("a path cannot contain a NUL character")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{name} does not exist") from None
    except OSError as exc:
        raise error(f"{name} cannot be read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{name} is a directory; give a file")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{name} is not a regular file (a device, FIFO or socket); give a file")
        if info.st_size > max_bytes:
            raise too_large(f"{name} is {info.st_size} bytes; the limit is {max_bytes}")
    except BaseException:
        os.close(fd)
        raise
    return fd

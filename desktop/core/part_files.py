"""The ``.part`` file a download writes into: opened locked (one writer, even across NoMoat
windows), the bytes already there fed to the hash when it goes on, and the check that the
server's answer to a Range request starts where the file does."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, BinaryIO

from desktop.core.download_types import PART, AlreadyDownloading


class locked_part:
    """Open a .part file for appending, locked so no other download writes into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        self.handle = open(self.path, "a+b", buffering=0)
        try:
            lock_file(self.handle)
        except OSError:
            self.handle.close()
            raise AlreadyDownloading(f"{self.path.name[:-len(PART)]} is already being "
                                     "downloaded (maybe by another NoMoat window).") from None
        return self.handle

    def __exit__(self, *exc: object) -> None:
        assert self.handle is not None
        self.handle.close()


def lock_file(handle: BinaryIO) -> None:
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def hash_prefix(part: BinaryIO, hasher: Any, length: int) -> int:
    """Feed the bytes already on disk to *hasher*; return where the file continues."""
    part.seek(0)
    left = length
    while left:
        block = part.read(min(left, 8 * 1024 * 1024))
        if not block:
            break
        hasher.update(block)
        left -= len(block)
    part.seek(length - left)
    part.truncate()  # anything past the note's idea of the file is not trusted
    return length - left


def continues_at(response: Any, offset: int) -> bool:
    """Whether a response to ``Range: bytes=offset-`` really starts at *offset*."""
    if response.status_code != 206:
        return False
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return match is not None and int(match.group(1)) == offset


def raise_for_status(response: Any) -> None:
    from huggingface_hub import hf_raise_for_status

    hf_raise_for_status(response)

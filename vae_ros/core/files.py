"""Model files are opened only when they are regular files of a bounded size.

A weights.safetensors that is a symlink to /dev/zero or a FIFO once kept a node hashing (or blocked in
open()) forever at start-up, deaf to SIGTERM. Everything vae_ros reads from a model directory goes
through check_regular_file first: stat() never blocks, so a FIFO is refused before anyone opens it.
Symlinks to regular files (colcon --symlink-install) are fine.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from vae_ros.core.errors import DataError, ModelFileError

GiB = 1 << 30
# Generous for these networks (the packaged ones are a few MB), small enough to refuse garbage early.
MAX_WEIGHTS_BYTES = 4 * GiB
MAX_ONNX_BYTES = 2 * GiB  # protobuf's own limit for one ONNX file
MAX_JSON_BYTES = 16 << 20
# The servo head and the dynamics ensemble: a few hundred kB packaged; a file claiming more is not one of ours
# (a 10 GB sparse file with a valid header once took a node past 2 GB within seconds).
MAX_CONTROL_WEIGHTS_BYTES = 256 << 20

# A rosbag2 bag is a folder; of its files only the storage file can stand for it.
BAG_STORAGE_SUFFIXES = (".mcap", ".db3")

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _describe(path: Path, mode: int) -> str:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    if path.is_symlink():
        return f"a link to {os.readlink(path)}, which is {kind}"
    return kind


def check_regular_file(path: str | Path, max_bytes: int) -> int:
    """The size of path, or ModelFileError (naming the file) when it is missing, not a regular file, or
    larger than max_bytes."""
    path = Path(path)
    try:
        info = os.stat(path)  # follows links; never opens (a FIFO would block in open)
    except FileNotFoundError as err:
        raise ModelFileError(f"{path} does not exist") from err
    except OSError as err:
        raise ModelFileError(f"cannot read {path}: {err}") from err
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(f"{path} is {_describe(path, info.st_mode)}, not a regular file; refused")
    if info.st_size > max_bytes:
        raise ModelFileError(f"{path} is {info.st_size} bytes, more than the {max_bytes} bytes allowed for it; "
                             "refused")
    return info.st_size


def sha256_file(path: str | Path, max_bytes: int) -> str:
    """SHA-256 of a regular file of at most max_bytes (checked first, and again while reading)."""
    path = Path(path)
    check_regular_file(path, max_bytes)
    digest = hashlib.sha256()
    read = 0
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                read += len(block)
                if read > max_bytes:
                    raise ModelFileError(f"{path} grew beyond {max_bytes} bytes while being read; refused")
                digest.update(block)
    except OSError as err:
        raise ModelFileError(f"{path} is not readable: {err}") from err
    return digest.hexdigest()


def check_bag_path(path: str | Path) -> None:
    """DataError for a file named as a bag that is not a storage file (metadata.yaml, say): readers would
    report an unknown format, and `vae-ros repair` on it found nothing wrong."""
    path = Path(path)
    if path.is_file() and path.suffix not in BAG_STORAGE_SUFFIXES:
        raise DataError(f"{path} is not a bag: pass the bag folder ({path.parent}) or its .mcap or .db3 file")

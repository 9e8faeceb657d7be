"""Crafted hostile inputs shared by the tests (issue: hostile input costs bounded time and memory)."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds a few bytes of pixel data: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def safetensors_claiming(path: Path, tensors: dict[str, tuple[str, list[int]]], fill: bool = False) -> Path:
    """A safetensors file whose header is valid and declares `tensors` ({name: (dtype, shape)}); the data
    section is a hole of the declared size (sparse: `truncate`, no disk used) unless fill writes zeros.
    What a 10 GB 'servo head' or a dynamics file with an extra 10 GB tensor looks like."""
    widths = {"F32": 4, "F16": 2, "U8": 1}
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * widths[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        if fill:
            handle.write(b"\0" * offset)
        else:
            handle.truncate(8 + len(text) + offset)
    return path


def nested_json(depth: int) -> str:
    """A JSON object nested `depth` levels deep: json.loads raises RecursionError on it."""
    return '{"a": ' * depth + "0" + "}" * depth


def sparse_file(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of `size` bytes that starts with `head` and is a hole after it (no disk used)."""
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """Make `folder` refuse new entries, for root as well: chmod 555 stops other users, `chattr +i` root
    (skips the test where the file system has no immutable flag)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root and `chattr +i` is not available here: cannot make a folder unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)

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


MCAP_MAGIC = b"\x89MCAP0\r\n"


def mcap_record(opcode: int, body: bytes) -> bytes:
    return struct.pack("<BQ", opcode, len(body)) + body


def mcap_chunk(records: bytes, declared: int, compression: str = "zstd") -> bytes:
    """An MCAP chunk record around already compressed `records` that declares `declared` bytes of records."""
    name = compression.encode()
    return mcap_record(0x06, struct.pack("<QQQII", 0, 0, declared, 0, len(name)) + name
                       + struct.pack("<Q", len(records)) + records)


def zstd_bomb(size: int) -> bytes:
    """A zstd frame of `size` zero bytes (3 GB -> about 96 KB), whose header declares its size."""
    import zstandard

    compressor = zstandard.ZstdCompressor(level=1).compressobj(size=size)
    block = bytes(1 << 24)
    parts = [compressor.compress(block[:min(len(block), size - done)]) for done in range(0, size, len(block))]
    return b"".join(parts) + compressor.flush()


def killed_recording(folder: Path, messages: int = 20) -> Path:
    """A bag as a recorder killed after its last flush leaves it: metadata.yaml and an MCAP file whose whole
    chunks are on disk, with neither summary nor footer. Returns the .mcap file."""
    import shutil

    from rclpy.serialization import serialize_message
    from std_msgs.msg import Float32MultiArray

    from vae_ros.ros.bagio import BagWriter, reliable_qos

    source = folder.parent / f".{folder.name}.writing" / folder.name  # the same name, for the same file names
    with BagWriter(source) as bag:
        bag.add_topic("/vae/latent", "std_msgs/msg/Float32MultiArray", reliable_qos())
        for seq in range(messages):
            bag.write("/vae/latent", 10**9 + seq * 10**8, serialize_message(Float32MultiArray(data=[float(seq)])))
        bag.flush()  # what a recorder does once a second
        folder.mkdir()
        for path in source.iterdir():  # the state a SIGKILL right now would leave
            shutil.copy(path, folder / path.name)
    shutil.rmtree(source.parent)
    return next(folder.glob("*.mcap"))

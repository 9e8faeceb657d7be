"""Issue 21 §3: `vae-ros repair` on files that are not (all) bags: one clear line, bounded time and memory,
and a file that holds nothing of a bag is left as it is.

Before: random bytes named .mcap exited 0 saying "rebuilt" (the original renamed .damaged, an empty bag
written in its place); a 92 KB bag whose zstd chunk expands to 3 GB passed 2 GB in 1.7 s; a named pipe, or a
10 GB sparse file with the MCAP magic, ran for over 120 s; `--bag run/metadata.yaml` suggested repairing the
yaml file, which repair then called complete. Each case runs the real CLI in its own process, measured alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile_inputs import (
    MCAP_MAGIC,
    killed_recording,
    mcap_chunk,
    mcap_record,
    sparse_file,
    zstd_bomb,
)
from probe import split_peak_rss, with_peak_rss

REPO = Path(__file__).resolve().parents[2]
THREE_GB = 3 << 30


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    peak_mb: float
    seconds: float

    def line(self) -> str:
        """The one line of stderr (a traceback or several lines fail the test)."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in self.err, self.err
        return lines[0]


def repair(*args: str, timeout: float = 60.0) -> Outcome:
    """`vae-ros repair ARGS` in its own process; its own peak memory (test/peak_rss.py)."""
    started = time.monotonic()
    with open(os.devnull, "rb") as stdin:
        proc = subprocess.Popen(with_peak_rss([sys.executable, "-m", "vae_ros.apps.cli", "repair", *args]), cwd=REPO,
                                stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    del usage  # the launcher's, which carries this test process's high-water mark (test/peak_rss.py)
    err, peak_mb = split_peak_rss(err)
    return Outcome(proc.returncode, out, err, peak_mb, time.monotonic() - started)


def _readable(folder: Path) -> int:
    """Messages rosbags reads from the bag (it refuses a bag without footer or metadata)."""
    from rosbags.rosbag2 import Reader

    with Reader(folder) as reader:
        return sum(1 for _ in reader.messages())


def test_random_bytes_named_mcap_are_refused_and_left_as_they_are(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    noise = os.urandom(64 << 10)
    (bag / "bag.mcap").write_bytes(noise)
    result = repair(str(bag))
    assert result.code == 2
    assert result.line() == (f"vae-ros repair: error: nothing of {bag / 'bag.mcap'} is an MCAP bag (it does not "
                             "start with the MCAP magic and header); the file was left as it is")
    assert sorted(p.name for p in bag.iterdir()) == ["bag.mcap"] and (bag / "bag.mcap").read_bytes() == noise


def test_a_killed_recording_is_still_rebuilt(tmp_path: Path) -> None:
    mcap = killed_recording(tmp_path / "bag", messages=20)
    result = repair(str(tmp_path / "bag"))
    assert result.code == 0, result.err
    assert "rebuilt bag.mcap" in result.out and "20 messages on 1 topic(s)" in result.out
    assert _readable(mcap.parent) == 20 and (mcap.parent / "bag.mcap.damaged").is_file()


@pytest.mark.parametrize("declared, words", [
    (THREE_GB, f"a chunk declares {THREE_GB} bytes of records, more than the 134217728 this tool reads"),
    (1 << 20, "a chunk declares 1048576 bytes of records but holds more"),  # the frame says 3 GB, the chunk 1 MB
])
def test_a_decompression_bomb_chunk_is_not_expanded(tmp_path: Path, declared: int, words: str) -> None:
    mcap = killed_recording(tmp_path / "bag", messages=20)
    with open(mcap, "ab") as handle:  # a 96 KB chunk of zstd that expands to 3 GB, after the good ones
        handle.write(mcap_chunk(zstd_bomb(THREE_GB), declared))
    assert mcap.stat().st_size < 200_000
    result = repair(str(tmp_path / "bag"))
    assert result.code == 0, result.err
    assert words in result.out and "20 messages on 1 topic(s)" in result.out
    assert result.peak_mb < 400 and result.seconds < 30, (result.peak_mb, result.seconds)
    assert _readable(mcap.parent) == 20


def test_a_recording_followed_by_10_gb_of_zeros_stops_at_the_zeros(tmp_path: Path) -> None:
    mcap = killed_recording(tmp_path / "bag", messages=20)
    sparse_file_size = mcap.stat().st_size + (10 << 30)
    with open(mcap, "r+b") as handle:
        handle.truncate(sparse_file_size)
    result = repair(str(tmp_path / "bag"), timeout=60)
    assert result.code == 0, result.err
    assert "does not start an MCAP record (opcode 0x00)" in result.out and "20 messages" in result.out
    assert result.seconds < 30 and result.peak_mb < 400, (result.seconds, result.peak_mb)


def test_a_10_gb_sparse_file_with_the_mcap_magic_is_refused_at_once(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    sparse_file(bag / "bag.mcap", 10 << 30, head=MCAP_MAGIC)
    result = repair(str(bag / "bag.mcap"), timeout=60)
    assert result.code == 2 and result.seconds < 30, (result.code, result.seconds)
    assert "nothing of" in result.line() and "is an MCAP bag" in result.line()
    assert sorted(p.name for p in bag.iterdir()) == ["bag.mcap"] and (bag / "bag.mcap").stat().st_size == 10 << 30


def test_an_mcap_header_and_nothing_else_usable_is_left_as_it_is(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    header = mcap_record(0x01, b"\x04\0\0\0ros2\x00\0\0\0")
    (bag / "bag.mcap").write_bytes(MCAP_MAGIC + header + os.urandom(4096))
    result = repair(str(bag))
    assert result.code == 2 and "nothing of" in result.line() and "could be recovered" in result.line()
    assert sorted(p.name for p in bag.iterdir()) == ["bag.mcap"]


def test_a_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    os.mkfifo(bag / "bag.mcap")
    result = repair(str(bag), timeout=60)
    assert result.code == 2 and result.seconds < 30
    assert result.line() == (f"vae-ros repair: error: cannot repair: {bag / 'bag.mcap'} is a FIFO (named pipe), not "
                             "a regular file; refused")


def test_metadata_yaml_given_as_the_bag_names_the_folder_to_pass(tmp_path: Path) -> None:
    mcap = killed_recording(tmp_path / "run1", messages=3)
    yaml = mcap.parent / "metadata.yaml"
    result = repair(str(yaml))
    assert result.code == 2
    assert result.line() == (f"vae-ros repair: error: {yaml} is not a bag: pass the bag folder ({mcap.parent}) or "
                             "its .mcap or .db3 file")
    from vae_ros.apps.cli import main

    code = main(["train", "--bag", str(yaml), "--topic", "/vae/latent", "--out", str(tmp_path / "m")])
    assert code == 2 and not (tmp_path / "m").exists()

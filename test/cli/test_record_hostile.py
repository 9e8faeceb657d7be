"""Issue 21 §3: `vae-ros record` on an --out it cannot write, in real processes.

Before: an --out name over 255 characters was an OSError traceback; an unwritable --out was noticed only
once a publisher appeared; a folder made unwritable while recording ended in a PermissionError traceback
at close, though the data was intact. Now the first two are one line at start, and the last records on and
ends with one line that says where the messages are (and `vae-ros repair` makes the bag whole).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ros_env
from hostile_inputs import unwritable
from probe import stop_processes
from test_record import PUBLISHER, _read_bag, _wait_for_line

pytestmark = pytest.mark.ros


def record(out: Path, *topics: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", "record", "--out", str(out), "--duration", "30",
                             *topics], env=ros_env.ros_env(), capture_output=True, text=True, timeout=90)
    return result, time.monotonic() - started


def test_an_out_name_too_long_is_one_line_at_start(tmp_path: Path) -> None:
    out = tmp_path / ("b" * 300)
    result, seconds = record(out, "cmd_vel")
    assert result.returncode == 2 and seconds < 25, (result.returncode, seconds)
    assert result.stderr.strip() == f"vae-ros record: error: cannot create the bag folder --out {out}: File name too long"


def test_an_unwritable_out_is_one_line_at_start_not_when_a_publisher_appears(tmp_path: Path) -> None:
    parent = tmp_path / "read_only"
    parent.mkdir()
    with unwritable(parent):
        result, seconds = record(parent / "sub" / "bag", "nobody/publishes/this")
    assert result.returncode == 2 and seconds < 25, (result.returncode, seconds)
    line = result.stderr.strip()
    assert line.startswith(f"vae-ros record: error: cannot create the bag folder --out {parent / 'sub' / 'bag'}: ")
    assert line.endswith(("Permission denied", "Operation not permitted")) and "\n" not in line
    assert list(parent.iterdir()) == []


def test_a_folder_made_unwritable_while_recording_ends_in_one_line_that_says_where_the_data_is(
        tmp_path: Path) -> None:
    count, out = 40, tmp_path / "bag"
    env = ros_env.ros_env()
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(count)], env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    recorder = subprocess.Popen([sys.executable, "-m", "vae_ros.apps.cli", "record", "--out", str(out), "vae/latent",
                                 "/cmd_vel"], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    recorder_lines: list[str] = []
    try:
        publisher_lines: list[str] = []
        _wait_for_line(recorder.stderr, ["/vae/latent: matched", "/cmd_vel: matched"], 60, recorder_lines)
        _wait_for_line(publisher.stdout, "matched", 30, publisher_lines)
        publisher.stdin.write("go\n")  # type: ignore[union-attr]
        publisher.stdin.flush()  # type: ignore[union-attr]
        _wait_for_line(publisher.stdout, "done", 30, publisher_lines)
        with unwritable(out):
            # The once-a-second flush cannot rewrite metadata.yaml now: said, and the recording goes on.
            _wait_for_line(recorder.stderr, "still recording", 30, recorder_lines)
            assert recorder.poll() is None
            recorder.send_signal(signal.SIGINT)
            stdout, rest = recorder.communicate(timeout=30)
    finally:
        stop_processes((recorder, publisher), signal.SIGKILL)
    stderr = "".join(recorder_lines) + rest
    assert recorder.returncode == 2 and "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0] == stderr.strip().splitlines()[-1], stderr
    assert errors[0].startswith(f"vae-ros record: error: cannot finish the bag {out} (")
    assert errors[0].endswith(f"the messages written so far are in {out / 'bag.mcap'}: make {out} writable and "
                              f"run `vae-ros repair {out}`")
    repaired = subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", "repair", str(out)], capture_output=True,
                              text=True, timeout=60)
    assert repaired.returncode == 0, repaired.stderr
    bag = _read_bag(out)
    assert [float(m.data[0]) for m in bag["/vae/latent"][1]] == [float(i) for i in range(count)]
    assert [m.linear.x for m in bag["/cmd_vel"][1]] == [float(i) for i in range(count)]

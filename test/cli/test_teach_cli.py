"""`vae-ros teach` end to end on real bags, and the route folder it writes (vae_ros.ros.route_file).

Bags are written with BagWriter from messages built with rosbags' ROS 2 typestore: stamped latents
(sensor_msgs/Image 32FC1) at 10 Hz and nav_msgs/Odometry at 20 Hz of a robot driving an L (2 m along x, a
quarter turn, 1.5 m along y). The route must be a bag that rosbags reads, load back exactly, and every refusal
must be one line with exit status 2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vae_ros.apps.cli import main
from vae_ros.control.runtime.route import ROUTE_FORMAT_VERSION, teach_route
from vae_ros.core.errors import DataError
from vae_ros.ros.bagio import BagWriter
from vae_ros.ros.route_file import ROUTE_LATENT_TOPIC, ROUTE_POSE_TOPIC, load_route, ros2_typestore

STORE = ros2_typestore()
T0_NS = 1_700_000_000 * 10**9  # header stamps: the sensors' clock
RECEIVE_DELAY_NS = 37_000_000  # bag time = receive time, later than the header stamp (teach must use the header)


def control_latent_dim() -> int:
    from vae_ros.core.backends import load_config
    from vae_ros.resources import default_model_dir

    return int(load_config(default_model_dir("control")).latent_dim)


D = control_latent_dim()


def l_pose(t: float) -> tuple[float, float, float]:
    """The L at time t s: 2 m along +x at 0.2 m/s, a quarter turn at 0.5 rad/s, 1.5 m along +y, then still."""
    turn_s = (math.pi / 2) / 0.5
    if t < 10.0:
        return 0.2 * t, 0.0, 0.0
    if t < 10.0 + turn_s:
        return 2.0, 0.0, 0.5 * (t - 10.0)
    return 2.0, min(0.2 * (t - 10.0 - turn_s), 1.5), math.pi / 2


def latent_of(t: float, dim: int) -> np.ndarray:
    x, y, yaw = l_pose(t)
    return (np.sin(np.arange(1, dim + 1) * (x + 2 * y) + yaw) + 0.01 * t).astype(np.float32)


def _header(stamp_ns: int, frame: str) -> Any:
    time = STORE.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return STORE.types["std_msgs/msg/Header"](stamp=time, frame_id=frame)


def image_latent(stamp_ns: int, rows: np.ndarray, encoding: str = "32FC1") -> bytes:
    rows = np.asarray(rows, dtype="<f4").reshape(-1, rows.shape[-1])
    msg = STORE.types["sensor_msgs/msg/Image"](
        header=_header(stamp_ns, "lidar_link"), height=rows.shape[0], width=rows.shape[1], encoding=encoding,
        is_bigendian=0, step=4 * rows.shape[1], data=np.frombuffer(rows.tobytes(), np.uint8))
    return bytes(STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def odometry(stamp_ns: int, pose: tuple[float, float, float]) -> bytes:
    types = STORE.types
    vec = types["geometry_msgs/msg/Vector3"]
    point = types["geometry_msgs/msg/Point"](x=pose[0], y=pose[1], z=0.0)
    quat = types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(pose[2] / 2), w=math.cos(pose[2] / 2))
    msg = types["nav_msgs/msg/Odometry"](
        header=_header(stamp_ns, "odom"), child_frame_id="base_link",
        pose=types["geometry_msgs/msg/PoseWithCovariance"](pose=types["geometry_msgs/msg/Pose"](
            position=point, orientation=quat), covariance=np.zeros(36)),
        twist=types["geometry_msgs/msg/TwistWithCovariance"](twist=types["geometry_msgs/msg/Twist"](
            linear=vec(x=0.0, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=0.0)), covariance=np.zeros(36)))
    return bytes(STORE.serialize_cdr(msg, "nav_msgs/msg/Odometry"))


def write_drive(path: Path, duration: float = 21.0, latent_topic: str | None = "vae/latent_stamped",
                odom_topic: str | None = "odom", dim: Callable[[float], int] = lambda t: D,
                skip: Callable[[float], bool] = lambda t: False, nan: Callable[[float], bool] = lambda t: False,
                pose: Callable[[float], tuple[float, float, float]] = l_pose, logvars: bool = True,
                start: float = 0.0, bad: Callable[[float], bool] = lambda t: False) -> Path:
    """A teach bag from `start` s for `duration` s: latents at 10 Hz (with log-variances) and odometry at 20 Hz;
    bag time = header stamp + a delay."""
    with BagWriter(path) as bag:
        if latent_topic:
            bag.add_topic(latent_topic, "sensor_msgs/msg/Image")
        if odom_topic:
            bag.add_topic(odom_topic, "nav_msgs/msg/Odometry")
        first = int(round(start * 20))
        for k in range(first, first + int(round(duration * 20)) + 1):
            t = k / 20.0
            stamp = T0_NS + k * 50_000_000
            if odom_topic:
                bag.write(odom_topic, stamp + RECEIVE_DELAY_NS, odometry(stamp, pose(t)))
            if latent_topic and k % 2 == 0 and not skip(t):
                mean = latent_of(t, dim(t))
                if nan(t):
                    mean[3] = np.nan
                rows = np.stack([mean, np.full_like(mean, -2.0 - t / 100)]) if logvars else mean[None]
                data = image_latent(stamp, rows, encoding="rgb8" if bad(t) else "32FC1")
                bag.write(latent_topic, stamp + RECEIVE_DELAY_NS, data)
    return path


def teach(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["teach", *args])
    out, err = capsys.readouterr()
    return code, out, err


def expect_refusal(capsys: pytest.CaptureFixture[str], args: list[str], *phrases: str) -> str:
    code, out, err = teach(capsys, *args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vae-ros teach: error: "), err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(the bag, the route taught from it, what teach printed) - NaN latents around t = 5 s included."""
    tmp = tmp_path_factory.mktemp("teach")
    bag = write_drive(tmp / "drive", nan=lambda t: 5.0 <= t < 5.3)
    code = main(["teach", "--bag", str(bag), "--out", str(tmp / "route")])
    assert code == 0
    return bag, tmp / "route", ""


def expected_route(bag: Path) -> Any:
    """The route teach_route makes of what write_drive wrote (NaN rows left out)."""
    t = np.arange(0, 421, 2) / 20.0
    t = t[~((t >= 5.0) & (t < 5.3))]
    stamps = T0_NS + np.rint(t * 20).astype(np.int64) * 50_000_000
    latents = np.stack([latent_of(s, D) for s in t])
    logvars = np.stack([np.full(D, -2.0 - s / 100, np.float32) for s in t])
    odom_t = np.arange(421) / 20.0
    return teach_route(stamps, latents, logvars, T0_NS + np.arange(421) * 50_000_000,
                       np.array([l_pose(s) for s in odom_t]))


def test_a_route_is_a_bag_of_keyframes_that_loads_back_exactly(taught: tuple[Path, Path, str]) -> None:
    from rosbags.highlevel import AnyReader

    bag, route_dir, _ = taught
    expected = expected_route(bag)
    k = len(expected)
    assert 20 <= k <= 26
    with AnyReader([route_dir], default_typestore=STORE) as reader:
        topics = {name: (info.msgtype, info.msgcount) for name, info in reader.topics.items()}
        assert topics == {ROUTE_LATENT_TOPIC: ("sensor_msgs/msg/Image", k),
                          ROUTE_POSE_TOPIC: ("geometry_msgs/msg/PoseStamped", k)}
        for connection, bag_time, data in reader.messages():
            msg = reader.deserialize(data, connection.msgtype)
            assert bag_time == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec  # bag time = stamp
            if connection.topic == ROUTE_POSE_TOPIC:
                assert msg.header.frame_id == "odom"
            else:
                assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == ("32FC1", 2, D, 4 * D, 0)
    route = load_route(route_dir)
    np.testing.assert_array_equal(route.stamps_ns, expected.stamps_ns)
    np.testing.assert_array_equal(route.latents, expected.latents)
    np.testing.assert_array_equal(route.logvars, expected.logvars)
    np.testing.assert_allclose(route.poses, expected.poses, rtol=0, atol=1e-12)
    assert route.meta["keyframes"] == k


def test_route_json_and_png(taught: tuple[Path, Path, str]) -> None:
    from vae_ros.core.backends import weights_digest
    from vae_ros.core.files import sha256_file
    from vae_ros.resources import default_model_dir

    bag, route_dir, _ = taught
    meta = json.loads((route_dir / "route.json").read_text())
    mcap = next(route_dir.glob("*.mcap"))
    assert meta["format"] == ROUTE_FORMAT_VERSION
    assert meta["model_sha256"] == weights_digest(default_model_dir("control"))
    assert meta["latent_dim"] == D and meta["keyframes"] == len(expected_route(bag))
    assert meta["length_m"] == pytest.approx(3.5, abs=0.03)
    assert (meta["spacing_m"], meta["spacing_deg"]) == (0.25, 10.0)
    assert (meta["latent_topic"], meta["odom_topic"]) == ("/vae/latent_stamped", "/odom")
    assert meta["sources"] == [str(bag.resolve())]
    assert meta["taught_at"].endswith("+00:00")
    assert meta["mcap_sha256"] == sha256_file(mcap, 1 << 30) and meta["mcap_bytes"] == mcap.stat().st_size
    assert (route_dir / "route.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (route_dir / "metadata.yaml").is_file()
    assert not list(route_dir.parent.glob(".route.tmp-*"))  # the staging folder is gone


def test_summary_counts_what_was_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = write_drive(tmp_path / "drive", nan=lambda t: 5.0 <= t < 5.3, bad=lambda t: 8.0 <= t < 8.2)
    code, out, err = teach(capsys, "--bag", str(bag), "--out", str(tmp_path / "r"), "--spacing", "0.5")
    assert code == 0, err
    assert "keyframes over 3.50 m (every 0.5 m / 10 deg)" in out
    assert str(tmp_path / "r" / "route.png") in out
    assert "warning: skipped 3 latents and 0 odometry poses with NaN or inf, 2 malformed" in err


def test_reading_a_bag_reports_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vae_ros.ros import teach_bag

    bag = write_drive(tmp_path / "drive", duration=3.0)
    monkeypatch.setattr(teach_bag, "PROGRESS_PERIOD_S", 0.0)
    seen: list[tuple[int, int]] = []
    rec = teach_bag.read_recording(bag, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (61 + 31, 61 + 31)  # odometry at 20 Hz and latents at 10 Hz over 3 s
    assert [done for done, _ in seen] == sorted({done for done, _ in seen})
    assert rec.latents.shape == (31, D) and rec.odom_poses.shape == (61, 3)
    assert rec.stamps_ns[0] == T0_NS  # the header stamp, not the bag's receive time


def test_an_existing_route_is_replaced_only_with_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = write_drive(tmp_path / "drive")
    out = tmp_path / "r"
    assert teach(capsys, "--bag", str(bag), "--out", str(out))[0] == 0
    expect_refusal(capsys, ["--bag", str(bag), "--out", str(out)], "exists and is not empty", "--force")
    code, _, err = teach(capsys, "--bag", str(bag), "--out", str(out), "--force", "--spacing", "0.5")
    assert code == 0, err
    assert json.loads((out / "route.json").read_text())["spacing_m"] == 0.5
    assert len(load_route(out)) < 20
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    expect_refusal(capsys, ["--bag", str(bag), "--out", str(tmp_path / "notes"), "--force"], "is not a route")
    assert (tmp_path / "notes" / "a.txt").read_text() == "mine"


def test_namespaced_topics_and_two_bags_joined(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write_drive(tmp_path / "a", duration=10.0, latent_topic="/robot1/vae/latent_stamped",
                        odom_topic="/robot1/odom")
    # The second part was recorded after a restart: its odometry begins again at the origin.
    second = write_drive(tmp_path / "b", start=10.0, duration=11.0,
                         pose=lambda t: (l_pose(t)[0] - 2.0, l_pose(t)[1], l_pose(t)[2]))
    code, out, err = teach(capsys, "--bag", str(first), "--bag", str(second), "--out", str(tmp_path / "r"))
    assert code == 0, err
    route = load_route(tmp_path / "r")
    assert route.meta["parts"] == 2 and len(route.meta["sources"]) == 2
    assert route.meta["latent_topic"] == "/robot1/vae/latent_stamped"
    assert np.hypot(*np.diff(route.poses[:, :2], axis=0).T).max() < 0.35  # one continuous path
    assert np.all(np.diff(route.stamps_ns) > 0)
    np.testing.assert_allclose(route.poses[-1], [2.0, 1.5, math.pi / 2], atol=0.03)


def test_refusals_of_bags_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "route")
    no_latents = write_drive(tmp_path / "no_latents", duration=3.0, latent_topic=None)
    expect_refusal(capsys, ["--bag", str(no_latents), "--out", out], "no latent topic 'vae/latent_stamped'",
                   "/odom (nav_msgs/msg/Odometry)")
    no_odom = write_drive(tmp_path / "no_odom", duration=3.0, odom_topic=None)
    expect_refusal(capsys, ["--bag", str(no_odom), "--out", out], "no odom topic 'odom'")
    two = tmp_path / "two_robots"
    with BagWriter(two) as bag:
        for name in ("/robot1/vae/latent_stamped", "/robot2/vae/latent_stamped"):
            bag.add_topic(name, "sensor_msgs/msg/Image")
    expect_refusal(capsys, ["--bag", str(two), "--out", out], "/robot1/vae/latent_stamped, "
                   "/robot2/vae/latent_stamped", "--latent-topic")
    widths = write_drive(tmp_path / "widths", duration=6.0, dim=lambda t: D if t < 3.0 else 8)
    expect_refusal(capsys, ["--bag", str(widths), "--out", out], "latents of two models", f"8-D and {D}-D")
    still = write_drive(tmp_path / "still", duration=6.0, pose=lambda t: (1.0, 2.0, 0.3))
    expect_refusal(capsys, ["--bag", str(still), "--out", out], "at least two keyframes")
    gap = write_drive(tmp_path / "gap", skip=lambda t: 4.0 < t < 6.5)
    expect_refusal(capsys, ["--bag", str(gap), "--out", out], "gap in the latents at t = 4.0 s", str(gap))
    expect_refusal(capsys, ["--bag", str(tmp_path / "missing"), "--out", out], "does not exist")
    assert not (tmp_path / "route").exists()


def test_a_model_of_another_latent_size_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nodes.node_helpers import make_model_dir

    model = make_model_dir(tmp_path / "model", modality="scan", latent_dim=8)
    bag = write_drive(tmp_path / "drive", duration=4.0)
    expect_refusal(capsys, ["--bag", str(bag), "--out", str(tmp_path / "r"), "--model", str(model)],
                   f"{D}-D latents", "8-D", "--model")
    small = write_drive(tmp_path / "small", duration=4.0, dim=lambda t: 8, logvars=False)
    code, _, err = teach(capsys, "--bag", str(small), "--out", str(tmp_path / "r"), "--model", str(model))
    assert code == 0, err
    route = load_route(tmp_path / "r")
    assert route.latent_dim == 8 and route.logvars is None


def test_the_cli_process_refuses_with_one_line(tmp_path: Path) -> None:
    from probe import run_cli

    bag = write_drive(tmp_path / "no_odom", duration=2.0, odom_topic=None)
    result = run_cli("teach", "--bag", str(bag), "--out", str(tmp_path / "r"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "no odom topic" in result.stderr


# -- load_route on damaged routes --------------------------------------------------------------------------------
@pytest.fixture()
def route_copy(taught: tuple[Path, Path, str], tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(taught[1], tmp_path / "route"))


def _edit_json(route: Path, **changes: Any) -> None:
    meta = json.loads((route / "route.json").read_text())
    meta.update(changes)
    (route / "route.json").write_text(json.dumps(meta))


def _load_refused(route: Path, *phrases: str) -> None:
    with pytest.raises(DataError) as err:
        load_route(route)
    assert "\n" not in str(err.value)
    for phrase in phrases:
        assert phrase in str(err.value), str(err.value)


def test_a_tampered_mcap_is_refused(route_copy: Path) -> None:
    mcap = next(route_copy.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    data[len(data) // 2] ^= 0x01
    mcap.write_bytes(bytes(data))
    _load_refused(route_copy, "tampered with or damaged")


def test_a_truncated_mcap_is_refused(route_copy: Path) -> None:
    mcap = next(route_copy.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    _load_refused(route_copy, "truncated", f"{len(data) // 2} of {len(data)} bytes")
    # Even with a matching digest, a bag cut short is unreadable and refused as such.
    from vae_ros.core.files import sha256_file

    _edit_json(route_copy, mcap_bytes=len(data) // 2, mcap_sha256=sha256_file(mcap, 1 << 30))
    _load_refused(route_copy, "damaged")


def test_route_json_problems_are_refused(route_copy: Path, tmp_path: Path) -> None:
    _load_refused(tmp_path / "nowhere", "does not exist")
    (tmp_path / "empty").mkdir()
    _load_refused(tmp_path / "empty", "is not a route", "route.json")
    keyframes = json.loads((route_copy / "route.json").read_text())["keyframes"]
    _edit_json(route_copy, keyframes=keyframes + 1)
    _load_refused(route_copy, f"for {keyframes + 1} keyframes")
    _edit_json(route_copy, keyframes=keyframes, latent_dim=D + 1)
    _load_refused(route_copy, f"{D}-D latent", f"{D + 1}-D")
    _edit_json(route_copy, latent_dim=D, format=99)
    _load_refused(route_copy, "route format 99")
    meta = json.loads((route_copy / "route.json").read_text())
    del meta["mcap_sha256"]
    meta["format"] = ROUTE_FORMAT_VERSION
    (route_copy / "route.json").write_text(json.dumps(meta))
    _load_refused(route_copy, "lacks mcap_sha256")
    (route_copy / "route.json").write_text("{not json")
    _load_refused(route_copy, "is not JSON")
    (route_copy / "route.json").write_text(" " * (2 << 20))
    _load_refused(route_copy, "more than the")

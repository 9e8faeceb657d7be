"""`vae-ros train --topic CAMERA --topic SCAN`: a fused camera + LiDAR model from a bag, paired by header stamp.

The bags hold the simulator's real camera frames and LaserScans at a few poses (vae_ros.sim.world), written
as `ros2 bag record` would; the model trains for one epoch on a few dozen pairs and must load and encode.
Every refusal is one line and exit status 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bagutil
import numpy as np
import pytest

from vae_ros.control.training.fused import pair_by_stamp, robot_namespace
from vae_ros.core.data import nearest_stamps
from vae_ros.core.errors import DataError

REPO = Path(__file__).resolve().parents[2]
SCAN_PERIOD_NS = 100_000_000  # a 10 Hz LiDAR
CAMERA_LAG_NS = 12_000_000  # the camera's stamp trails the scan's by 12 ms: pairs within the default 0.05 s
TINY = ["--epochs", "1", "--batch-size", "16", "--val-percent", "25", "--seed", "1", "--quiet"]


def vae_ros(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", *args], capture_output=True, text=True,
                          timeout=240, cwd=REPO, env={**os.environ, **(env or {})})


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def sim_views(count: int, seed: int = 3) -> Iterator[tuple[np.ndarray, np.ndarray, Any]]:
    """(camera RGB (64, 64, 3), scan ranges (360,), scan geometry) at `count` free poses of a simulator world."""
    for rgb, ranges, geometry, _pose in sim_posed_views(count, seed):
        yield rgb, ranges, geometry


def sim_posed_views(count: int, seed: int = 3) -> Iterator[tuple[np.ndarray, np.ndarray, Any, Any]]:
    """sim_views with each view's pose (vae_ros.sim.world.Pose2D)."""
    from vae_ros.sim.world import Pose2D, SimConfig, SimWorld

    world = SimWorld(SimConfig(seed=seed, image_width=64, image_height=64))
    rng = np.random.default_rng(seed)
    try:
        made = 0
        while made < count:
            x, y = rng.uniform(-2.5, 2.5, 2)
            if world.clearance(float(x), float(y)) < 0.05:
                continue
            yaw = float(rng.uniform(-np.pi, np.pi))
            world.set_pose(float(x), float(y), yaw)
            yield world.render(), world.scan(), world.scan_geometry, Pose2D(float(x), float(y), yaw)
            made += 1
    finally:
        world.close()


def write_fused_bag(path: Path, count: int, camera_topic: str = "/camera/image_raw", scan_topic: str = "/scan",
                    camera_lag_ns: int = CAMERA_LAG_NS, period_ns: int = SCAN_PERIOD_NS,
                    odom_lag_ns: int | None = None) -> Path:
    """A bag of `count` scans every `period_ns`, each with a camera frame `camera_lag_ns` later (the last scan
    has none: its frame is dropped, as a camera's sometimes is) and, with `odom_lag_ns`, the view's pose on /odom
    (nav_msgs/Odometry) that much later."""
    from vae_ros.ros.sim_messages import image_msg, odometry_msg, scan_msg, time_msg
    from vae_ros.sim.world import Velocity2D

    messages = []
    for i, (rgb, ranges, geometry, pose) in enumerate(sim_posed_views(count)):
        t = 1_000_000_000 + i * period_ns
        messages.append((scan_topic, t, scan_msg(ranges, geometry, time_msg(t / 1e9), 0.1)))
        if odom_lag_ns is not None:
            t_odom = t + odom_lag_ns
            messages.append(("/odom", t_odom, odometry_msg(pose, Velocity2D(0.0, 0.0, 0.0), time_msg(t_odom / 1e9))))
        if i < count - 1:
            messages.append((camera_topic, t + camera_lag_ns, image_msg(rgb, time_msg((t + camera_lag_ns) / 1e9))))
    messages.sort(key=lambda item: item[1])
    return bagutil.write_bag(path, messages)


@pytest.fixture(scope="module")
def fused_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fused_bag(tmp_path_factory.mktemp("fused") / "bag", 41)


def test_nearest_stamps_and_pairing_are_one_to_one() -> None:
    index, gap = nearest_stamps(np.array([30, 10, 20]) * 10**9, np.array([9, 21, 40]) * 10**9)
    assert index.tolist() == [1, 2, 0] and gap.tolist() == [1.0, 1.0, 10.0]
    # Two scans nearest to one camera frame: only the nearer pairs with it, so a view is in one pair only.
    scans = np.array([0, 10, 20, 100]) * 10**6
    frames = np.array([12, 95]) * 10**6
    scan_idx, camera_idx, offsets = pair_by_stamp(scans, frames, 0.05)
    assert scan_idx.tolist() == [1, 3] and camera_idx.tolist() == [0, 1]
    assert np.allclose(offsets, [0.002, 0.005])
    with pytest.raises(DataError, match=r"no camera frame within 0.05 s of any scan; the median offset is 1.00 s"):
        pair_by_stamp(np.array([0, 5, 10]) * 10**9, np.array([1, 6, 11]) * 10**9, 0.05)


def test_robot_namespace() -> None:
    assert robot_namespace("/robot1/camera/image_raw", "camera") == "/robot1"
    assert robot_namespace("/robot1/camera/image_raw/compressed", "camera") == "/robot1"
    assert robot_namespace("/robot2/scan", "scan") == "/robot2"
    assert robot_namespace("/camera/image_raw", "camera") == robot_namespace("/scan", "scan") == "/"


@pytest.mark.slow
def test_train_two_topics_writes_a_fused_model_that_encodes(fused_bag: Path, tmp_path: Path) -> None:
    from vae_ros.core.fused import FusedModel, load_fused_config
    from vae_ros.core.preprocess import preprocess_image, preprocess_scan

    out = tmp_path / "fused"
    result = vae_ros("train", "--bag", str(fused_bag), "--topic", "camera/image_raw", "--topic", "scan",
                     "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr
    assert "pairs: 40 (" in result.stdout and "skipped: 1 scan(s) without a frame" in result.stdout
    assert "camera-alone latent error" in result.stdout and "image PSNR from scan / camera / both" in result.stdout
    config = load_fused_config(out)
    assert config.sensors == ("camera", "scan") and config.latent_dim == 16
    source = config.training["source"]
    assert source["camera_topic"] == "/camera/image_raw" and source["scan_topic"] == "/scan"
    assert source["pairs"] == 40 and abs(source["median_offset_s"] - 0.012) < 1e-6
    assert config.training["samples"]["train"] + config.training["samples"]["val"] == 40
    assert [row["epoch"] for row in config.training["history"]] == [1]
    assert (out / "training_curves.png").stat().st_size > 1000
    model = FusedModel(out)
    rgb, ranges, geometry = next(sim_views(1, seed=5))
    image = preprocess_image(rgb, model.configs["camera"].image_spec)[None]
    scan = preprocess_scan(ranges, geometry.angle_min, geometry.angle_increment, geometry.range_min,
                           geometry.range_max, model.configs["scan"].scan_spec)[None]
    for batches in ({"camera": image}, {"scan": scan}, {"camera": image, "scan": scan}):
        mean, logvar = model.encode(batches)
        assert mean.shape == logvar.shape == (1, 16) and np.all(np.isfinite(mean)), sorted(batches)
    assert model.decode("camera", mean).shape == (1, *image.shape[1:])


@pytest.mark.parametrize("flag", ["--resume", "torchrun"])
def test_fused_training_refuses_what_it_does_not_support(flag: str, fused_bag: Path, tmp_path: Path) -> None:
    args = ["train", "--bag", str(fused_bag), "--topic", "camera/image_raw", "--topic", "scan",
            "--out", str(tmp_path / "out")]
    if flag == "torchrun":
        result = vae_ros(*args, env={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    else:
        result = vae_ros(*args, flag)
    assert_refused(result, flag, "not supported for fused training")
    assert not (tmp_path / "out").exists()


def test_fused_training_names_a_topic_missing_from_the_bag(fused_bag: Path, tmp_path: Path) -> None:
    result = vae_ros("train", "--bag", str(fused_bag), "--topic", "camera/image_raw", "--topic", "/lidar/scan",
                     "--out", str(tmp_path / "out"))
    assert_refused(result, "no topic '/lidar/scan'", "/camera/image_raw", "/scan")


def _small_bag(path: Path, topics: dict[str, Any]) -> Path:
    """A few messages on each topic: {topic: make(index, stamp_ns)}."""
    messages = [(topic, 10**9 + i * SCAN_PERIOD_NS, make(i, 10**9 + i * SCAN_PERIOD_NS))
                for i in range(3) for topic, make in topics.items()]
    return bagutil.write_bag(path, messages)


def _image(i: int, t: int) -> Any:
    return bagutil.image_msg(bagutil.square_scene(i), t)


def _scan(i: int, t: int) -> Any:
    return bagutil.scan_msg(i, stamp_ns=t)


@pytest.mark.parametrize("case", ["two cameras", "two scans", "point cloud"])
def test_fused_training_refuses_topics_that_cannot_be_fused(case: str, tmp_path: Path) -> None:
    makes = {"two cameras": {"/camera/image_raw": _image, "/camera2/image_raw": _image},
             "two scans": {"/scan": _scan, "/scan_rear": _scan},
             "point cloud": {"/camera/image_raw": _image, "/lidar/points": lambda i, t: bagutil.cloud_msg(i, stamp_ns=t)}}
    bag = _small_bag(tmp_path / "bag", makes[case])
    topics = [arg for topic in makes[case] for arg in ("--topic", topic)]
    result = vae_ros("train", "--bag", str(bag), *topics, "--out", str(tmp_path / "out"))
    if case == "point cloud":
        assert_refused(result, "/lidar/points", "PointCloud2", "cannot take")
    else:
        assert_refused(result, *makes[case], f"both {'camera' if case == 'two cameras' else 'scan'} topics")


def test_fused_training_refuses_sensors_of_different_robots(tmp_path: Path) -> None:
    bag = _small_bag(tmp_path / "bag", {"/robot1/camera/image_raw": _image, "/robot2/scan": _scan})
    result = vae_ros("train", "--bag", str(bag), "--topic", "/robot1/camera/image_raw", "--topic", "/robot2/scan",
                     "--out", str(tmp_path / "out"))
    assert_refused(result, "/robot1/camera/image_raw", "/robot2/scan", "different namespaces", "different robots")


def test_fused_training_says_the_offset_when_stamps_never_pair(tmp_path: Path) -> None:
    # Scans every 3 s, each camera frame 1.02 s after its scan: the camera's clock is a second ahead.
    bag = write_fused_bag(tmp_path / "bag", 6, camera_lag_ns=1_020_000_000, period_ns=3_000_000_000)
    result = vae_ros("train", "--bag", str(bag), "--topic", "camera/image_raw", "--topic", "scan",
                     "--out", str(tmp_path / "out"), "--quiet")  # no progress bar: the error is all there is
    assert_refused(result, "no camera frame within 0.05 s of any scan; the median offset is 1.02 s",
                   "--sync-slop")
    assert not (tmp_path / "out").exists()


def test_fused_training_refuses_models_of_different_latent_sizes(fused_bag: Path, tmp_path: Path) -> None:
    from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig
    from vae_ros.core.model_dir import save_model_dir
    from vae_ros.core.models import build_model

    config = ModelConfig(modality="image", arch=ArchSpec(latent_dim=4, channels=[8, 16]),
                         image=ImageSpec(height=32, width=32, channels=3))
    save_model_dir(tmp_path / "camera4", config, build_model(config))
    result = vae_ros("train", "--bag", str(fused_bag), "--topic", "camera/image_raw", "--topic", "scan",
                     "--camera-init", str(tmp_path / "camera4"), "--out", str(tmp_path / "out"))
    assert_refused(result, "latent sizes differ", "16", "4")


def test_compressed_camera_frames_pair_with_scans_of_the_same_robot(tmp_path: Path) -> None:
    """CompressedImage and LaserScan in one robot's namespace, read and paired as training reads them."""
    from vae_ros.control.training.fused import read_bag_pairs
    from vae_ros.core.backends import load_config
    from vae_ros.resources import models_dir
    from vae_ros.ros.sim_messages import scan_msg, time_msg

    camera_topic, scan_topic = "/robot1/camera/image_raw/compressed", "/robot1/scan"
    camera_config, scan_config = load_config(models_dir() / "image_default"), load_config(models_dir() / "control_default")
    messages = []
    for i, (rgb, ranges, geometry) in enumerate(sim_views(6)):
        t = 10**9 + i * SCAN_PERIOD_NS
        messages.append((scan_topic, t, scan_msg(ranges, geometry, time_msg(t / 1e9), 0.1)))
        messages.append((camera_topic, t - 30_000_000, bagutil.compressed_msg(rgb, t - 30_000_000)))
    bag = bagutil.write_bag(tmp_path / "bag", sorted(messages, key=lambda item: item[1]))
    pairs = read_bag_pairs(bag, [camera_topic, "robot1/scan"], camera_config, scan_config, 0.05)
    assert pairs.images.shape == (6, *camera_config.input_shape) and pairs.scans.shape == (6, *scan_config.input_shape)
    assert np.allclose(pairs.offsets_s, 0.03) and pairs.source["scan_topic"] == scan_topic
    # A tighter slop than the sensors' offset pairs nothing, and says so.
    with pytest.raises(DataError, match="median offset is 0.03 s"):
        read_bag_pairs(bag, [camera_topic, scan_topic], camera_config, scan_config, 0.02)


# -- --pose-topic: the LiDAR's expert control-fit trained from the bag, then the camera's fitted to it ------------
POSE_TINY = ["--pose-topic", "odom", "--steps", "40", "--arch-channels", "8,16,32,32", "--epochs", "3",
             "--batch-size", "32", "--val-percent", "25", "--seed", "1", "--quiet"]


@pytest.fixture(scope="module")
def posed_fused_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 scans, 119 camera frames 12 ms later and 120 odometry poses 5 ms later: 359 messages."""
    return write_fused_bag(tmp_path_factory.mktemp("posed") / "bag", 120, odom_lag_ns=5_000_000)


@pytest.mark.slow
def test_pose_topic_trains_a_control_fit_lidar_expert_and_fits_the_camera_to_it(posed_fused_bag: Path,
                                                                                 tmp_path: Path) -> None:
    import json

    from vae_ros.control.runtime.control_model import ControlModel
    from vae_ros.control.training.fused import read_bag_pairs, split_bag_pairs
    from vae_ros.control.training.train_metric import sample_key
    from vae_ros.core.backends import create_backend
    from vae_ros.core.fused import FusedModel, load_fused_config
    from vae_ros.resources import models_dir

    out = tmp_path / "fused"
    result = vae_ros("train", "--bag", str(posed_fused_bag), "--topic", "camera/image_raw", "--topic", "scan",
                     "--out", str(out), *POSE_TINY)
    assert result.returncode == 0, result.stderr
    # Progress lines of both stages, and the report of both.
    assert "stage 1/2: control-fit training of the LiDAR expert on /scan with /odom poses (40 steps)" in result.stderr
    assert "stage 2/2: the camera's expert fitted to the new joint latent (3 epochs)" in result.stderr
    assert "step 40/40: val metric" in result.stderr and "epoch 3/3: match" in result.stderr
    assert "LiDAR expert (stage 1, control-fit)" in result.stdout and "servo tolerance" in result.stdout
    assert "pairs: 119 (" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["camera", "model.json", "scan", "servo_head.safetensors",
                                                     "training_curves.png"]
    assert not list(tmp_path.glob(".*partial"))  # the LiDAR stage's staging folder is gone

    # The scan expert is the control-fit model trained here: its training summary, servo head, curves, exports.
    scan_json = json.loads((out / "scan" / "model.json").read_text())
    training = scan_json["training"]
    assert training["kind"] == "control" and training["control"]["metric"]["weight"] == 300.0
    assert training["sources"][0]["pose_topic"] == "/odom" and training["sources"][0]["samples"] == 120
    assert training["train_config"]["steps"] == 40 and training["best"]["epoch"] == 40
    assert scan_json["arch"]["channels"] == [8, 16, 32, 32]
    for name in ("servo_head.safetensors", "training_curves.png", "encoder.onnx", "decoder.onnx"):
        assert (out / "scan" / name).stat().st_size > 1000, name
    assert (out / "servo_head.safetensors").read_bytes() == (out / "scan" / "servo_head.safetensors").read_bytes()
    assert (out / "training_curves.png").stat().st_size > 1000
    config = load_fused_config(out)
    stage = config.training["scan_stage"]
    assert stage["kind"] == "control" and stage["pose_topic"] == "/odom" and stage["steps"] == 40
    assert config.training["source"]["pose_topic"] == "/odom"
    control = ControlModel(out, backend="torch")
    assert control.latent_dir == out / "scan" and control.tolerance == training["control"]["tolerance"]
    assert control.estimate(np.zeros(16), np.ones(16)).shape == (3,)

    # The joint latent of a scan alone is the new scan expert's, not the packaged control model's.
    model = FusedModel(out, backend="torch")
    pairs = read_bag_pairs(posed_fused_bag, ["/camera/image_raw", "/scan"], model.configs["camera"],
                           model.configs["scan"], 0.05, key=lambda index: sample_key(0, index))
    val = split_bag_pairs(pairs, 25.0)
    joint_mean, _ = model.encode({"scan": pairs.scans[:8]})
    expert_mean, _ = create_backend(out / "scan", "torch", "cpu").encode(pairs.scans[:8])
    packaged_mean, _ = create_backend(models_dir() / "control_default", "torch", "cpu").encode(pairs.scans[:8])
    assert np.allclose(joint_mean, expert_mean, atol=1e-6)
    assert not np.allclose(joint_mean, packaged_mean, atol=0.1)

    # On held-out pairs the camera's expert is nearer the scan posterior than where training started.
    camera_mean, _ = model.encode_sensor("camera", pairs.images[val])
    scan_mean, _ = model.encode_sensor("scan", pairs.scans[val])
    error = float(np.linalg.norm(camera_mean - scan_mean, axis=1).mean())
    summary = config.training
    assert summary["samples"]["val"] == int(val.sum()) > 10
    assert abs(error - summary["final"]["val_latent_error"]) < 1e-3 * max(error, 1.0)
    assert error < summary["initial"]["val_latent_error"], (error, summary["initial"])


def test_pose_topic_refuses_a_joint_model(posed_fused_bag: Path, tmp_path: Path) -> None:
    result = vae_ros("train", "--bag", str(posed_fused_bag), "--topic", "camera/image_raw", "--topic", "scan",
                     "--pose-topic", "odom", "--joint-model", str(tmp_path), "--out", str(tmp_path / "out"))
    assert_refused(result, "--joint-model and --pose-topic contradict each other")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["missing", "wrong type"])
def test_pose_topic_names_a_bad_pose_topic(case: str, posed_fused_bag: Path, tmp_path: Path) -> None:
    pose_topic = {"missing": "wheel/odom", "wrong type": "scan"}[case]
    result = vae_ros("train", "--bag", str(posed_fused_bag), "--topic", "camera/image_raw", "--topic", "scan",
                     "--pose-topic", pose_topic, "--out", str(tmp_path / "out"), "--quiet")
    if case == "missing":
        assert_refused(result, "no pose topic 'wheel/odom'", "/odom", "/scan", "/camera/image_raw")
    else:
        assert_refused(result, "pose topic /scan", "holds sensor_msgs/msg/LaserScan",
                       "expected nav_msgs/msg/Odometry")
    assert not (tmp_path / "out").exists()


def test_pose_topic_refuses_a_bag_without_odometry_near_the_scans(tmp_path: Path) -> None:
    # Scans every 3 s, each pose on /odom a second after its scan: no scan has odometry within 0.05 s.
    bag = write_fused_bag(tmp_path / "bag", 6, period_ns=3_000_000_000, odom_lag_ns=1_000_000_000)
    result = vae_ros("train", "--bag", str(bag), "--topic", "camera/image_raw", "--topic", "scan",
                     "--pose-topic", "odom", "--out", str(tmp_path / "out"), "--quiet")
    assert_refused(result, "no /scan message has /odom odometry within 0.05 s")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*partial"))

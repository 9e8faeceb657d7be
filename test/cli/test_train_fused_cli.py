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
    from vae_ros.sim.world import SimConfig, SimWorld

    world = SimWorld(SimConfig(seed=seed, image_width=64, image_height=64))
    rng = np.random.default_rng(seed)
    try:
        made = 0
        while made < count:
            x, y = rng.uniform(-2.5, 2.5, 2)
            if world.clearance(float(x), float(y)) < 0.05:
                continue
            world.set_pose(float(x), float(y), float(rng.uniform(-np.pi, np.pi)))
            yield world.render(), world.scan(), world.scan_geometry
            made += 1
    finally:
        world.close()


def write_fused_bag(path: Path, count: int, camera_topic: str = "/camera/image_raw", scan_topic: str = "/scan",
                    camera_lag_ns: int = CAMERA_LAG_NS, period_ns: int = SCAN_PERIOD_NS) -> Path:
    """A bag of `count` scans every `period_ns`, each with a camera frame `camera_lag_ns` later (the last scan
    has none: its frame is dropped, as a camera's sometimes is)."""
    from vae_ros.ros.sim_messages import image_msg, scan_msg, time_msg

    messages = []
    for i, (rgb, ranges, geometry) in enumerate(sim_views(count)):
        t = 1_000_000_000 + i * period_ns
        messages.append((scan_topic, t, scan_msg(ranges, geometry, time_msg(t / 1e9), 0.1)))
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


@pytest.mark.parametrize("flag", ["--resume", "--pose-topic", "torchrun"])
def test_fused_training_refuses_what_it_does_not_support(flag: str, fused_bag: Path, tmp_path: Path) -> None:
    args = ["train", "--bag", str(fused_bag), "--topic", "camera/image_raw", "--topic", "scan",
            "--out", str(tmp_path / "out")]
    if flag == "torchrun":
        result = vae_ros(*args, env={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    else:
        result = vae_ros(*args, *([flag, "odom"] if flag == "--pose-topic" else [flag]))
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

"""Datasets from rosbag2 bags (MCAP and sqlite3, written here with rosbags) and image folders."""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bagutil
import numpy as np
import pytest

from vae_ros.core.config import ImageSpec, ModelConfig, PointCloudSpec, ScanSpec
from vae_ros.core.data import (
    BagSource,
    DecodeStats,
    ImageFolderSource,
    SplitDataset,
    iter_samples,
    open_source,
    scan_spec_from_message,
    split_of,
)
from vae_ros.core.errors import DataError
from vae_ros.core.preprocess import preprocess_image, preprocess_pointcloud

IMAGE_32 = ModelConfig(modality="image", image=ImageSpec(32, 32, 3))


def _key(sample: np.ndarray) -> str:
    return hashlib.sha1(sample.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def image_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bagutil.write_image_bag(tmp_path_factory.mktemp("bags") / "images", 60, bad=[2, 5])


# -- reading each message type ----------------------------------------------------------------------------
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "compressed"])
def test_image_topics_decode_to_the_scene(tmp_path: Path, storage: str, encoding: str) -> None:
    compressed = encoding == "compressed"
    bag = bagutil.write_image_bag(tmp_path / "bag", 6, storage=storage, size=(48, 64),
                                  compressed=compressed, encoding="rgb8" if compressed else encoding)
    source = BagSource(bag, "camera/image_raw")  # relative name matches the recorded /camera/image_raw
    assert (source.modality, len(source)) == ("image", 6)
    assert source.msgtype.endswith("CompressedImage" if compressed else "/Image")
    got = list(source.samples(IMAGE_32))
    assert [index for index, _ in got] == list(range(6))
    for index, sample in got:
        expected = preprocess_image(bagutil.square_scene(index, 48, 64), IMAGE_32.image_spec)
        np.testing.assert_allclose(sample, expected, atol=1e-6)  # RGB order kept, PNG is lossless


def test_scan_topic_decodes_ranges_and_mask(tmp_path: Path) -> None:
    bag = bagutil.write_scan_bag(tmp_path / "scan", 4, storage="sqlite3", beams=360)
    source = BagSource(bag, "/scan")
    spec = scan_spec_from_message(source.first_message())
    assert spec.beams == 360 and spec.wraps and spec.range_max == 10.0
    config = ModelConfig(modality="scan", scan=spec)
    samples = [s for _, s in source.samples(config)]
    assert len(samples) == 4 and samples[0].shape == (2, 360)
    for index, sample in enumerate(samples):
        # The scan has one inf and one NaN beam: exactly those bins are masked out.
        invalid = {index % 360, (index * 7) % 360}
        assert set(np.flatnonzero(sample[1] == 0)) == invalid
        valid = sample[1] > 0
        # Model bin i is centred on scan beam i (scan_spec_from_message's rule), so it holds that beam.
        angles = spec.angle_min + (np.arange(360) + 0.5) * (2 * np.pi / 360)
        np.testing.assert_allclose(angles, -np.pi + np.arange(360) * (2 * np.pi / 360), atol=1e-6)
        truth = bagutil.room_ranges(bagutil.robot_pose(index), angles) / 10.0
        np.testing.assert_allclose(sample[0, valid], truth[valid], atol=1e-5)


def test_pointcloud_topic_decodes_to_a_range_image(tmp_path: Path) -> None:
    bag = bagutil.write_cloud_bag(tmp_path / "cloud", 3)
    config = ModelConfig(modality="pointcloud", pointcloud=PointCloudSpec(rows=16, cols=256))
    samples = [s for _, s in BagSource(bag, "/lidar/points").samples(config)]
    assert len(samples) == 3 and samples[0].shape == (2, 16, 256)
    for index, sample in enumerate(samples):
        msg = bagutil.cloud_msg(index)
        points = np.frombuffer(bytes(msg.data), dtype="<f4").reshape(-1, 4)[:, :3]  # (N, 3) of x, y, z, i
        np.testing.assert_array_equal(sample, preprocess_pointcloud(points, config.pointcloud_spec))
        assert sample[1].mean() > 0.9  # the 16 rings fill the 16 rows


def test_bag_file_path_and_topic_errors(image_bag: Path) -> None:
    single_file = next(image_bag.glob("*.mcap"))
    assert len(BagSource(single_file, "/camera/image_raw")) == 60
    with pytest.raises(DataError, match=r"no topic '/nope'.*/camera/image_raw \(sensor_msgs/msg/Image\).*/odom"):
        BagSource(image_bag, "/nope")
    with pytest.raises(DataError, match="std_msgs/msg/String"):
        BagSource(image_bag, "/odom")
    with pytest.raises(DataError, match="does not exist"):
        BagSource(image_bag.parent / "missing", "/camera/image_raw")
    junk = image_bag.parent / "junk.mcap"
    junk.write_bytes(b"this is not an mcap file")
    with pytest.raises(DataError, match="cannot read bag"):
        BagSource(junk, "/camera/image_raw")


def test_modality_mismatch_is_refused(image_bag: Path) -> None:
    with pytest.raises(DataError, match="image data, but the model's modality is 'scan'"):
        list(BagSource(image_bag, "/camera/image_raw").samples(ModelConfig(modality="scan")))


def test_undecodable_messages_are_skipped_and_counted(image_bag: Path) -> None:
    stats = DecodeStats()
    indices = [index for index, _ in BagSource(image_bag, "/camera/image_raw").samples(IMAGE_32, stats=stats)]
    assert stats.seen == 60 and stats.decoded == 58 and stats.skipped == 2
    assert 2 not in indices and 5 not in indices
    assert stats.first_error.startswith("message 2:")


def test_a_topic_where_nothing_decodes_is_a_data_error(tmp_path: Path) -> None:
    bag = bagutil.write_cloud_bag(tmp_path / "empty", 3, bad=[0, 1, 2])
    config = ModelConfig(modality="pointcloud")
    with pytest.raises(DataError, match="none of the 3 items"):
        list(BagSource(bag, "/lidar/points").samples(config))


# -- split, shuffle, streaming ----------------------------------------------------------------------------
def test_split_is_stable_and_near_the_requested_share() -> None:
    keys = [str(i) for i in range(20000)]
    val = [k for k in keys if split_of(k, 10.0) == "val"]
    assert 0.09 < len(val) / len(keys) < 0.11
    assert val == [k for k in keys if split_of(k, 10.0) == "val"]  # deterministic
    # Growing the share only moves samples from train to val (a nested split).
    assert set(val) <= {k for k in keys if split_of(k, 30.0) == "val"}
    assert all(split_of(k, 0.0) == "train" for k in keys[:100])


def test_train_and_val_partition_the_bag_the_same_way_every_time(image_bag: Path) -> None:
    source = BagSource(image_bag, "/camera/image_raw")

    def keys(split: str, epoch: int, shuffle: bool) -> list[str]:
        dataset = SplitDataset(source, IMAGE_32, split, val_percent=25.0, shuffle=shuffle, seed=3)
        dataset.set_epoch(epoch)
        return [_key(s) for s in dataset]

    train, val = keys("train", 1, True), keys("val", 1, False)
    everything = {_key(s) for _, s in source.samples(IMAGE_32)}
    assert set(train) | set(val) == everything and not set(train) & set(val)
    assert 5 <= len(val) <= 25
    assert set(keys("train", 2, True)) == set(train) and keys("val", 7, False) == val
    # Shuffle: the same order for the same (seed, epoch), a different one for another epoch.
    assert keys("train", 1, True) == train
    assert keys("train", 2, True) != train


class _TrackedSource:
    """Wraps a source and counts how many of its sample arrays are alive at once."""

    def __init__(self, source: Any) -> None:
        self.source, self.alive, self.peak = source, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)

    def _gone(self) -> None:
        self.alive -= 1

    def samples(self, *args: Any, **kwargs: Any) -> Iterator[tuple[int, np.ndarray]]:
        for index, sample in self.source.samples(*args, **kwargs):
            self.alive += 1
            self.peak = max(self.peak, self.alive)
            weakref.finalize(sample, self._gone)
            yield index, sample


def test_streaming_holds_only_the_shuffle_buffer(image_bag: Path) -> None:
    tracked = _TrackedSource(BagSource(image_bag, "/camera/image_raw"))
    dataset = SplitDataset(tracked, IMAGE_32, "all", shuffle=True, shuffle_buffer=6, cache_bytes=0)  # type: ignore[arg-type]
    for _ in range(2):
        count = sum(1 for _ in dataset)
        assert count == 58
        assert tracked.peak <= 6 + 2 and not dataset.cached  # buffer + the one arriving + the one consumed
    assert dataset.peak_held == 6


def test_cache_is_used_only_when_the_split_fits(image_bag: Path) -> None:
    source = BagSource(image_bag, "/camera/image_raw")
    sample_bytes = 3 * 32 * 32 * 4
    small = SplitDataset(source, IMAGE_32, "all", shuffle=True, seed=1, cache_bytes=10 * sample_bytes)
    big = SplitDataset(source, IMAGE_32, "all", shuffle=True, seed=1, cache_bytes=100 * sample_bytes)
    orders = []
    for dataset in (small, big):
        first = [_key(s) for s in dataset]
        dataset.set_epoch(1)
        second = [_key(s) for s in dataset]
        orders.append((first, second))
    assert not small.cached and big.cached
    # Cached or streamed, every epoch sees the same order (resumed training depends on it).
    assert orders[0] == orders[1]
    assert big.stats.skipped == 2  # counts of the disk pass are kept while serving from the cache


def test_iter_samples_limit_split_and_order(image_bag: Path) -> None:
    source = BagSource(image_bag, "/camera/image_raw")
    everything = [_key(s) for s in iter_samples(source, IMAGE_32, split="all")]
    assert len(everything) == 58
    assert [_key(s) for s in iter_samples(source, IMAGE_32, limit=5, split="all")] == everything[:5]
    val = [_key(s) for s in iter_samples(source, IMAGE_32, split="val", val_percent=25.0)]
    train = [_key(s) for s in iter_samples(source, IMAGE_32, split="train", val_percent=25.0)]
    assert sorted(val + train) == sorted(everything) and val and train
    with pytest.raises(DataError, match="split must be one of"):
        list(iter_samples(source, IMAGE_32, split="test"))


# -- image folders ----------------------------------------------------------------------------------------
def test_image_folder_reads_recursively_and_skips_broken_files(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    folder = bagutil.write_image_folder(tmp_path / "imgs", 12, broken=2)
    source = ImageFolderSource(folder)
    assert len(source) == 14 and source.modality == "image"
    names = [p.relative_to(folder).as_posix() for p in source.files]
    assert names == sorted(names) and names[0].startswith("broken_")
    dataset = SplitDataset(source, IMAGE_32, "all")
    with caplog.at_level(logging.WARNING, logger="vae_ros"):
        samples = list(dataset)
    assert len(samples) == 12 and dataset.stats.skipped == 2
    assert "skipped 2 of 14" in caplog.text
    png = folder / "part0" / "img_0000.png"
    expected = preprocess_image(bagutil.square_scene(0), IMAGE_32.image_spec)
    np.testing.assert_allclose(samples[names.index(png.relative_to(folder).as_posix()) - 2], expected, atol=1e-6)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        ImageFolderSource(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no"):
        ImageFolderSource(tmp_path / "empty")
    broken = bagutil.write_image_folder(tmp_path / "broken", 0, broken=3)
    with pytest.raises(DataError, match="none of the 3 items"):
        list(iter_samples(ImageFolderSource(broken), IMAGE_32, split="all"))


def test_open_source_needs_exactly_one_source(image_bag: Path, tmp_path: Path) -> None:
    assert isinstance(open_source(bag=str(image_bag), topic="/camera/image_raw"), BagSource)
    for kwargs, message in [({}, "no data"), ({"bag": str(image_bag)}, "needs --topic"),
                            ({"topic": "/scan"}, "needs --bag"),
                            ({"images": str(tmp_path), "bag": str(image_bag)}, "not both")]:
        with pytest.raises(DataError, match=message):
            open_source(**kwargs)


def test_scan_spec_from_a_partial_scan() -> None:
    class Scan:  # a 270-degree scanner with 1081 beams, duck-typed like a deserialised message
        angle_min, angle_increment, range_max = -2.356194, 0.004363323, 30.0
        ranges = [1.0] * 1081

    spec = scan_spec_from_message(Scan())
    assert spec.beams == 1080 and not spec.wraps and spec.range_max == 30.0
    assert spec.angle_max - spec.angle_min == pytest.approx(1081 * 0.004363323)
    assert spec.angle_min == pytest.approx(-2.356194 - 0.004363323 / 2)
    assert isinstance(spec, ScanSpec) and scan_spec_from_message(Scan(), beams=512).beams == 512


def test_loader_workers_each_read_a_shard_once(image_bag: Path) -> None:
    from vae_ros.core.data import make_loader

    dataset = SplitDataset(BagSource(image_bag, "/camera/image_raw"), IMAGE_32, "train", val_percent=25.0,
                           shuffle=True, shuffle_buffer=4)

    def keys(workers: int) -> list[str]:
        return sorted(_key(s.numpy()) for batch in make_loader(dataset, 8, workers) for s in batch)

    single = keys(0)
    assert keys(2) == single and len(single) == len(set(single))

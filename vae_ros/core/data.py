"""Datasets from rosbag2 topics (MCAP or sqlite3, read with rosbags) and image folders, streamed from disk.

Over 500 lines: the bag and image-folder sources share the streaming cache and the split.

Every sample goes through the same decode + preprocess path as live inference: bag messages through
vae_ros.conversions.msg_to_model_input, image files through cv2.imread + core.preprocess.preprocess_image.
Nothing here imports rclpy (conversions is imported lazily, and it never imports rclpy itself).

Memory: sources are read one message at a time, never all at once, so a bag larger than memory works.
SplitDataset adds, for speed on small data, a RAM cache of the preprocessed samples of its split: filled
during the first pass, kept only when the whole split fits under `cache_bytes` (it is dropped, and every
epoch streams from disk again, as soon as it would not), and only in the main process (num_workers = 0).
The cache is one tensor (N, *input_shape); training indexes its batches from it (epoch_order gives the rows in
the order a pass would yield them, so the batches are the same), on the GPU when it fits (core.train_speed).
Shuffling uses a bounded shuffle buffer, so at most `shuffle_buffer` samples are held while streaming.

Split: a sample belongs to the validation set when a stable hash of its key (the message's index on its
topic, or the image file's path relative to the folder) falls below val_percent; the split is the same
across epochs, runs and machines, and does not depend on the seed. Messages or files that fail to decode
(InputError) are skipped and counted, never fatal.
"""

from __future__ import annotations

import hashlib
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from vae_ros.core.config import ModelConfig, ScanSpec
from vae_ros.core.errors import DataError, InputError
from vae_ros.core.files import check_bag_path
from vae_ros.core.preprocess import preprocess_image, read_image_file  # noqa: F401  (re-exported)

LOG = logging.getLogger(__name__)

# Message types a bag topic may hold, and the modality each one feeds.
MSGTYPE_MODALITY: dict[str, str] = {
    "sensor_msgs/msg/Image": "image",
    "sensor_msgs/msg/CompressedImage": "image",
    "sensor_msgs/msg/LaserScan": "scan",
    "sensor_msgs/msg/PointCloud2": "pointcloud",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SPLITS = ("train", "val", "all")
DEFAULT_CACHE_BYTES = 2 * 1024**3
DEFAULT_SHUFFLE_BUFFER = 1024
_Item = TypeVar("_Item")


@dataclass
class DecodeStats:
    """What one pass over a source saw: items looked at, samples produced, items skipped (and why)."""

    seen: int = 0
    decoded: int = 0
    skipped: int = 0
    first_error: str = ""

    def skip(self, key: str, err: Exception) -> None:
        self.skipped += 1
        if not self.first_error:
            self.first_error = f"{key}: {err}"

    def to_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "decoded": self.decoded, "skipped": self.skipped,
                "first_error": self.first_error}


def split_of(key: str, val_percent: float) -> str:
    """'val' or 'train' for a sample key: hash(key) % 10000 < val_percent * 100; stable everywhere."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return "val" if int.from_bytes(digest, "big") % 10000 < round(val_percent * 100) else "train"


def _selector(split: str, val_percent: float) -> Callable[[str], bool] | None:
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "all":
        return None
    if not 0.0 <= val_percent <= 100.0:
        raise DataError(f"val_percent must be in [0, 100], got {val_percent}")
    return lambda key: split_of(key, val_percent) == split


class DataSource(ABC):
    """A sequence of raw items (bag messages or image files) in a fixed order, decoded on demand."""

    @property
    @abstractmethod
    def modality(self) -> str:
        """The model modality this source feeds: 'image', 'scan' or 'pointcloud'."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of raw items (messages on the topic, image files), decodable or not."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-able description for the training summary."""

    @abstractmethod
    def samples(self, config: ModelConfig, select: Callable[[str], bool] | None = None,
                stats: DecodeStats | None = None, shard: tuple[int, int] = (0, 1),
                ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (item index, preprocessed sample shaped config.input_shape) in source order, streaming.

        select(key) picks items before they are decoded (split); shard = (k, n) keeps items with
        index % n == k (data-loader workers). Undecodable items are counted in stats and skipped;
        DataError when a pass sees items but none of them decodes.
        """

    def check_modality(self, config: ModelConfig) -> None:
        """DataError when this source cannot feed a model of config.modality."""
        if self.modality != config.modality:
            raise DataError(f"{self.label()} holds {self.modality} data, but the model's modality is "
                            f"{config.modality!r}")

    def label(self) -> str:
        return str(self.describe())


class BagSource(DataSource):
    """One topic of a rosbag2 recording (a bag folder, or a single .mcap / .db3 file).

    Opening checks the path, the topic and its type at once, so mistakes surface before any training.
    Bags without embedded message definitions are read with rosbags' ROS 2 typestore.
    """

    def __init__(self, path: str | Path, topic: str) -> None:
        self.path = Path(path)
        wanted = topic if topic.startswith("/") else "/" + topic
        if not self.path.exists():
            raise DataError(f"bag {self.path} does not exist")
        check_bag_path(self.path)
        with self._reader() as reader:
            topics = {name: info.msgtype for name, info in reader.topics.items()}
            matches = [name for name in topics if name == topic or name == wanted]
            if not matches:
                listing = ", ".join(f"{name} ({msgtype})" for name, msgtype in sorted(topics.items()))
                raise DataError(f"bag {self.path} has no topic {topic!r}; its topics are: "
                                f"{listing or 'none'}")
            self.topic = matches[0]
            msgtype = topics[self.topic]
            if msgtype is None:
                raise DataError(f"topic {self.topic} in {self.path} mixes several message types")
            if msgtype not in MSGTYPE_MODALITY:
                raise DataError(f"topic {self.topic} in {self.path} holds {msgtype}; vae_ros trains on "
                                f"{', '.join(sorted(MSGTYPE_MODALITY))}")
            self.msgtype = msgtype
            self._count = sum(c.msgcount for c in reader.connections if c.topic == self.topic)

    @contextmanager
    def _reader(self) -> Iterator[Any]:
        """An open rosbags AnyReader on the bag; open failures become one DataError line."""
        from rosbags.highlevel import AnyReader, AnyReaderError
        from rosbags.rosbag2 import ReaderError
        from rosbags.typesys import Stores, get_typestore

        try:
            reader = AnyReader([self.path], default_typestore=get_typestore(Stores.LATEST))
            reader.open()
        except (AnyReaderError, ReaderError) as err:
            raise DataError(f"cannot read bag {self.path}: {err} (a bag left by a killed recorder is made "
                            f"readable by `vae-ros repair {self.path}`)") from err
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"cannot read bag {self.path}: {err}") from err
        try:
            yield reader
        finally:
            reader.close()

    @property
    def modality(self) -> str:
        return MSGTYPE_MODALITY[self.msgtype]

    def __len__(self) -> int:
        return self._count

    def describe(self) -> dict[str, Any]:
        return {"kind": "bag", "path": str(self.path.resolve()), "topic": self.topic, "msgtype": self.msgtype,
                "messages": self._count}

    def label(self) -> str:
        return f"topic {self.topic} of {self.path} ({self.msgtype})"

    def messages(self) -> Iterator[tuple[int, Any]]:
        """Yield (index, deserialised message) for the topic in time order; corrupt CDR is skipped."""
        for index, _stamp, msg in self._iter(None, None, (0, 1), deserialise=True):
            yield index, msg

    def first_message(self) -> Any:
        """The first message on the topic that deserialises (to infer input specs from, e.g. scans)."""
        for _index, msg in self.messages():
            return msg
        raise DataError(f"{self.label()} holds no readable message")

    def _iter(self, select: Callable[[str], bool] | None, stats: DecodeStats | None,
              shard: tuple[int, int], deserialise: bool) -> Iterator[tuple[int, int, Any]]:
        from rosbags.highlevel import AnyReaderError

        worker, workers = shard
        with self._reader() as reader:
            connections = [c for c in reader.connections if c.topic == self.topic]
            messages = self._read(reader.messages(connections=connections))
            for index, (connection, stamp, raw) in enumerate(messages):
                if index % workers != worker or (select is not None and not select(str(index))):
                    continue
                if stats is not None:
                    stats.seen += 1
                if not deserialise:
                    yield index, stamp, raw
                    continue
                try:
                    msg = reader.deserialize(raw, connection.msgtype)
                except AnyReaderError as err:
                    if stats is not None:
                        stats.skip(f"message {index}", InputError(f"corrupt CDR: {err}"))
                    continue
                yield index, stamp, msg

    def _read(self, messages: Iterator[Any]) -> Iterator[Any]:
        """The reader's messages; a damaged file met while reading (a corrupt sqlite3 page, a broken MCAP
        chunk) becomes one DataError line instead of the storage library's traceback."""
        errors = _storage_errors()
        count = 0
        while True:
            try:
                item = next(messages)
            except StopIteration:
                return
            except errors as err:
                raise DataError(f"bag {self.path} is damaged: reading message {count + 1} of {self.topic} failed "
                                f"({type(err).__name__}: {err})") from err
            count += 1
            yield item

    def samples(self, config: ModelConfig, select: Callable[[str], bool] | None = None,
                stats: DecodeStats | None = None, shard: tuple[int, int] = (0, 1),
                ) -> Iterator[tuple[int, np.ndarray]]:
        from vae_ros.core.conversions.model_input import msg_to_model_input

        self.check_modality(config)
        stats = stats if stats is not None else DecodeStats()
        for index, _stamp, msg in self._iter(select, stats, shard, deserialise=True):
            try:
                sample = msg_to_model_input(msg, config)
            except InputError as err:
                stats.skip(f"message {index}", err)
                continue
            stats.decoded += 1
            yield index, sample
        _check_any_decoded(stats, self.label())


def _storage_errors() -> tuple[type[BaseException], ...]:
    """What rosbags' storage back-ends raise on a damaged file: its own errors, sqlite3's (apsw's where
    rosbags uses apsw), struct/zstd/lz4 errors inside MCAP chunks, and plain I/O errors."""
    import sqlite3
    import struct

    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag2 import ReaderError

    errors: list[type[BaseException]] = [AnyReaderError, ReaderError, sqlite3.Error, struct.error, OSError,
                                         ValueError, KeyError, IndexError, EOFError]
    try:
        import apsw

        errors.append(apsw.Error)
    except ImportError:
        pass
    return tuple(errors)


class ImageFolderSource(DataSource):
    """Every .png/.jpg/.jpeg/.bmp file below a folder (recursively), in sorted relative-path order."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise DataError(f"image folder {self.directory} does not exist or is not a folder")
        self.files = sorted((p for p in self.directory.rglob("*")
                             if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                            key=lambda p: p.relative_to(self.directory).as_posix())
        if not self.files:
            raise DataError(f"image folder {self.directory} holds no {'/'.join(IMAGE_SUFFIXES)} files")

    @property
    def modality(self) -> str:
        return "image"

    def __len__(self) -> int:
        return len(self.files)

    def describe(self) -> dict[str, Any]:
        return {"kind": "images", "path": str(self.directory.resolve()), "files": len(self.files)}

    def label(self) -> str:
        return f"image folder {self.directory}"

    def samples(self, config: ModelConfig, select: Callable[[str], bool] | None = None,
                stats: DecodeStats | None = None, shard: tuple[int, int] = (0, 1),
                ) -> Iterator[tuple[int, np.ndarray]]:
        self.check_modality(config)
        stats = stats if stats is not None else DecodeStats()
        worker, workers = shard
        for index, path in enumerate(self.files):
            key = path.relative_to(self.directory).as_posix()
            if index % workers != worker or (select is not None and not select(key)):
                continue
            stats.seen += 1
            try:
                sample = preprocess_image(read_image_file(path), config.image_spec)
            except InputError as err:
                stats.skip(key, err)
                continue
            stats.decoded += 1
            yield index, sample
        _check_any_decoded(stats, self.label())


class ArraySource(DataSource):
    """Preprocessed samples held in memory, (N, *input_shape) float32: synthetic data for checks that must run
    without a bag reader or OpenCV (scripts/gpu_check.py, the GPU tests). Keys are the sample indices."""

    def __init__(self, samples: np.ndarray, modality: str = "image") -> None:
        self.array = np.asarray(samples, dtype=np.float32)
        if self.array.ndim < 2 or len(self.array) == 0:
            raise DataError(f"an ArraySource needs samples shaped (N, *input_shape), got {self.array.shape}")
        self._modality = modality

    @property
    def modality(self) -> str:
        return self._modality

    def __len__(self) -> int:
        return len(self.array)

    def describe(self) -> dict[str, Any]:
        return {"kind": "arrays", "shape": list(self.array.shape)}

    def samples(self, config: ModelConfig, select: Callable[[str], bool] | None = None,
                stats: DecodeStats | None = None, shard: tuple[int, int] = (0, 1),
                ) -> Iterator[tuple[int, np.ndarray]]:
        self.check_modality(config)
        if tuple(self.array.shape[1:]) != tuple(config.input_shape):
            raise DataError(f"the samples are shaped {self.array.shape[1:]}, the model takes {config.input_shape}")
        stats = stats if stats is not None else DecodeStats()
        worker, workers = shard
        for index, sample in enumerate(self.array):
            if index % workers != worker or (select is not None and not select(str(index))):
                continue
            stats.seen += 1
            stats.decoded += 1
            yield index, sample.copy()


def smooth_images(count: int, channels: int = 3, size: int = 32, seed: int = 0) -> np.ndarray:
    """(count, channels, size, size) float32 blocky random images in [0, 1] (8x8-pixel blocks, size % 8 == 0)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((count, channels, size // 8, size // 8), dtype=np.float32)
    return np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3)


def _check_any_decoded(stats: DecodeStats, label: str) -> None:
    """A pass that saw items but could decode none of them is a bad source, not a few bad messages."""
    if stats.seen and not stats.decoded:
        raise DataError(f"none of the {stats.seen} items of {label} could be decoded (first: {stats.first_error})")


def open_source(bag: str | None = None, topic: str | None = None, images: str | None = None) -> DataSource:
    """The data source of the CLI's `--bag PATH --topic NAME` or `--images DIR` (exactly one of them)."""
    if images and (bag or topic):
        raise DataError("give either --images DIR or --bag PATH --topic NAME, not both")
    if images:
        return ImageFolderSource(images)
    if bag and topic:
        return BagSource(bag, topic)
    if bag:
        raise DataError("--bag needs --topic NAME (the topic to train on)")
    if topic:
        raise DataError("--topic needs --bag PATH")
    raise DataError("no data: give --bag PATH --topic NAME or --images DIR")


@dataclass
class StampedReadings:
    """What one topic of a bag gave in one pass: converted values with their header stamps, and the rejected."""

    stamps: np.ndarray  # (N,) int64 header stamps, ns, in bag order
    values: list[Any]
    rejected: int = 0


def read_stamped(source: BagSource, converters: dict[str, Callable[[Any], Any]], progress: bool = False,
                 ) -> dict[str, StampedReadings]:
    """One pass over `source`'s bag reading every message of the topics in `converters` (bag topic names):
    each message deserialised and converted, kept with its header stamp, for pairing topics by stamp. A message
    that does not deserialise or whose converter raises InputError is counted as rejected, never fatal."""
    import sys

    from rosbags.highlevel import AnyReaderError
    from tqdm import tqdm

    from vae_ros.core.conversions.common import stamp_ns

    stamps: dict[str, list[int]] = {topic: [] for topic in converters}
    values: dict[str, list[Any]] = {topic: [] for topic in converters}
    rejected = dict.fromkeys(converters, 0)
    with source._reader() as reader:
        connections = [c for c in reader.connections if c.topic in converters]
        total = sum(c.msgcount for c in connections)
        messages = source._read(reader.messages(connections=connections))
        for connection, _stamp, raw in tqdm(messages, total=total, desc=f"read {source.path.name}", unit="msg",
                                            disable=not progress, file=sys.stderr, leave=False):
            topic = connection.topic
            try:
                msg = reader.deserialize(raw, connection.msgtype)
                value = converters[topic](msg)
            except (AnyReaderError, InputError):
                rejected[topic] += 1
                continue
            values[topic].append(value)
            stamps[topic].append(stamp_ns(msg.header.stamp))
    return {topic: StampedReadings(np.asarray(stamps[topic], dtype=np.int64), values[topic], rejected[topic])
            for topic in converters}


def nearest_stamps(reference_ns: np.ndarray, query_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query stamp (ns), the index into `reference_ns` (any order) of the nearest stamp and the gap
    to it in seconds -> (index (Q,), gap_s (Q,)). `reference_ns` must not be empty."""
    reference = np.asarray(reference_ns, dtype=np.int64)
    query = np.asarray(query_ns, dtype=np.int64)
    if reference.size == 0:
        raise DataError("no stamps to pair with")
    order = np.argsort(reference, kind="stable")
    ordered = reference[order]
    right = np.clip(np.searchsorted(ordered, query), 0, len(ordered) - 1)
    left = np.clip(right - 1, 0, len(ordered) - 1)
    nearest = np.where(np.abs(ordered[left] - query) < np.abs(ordered[right] - query), left, right)
    return order[nearest], np.abs(ordered[nearest] - query) / 1e9


def scan_spec_from_message(msg: Any, beams: int | None = None) -> ScanSpec:
    """A ScanSpec that matches a LaserScan's field of view and range_max.

    Each beam covers one increment centred on its angle, so the span is n * |angle_increment| starting
    half an increment before the first beam: with as many model beams as scan beams, every scan beam sits
    at the centre of its own model bin (beams on bin edges would be split by rounding). A span within half
    an increment of a full turn is snapped to exactly 2*pi, so the model wraps. beams defaults to the
    scan's beam count rounded to a multiple of 8 (the model's requirement).
    """
    count = len(msg.ranges)
    increment = float(msg.angle_increment)
    first = float(msg.angle_min)
    if count == 0 or not (math.isfinite(increment) and math.isfinite(first)) or increment == 0.0:
        raise DataError("the first LaserScan has no ranges or no valid angle_increment; cannot infer a scan spec")
    lowest = first if increment > 0 else first + increment * (count - 1)
    angle_min = lowest - abs(increment) / 2
    span = abs(increment) * count
    if abs(span - 2 * math.pi) <= abs(increment) / 2:
        span = 2 * math.pi
    if beams is None:
        beams = max(16, int(round(count / 8)) * 8)
    return ScanSpec(beams=beams, angle_min=angle_min, angle_max=angle_min + span,
                    range_max=float(msg.range_max))


def _shuffle_buffer(items: Iterable[_Item], size: int, rng: np.random.Generator,
                    on_hold: Callable[[int], None]) -> Iterator[_Item]:
    """Approximate shuffle holding at most `size` items: emit a random held item as each new one arrives."""
    buffer: list[_Item] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            on_hold(len(buffer))
            continue
        slot = int(rng.integers(size))
        yield buffer[slot]
        buffer[slot] = item
    order = rng.permutation(len(buffer))
    for slot in order:
        yield buffer[slot]


class SplitDataset(IterableDataset):
    """One split of a source as a torch IterableDataset of float32 samples (C, ...), streamed from disk.

    shuffle: bounded shuffle buffer, seeded by (seed, epoch): call set_epoch(epoch) before each pass.
    The order depends only on (source, split, seed, epoch, shuffle_buffer, num_workers, process), not on
    whether the RAM cache was used, so an interrupted and resumed training sees the same batches.
    process: (rank, processes) under distributed training: this process reads only its share of the items
    (index % (processes x workers)), as a DistributedSampler would give it; (0, 1) reads everything.
    """

    def __init__(self, source: DataSource, config: ModelConfig, split: str = "train",
                 val_percent: float = 10.0, shuffle: bool = False,
                 shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER, seed: int = 0,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, process: tuple[int, int] = (0, 1)) -> None:
        super().__init__()
        source.check_modality(config)
        self._select = _selector(split, val_percent)
        if shuffle_buffer < 1:
            raise DataError(f"shuffle_buffer must be >= 1, got {shuffle_buffer}")
        self.source, self.config, self.split = source, config, split
        self.shuffle, self.shuffle_buffer, self.seed = shuffle, shuffle_buffer, seed
        self.cache_bytes = cache_bytes
        self.process = process
        self.epoch = 0
        self.stats = DecodeStats()  # of the last complete pass over the disk
        self.peak_held = 0  # most samples held at once by the shuffle buffer (streaming check)
        self._cache: torch.Tensor | None = None  # (N, *input_shape) float32, complete, in source order
        self._cache_failed = cache_bytes <= 0
        self._warned = False
        self.samples_last_pass: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def cached(self) -> bool:
        return self._cache is not None

    @property
    def cache(self) -> torch.Tensor | None:
        """The whole split decoded, (N, *input_shape) float32 in source order, once a complete pass has filled the
        cache (None before, or when the split does not fit it)."""
        return self._cache

    def epoch_order(self) -> np.ndarray | None:
        """The rows of `cache` in the order this epoch's pass yields them (None when nothing is cached): the same
        shuffle, drawn over row numbers instead of samples, so batches indexed from the cache are the batches
        iterating this dataset gives."""
        if self._cache is None:
            return None
        rows = range(self._cache.shape[0])
        if not self.shuffle:
            return np.arange(len(rows), dtype=np.int64)
        rank, processes = self.process
        rng = np.random.default_rng([self.seed, self.epoch, rank])  # __iter__'s rng in the main process
        return np.fromiter(_shuffle_buffer(rows, self.shuffle_buffer, rng, self._note_hold), dtype=np.int64,
                           count=len(rows))

    def _from_disk(self, shard: tuple[int, int], use_cache: bool) -> Iterator[np.ndarray]:
        stats = DecodeStats()
        filling: list[np.ndarray] | None = [] if use_cache and not self._cache_failed else None
        held_bytes = 0
        count = 0
        for _index, sample in self.source.samples(self.config, self._select, stats, shard):
            count += 1
            if filling is not None:
                held_bytes += sample.nbytes
                if held_bytes > self.cache_bytes:
                    filling, self._cache_failed = None, True
                    LOG.info("%s does not fit the %.0f MB sample cache; streaming from disk every epoch",
                             self.source.label(), self.cache_bytes / 2**20)
                else:
                    filling.append(sample)
            yield sample
        # Only a complete pass gets here (a consumer that stops early closes the generator before).
        self.stats, self.samples_last_pass = stats, count
        if stats.skipped and not self._warned:  # once, not every epoch
            self._warned = True
            LOG.warning("skipped %d of %d items of %s that could not be decoded (first: %s)",
                        stats.skipped, stats.seen, self.source.label(), stats.first_error)
        if filling is not None and filling:
            from vae_ros.core.train_speed import stack_samples

            self._cache = stack_samples(filling)

    def __iter__(self) -> Iterator[np.ndarray]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, processes = self.process
        shard = (rank * workers + worker, processes * workers)
        if self._cache is not None and info is None:
            items: Iterable[np.ndarray] = iter(self._cache.numpy())  # rows, as views
        else:
            items = self._from_disk(shard, use_cache=info is None)
        if not self.shuffle:
            yield from items
            return
        rng = np.random.default_rng([self.seed, self.epoch, shard[0]])
        yield from _shuffle_buffer(items, self.shuffle_buffer, rng, self._note_hold)

    def _note_hold(self, held: int) -> None:
        self.peak_held = max(self.peak_held, held)


def iter_samples(source: DataSource, config: ModelConfig, limit: int | None = None, split: str = "train",
                 val_percent: float = 10.0) -> Iterator[np.ndarray]:
    """Preprocessed samples (config.input_shape float32) of a split of a source, in source order, streamed.

    For INT8 calibration and evaluation: the exact inputs training and the live encoder see.
    """
    source.check_modality(config)
    select = _selector(split, val_percent)
    stats = DecodeStats()
    if limit is not None and limit <= 0:
        return
    produced = 0
    for _index, sample in source.samples(config, select, stats):
        yield sample
        produced += 1
        if limit is not None and produced >= limit:
            return


def batched(samples: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Stack consecutive samples into (B, ...) float32 batches; the last one may be smaller."""
    batch: list[np.ndarray] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def make_loader(dataset: SplitDataset, batch_size: int, num_workers: int = 0,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader over a SplitDataset; workers each read their shard of the source (index % workers).
    pin_memory: batches in page-locked memory, so a copy to a GPU does not block (training on CUDA)."""
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                       collate_fn=_collate, pin_memory=pin_memory)


def _collate(samples: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(samples))  # (B, C, ...)

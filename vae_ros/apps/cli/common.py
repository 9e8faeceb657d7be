"""What the `vae-ros` commands share: argument types, the data arguments, log lines, an output folder's cleanup."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated integers >= 1, e.g. 32,64,128."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers")
    return values


def add_data_arguments(parser: argparse.ArgumentParser, several_bags: bool = False,
                       two_topics: bool = False) -> None:
    """--bag/--topic/--images, shared with `vae-ros eval`; `several_bags`: --bag may repeat (control training);
    `two_topics`: --topic may be given twice (a list then: a camera and a LiDAR topic train a fused model)."""
    data = parser.add_argument_group("data (give --bag and --topic, or --images)")
    if several_bags:
        data.add_argument("--bag", metavar="PATH", action="append",
                          help="rosbag2 folder, or a single .mcap / .db3 file; repeat it with --pose-topic to "
                               "train on several recordings (one world each)")
    else:
        data.add_argument("--bag", metavar="PATH", help="rosbag2 folder, or a single .mcap / .db3 file")
    if two_topics:
        data.add_argument("--topic", metavar="NAME", action="append",
                          help="topic to read: sensor_msgs/Image, CompressedImage, LaserScan or PointCloud2; "
                               "give it twice, a camera topic and a LaserScan topic, to train a fused model")
    else:
        data.add_argument("--topic", metavar="NAME",
                          help="topic to read: sensor_msgs/Image, CompressedImage, LaserScan or PointCloud2")
    data.add_argument("--images", metavar="DIR", help="folder of .png/.jpg/.jpeg/.bmp images (recursive)")


def add_speed_arguments(group: argparse.ArgumentParser | argparse._ArgumentGroup, conv: bool = True) -> None:
    """--precision, and for models with convolutions --channels-last and --compile: named and explained once for
    `train`, `train-dynamics` and `bench train` (vae_ros.core.train_speed)."""
    from vae_ros.core.train_speed import PRECISION_HELP, PRECISIONS

    group.add_argument("--precision", choices=PRECISIONS, default="fp32", help=PRECISION_HELP)
    if conv:
        group.add_argument("--channels-last", action="store_true",
                           help="models with 2-D convolutions (image, pointcloud) in the channels_last layout "
                                "(faster convolutions on recent GPUs; ignored for scan models)")
        group.add_argument("--compile", action="store_true",
                           help="torch.compile the model (off by default: minutes of compilation first; needs a "
                                "C++ compiler on the CPU, Triton on a GPU)")


class _LineFormatter(logging.Formatter):
    """'vae-ros train: epoch 3/30 ...' for progress, 'vae-ros train: warning: ...' for problems."""

    def __init__(self, command: str, rank: int = 0) -> None:
        super().__init__()
        self.prefix = f"vae-ros {command}: " if rank == 0 else f"vae-ros {command} [rank {rank}]: "

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno <= logging.INFO else record.levelname.lower() + ": "
        return self.prefix + level + record.getMessage()


def setup_logging(command: str, rank: int = 0) -> None:
    """vae_ros log records (e.g. 'skipped 3 undecodable messages') as plain lines on stderr; under torchrun
    the processes other than rank 0 report only warnings and errors, marked with their rank."""
    logger = logging.getLogger("vae_ros")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LineFormatter(command, rank))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
        logger.propagate = False


def remove_if_empty(folder: Path) -> None:
    """Remove folder (and empty folders in it) when nothing was written there."""
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()  # fails, as it should, when something is in it

"""Any sensor message -> the model's input array (the encoder's and the training data's one path).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vae_ros.core.config import ModelConfig
from vae_ros.core.conversions.image import compressed_msg_to_array, image_msg_pixels, image_msg_to_array
from vae_ros.core.conversions.lidar import pointcloud_msg_to_xyz, scan_msg_to_input
from vae_ros.core.errors import InputError
from vae_ros.core.image_header import DEFAULT_MAX_IMAGE_PIXELS
from vae_ros.core.preprocess import preprocess_image, preprocess_pointcloud

# ---------------------------------------------------------------------------------------------------------
# Dispatch: the single path from a sensor message to a model input
# ---------------------------------------------------------------------------------------------------------
_KIND_MODALITY = {"image": "image", "compressed": "image", "scan": "scan", "pointcloud": "pointcloud"}
_KIND_NAMES = {
    "image": "sensor_msgs/Image",
    "compressed": "sensor_msgs/CompressedImage",
    "scan": "sensor_msgs/LaserScan",
    "pointcloud": "sensor_msgs/PointCloud2",
}


def message_kind(msg: Any) -> str:
    """What a message is, from its fields: 'image', 'compressed', 'scan' or 'pointcloud'."""
    if hasattr(msg, "format") and hasattr(msg, "data"):
        return "compressed"
    if hasattr(msg, "ranges") and hasattr(msg, "angle_increment"):
        return "scan"
    if hasattr(msg, "fields") and hasattr(msg, "point_step"):
        return "pointcloud"
    if hasattr(msg, "encoding") and hasattr(msg, "step"):
        return "image"
    raise InputError(
        f"{type(msg).__name__} is not a supported sensor message; expected Image, CompressedImage, "
        "LaserScan or PointCloud2"
    )


def msg_to_model_input(msg: Any, config: ModelConfig,
                       max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Any supported sensor message -> one preprocessed float32 sample shaped config.input_shape.

    The single path used by the encoder node and by training data, so both see identical inputs.
    max_image_pixels bounds what a compressed image may declare (see compressed_msg_to_array).
    """
    kind = _checked_kind(msg, config)
    if kind in ("image", "compressed"):
        return preprocess_image(_image_array(msg, kind, max_image_pixels), config.image_spec)
    if kind == "scan":
        return scan_msg_to_input(msg, config.scan_spec)
    return preprocess_pointcloud(pointcloud_msg_to_xyz(msg), config.pointcloud_spec)


def msg_to_pixels(msg: Any, config: ModelConfig,
                  max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[np.ndarray, str]:
    """An Image or CompressedImage for an image model -> (pixels, channel order) for preprocessing elsewhere (on
    the model's device: vae_ros.core.preprocess_torch), which then swaps channels itself: a raw Image's pixels
    as they are in the message (image_msg_pixels: no host copy, "bgr" for bgr8), a compressed one decoded to
    RGB ("rgb"). The same images msg_to_model_input preprocesses."""
    kind = _checked_kind(msg, config)
    if kind == "image":
        return image_msg_pixels(msg)
    if kind == "compressed":
        return compressed_msg_to_array(msg, max_image_pixels), "rgb"
    raise InputError(f"got a {_KIND_NAMES[kind]}, but only images are preprocessed on the device")


def _checked_kind(msg: Any, config: ModelConfig) -> str:
    kind = message_kind(msg)
    if _KIND_MODALITY[kind] != config.modality:
        raise InputError(f"got a {_KIND_NAMES[kind]}, but the model's modality is {config.modality!r}")
    return kind


def _image_array(msg: Any, kind: str, max_image_pixels: int) -> np.ndarray:
    return image_msg_to_array(msg) if kind == "image" else compressed_msg_to_array(msg, max_image_pixels)

"""Image preprocessing on a torch device (vae_ros.core.preprocess_torch) against the NumPy/OpenCV path, on the CPU;
the same on CUDA where there is one (marked gpu)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from vae_ros.core.backends import create_backend
from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig
from vae_ros.core.conversions.image import image_msg_pixels, image_msg_to_array
from vae_ros.core.errors import ConfigError, InputError
from vae_ros.core.model_dir import save_model_dir
from vae_ros.core.models import build_model
from vae_ros.core.preprocess import preprocess_image, preprocess_on_device
from vae_ros.core.preprocess_torch import DevicePreprocessor, area_weights

# (input H, W) -> (model h, w): the camera case (640x480 to 64x64: 10x and 7.5x), an integer factor, shrinking
# by other factors, growing, and one axis growing while the other shrinks.
SIZES = [((480, 640), (64, 64)), ((128, 128), (64, 64)), ((60, 80), (32, 32)), ((33, 47), (16, 16)),
         ((100, 90), (64, 64)), ((20, 30), (32, 32)), ((100, 20), (32, 32))]
ONE_LEVEL = 1.0 / 255.0 + 1e-6  # integer images: one grey level where OpenCV's sums round the other way
MEAN_U8 = 1e-3  # ... which is rare: the mean difference stays far below a level
FLOAT_TOL = 1e-5


@pytest.mark.parametrize(("size_in", "size_out"), SIZES)
def test_area_weights_are_opencvs_inter_area(size_in: tuple[int, int], size_out: tuple[int, int]) -> None:
    image = np.random.default_rng(0).random((*size_in, 3)).astype(np.float32)
    expected = cv2.resize(image, size_out[::-1], interpolation=cv2.INTER_AREA)
    area_path = size_in[0] >= size_out[0] and size_in[1] >= size_out[1]
    wy, wx = area_weights(size_in[0], size_out[0], area_path), area_weights(size_in[1], size_out[1], area_path)
    ours = np.einsum("hH,HWc,wW->hwc", wy, image.astype(np.float64), wx)
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def _compare(image: np.ndarray, spec: ImageSpec, tol: float, mean_tol: float) -> None:
    expected = preprocess_image(image, spec)  # (C, h, w)
    got = DevicePreprocessor(spec, "cpu")(image)
    assert got.shape == (1, *expected.shape) and got.dtype == torch.float32 and got.device.type == "cpu"
    diff = np.abs(got[0].numpy() - expected)
    assert diff.max() <= tol, f"max {diff.max():.3g}"
    assert diff.mean() <= mean_tol, f"mean {diff.mean():.3g}"


@pytest.mark.parametrize(("size_in", "size_out"), SIZES)
def test_rgb_uint8_matches_the_numpy_path(size_in: tuple[int, int], size_out: tuple[int, int]) -> None:
    image = np.random.default_rng(1).integers(0, 256, (*size_in, 3), dtype=np.uint8)
    _compare(image, ImageSpec(height=size_out[0], width=size_out[1], channels=3), ONE_LEVEL, MEAN_U8)


@pytest.mark.parametrize(("size_in", "size_out"), SIZES[:3] + SIZES[5:6])
def test_mono_and_grey_models_match_the_numpy_path(size_in: tuple[int, int], size_out: tuple[int, int]) -> None:
    rng = np.random.default_rng(2)
    mono = rng.integers(0, 256, size_in, dtype=np.uint8)
    rgb = rng.integers(0, 256, (*size_in, 3), dtype=np.uint8)
    grey_model = ImageSpec(height=size_out[0], width=size_out[1], channels=1)
    rgb_model = ImageSpec(height=size_out[0], width=size_out[1], channels=3)
    _compare(mono, grey_model, ONE_LEVEL, MEAN_U8)  # mono8 into a grey model
    _compare(mono, rgb_model, ONE_LEVEL, MEAN_U8)  # replicated to RGB
    _compare(rgb, grey_model, ONE_LEVEL, MEAN_U8)  # luminance
    rgba = np.concatenate([rgb, rng.integers(0, 256, (*size_in, 1), dtype=np.uint8)], axis=2)
    _compare(rgba, rgb_model, ONE_LEVEL, MEAN_U8)  # alpha dropped


def _message(pixels: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    """A sensor_msgs/Image's fields: (H, W, C) uint8 in the encoding's channel order, rows padded by `pad` bytes."""
    height, width, channels = pixels.shape
    rows = np.zeros((height, width * channels + pad), np.uint8)
    rows[:, : width * channels] = pixels.reshape(height, -1)
    return SimpleNamespace(encoding=encoding, height=height, width=width, step=width * channels + pad,
                           is_bigendian=0, data=rows.reshape(-1))


@pytest.mark.parametrize(("encoding", "pad"), [("bgr8", 0), ("bgr8", 12), ("rgb8", 0), ("rgba8", 0), ("bgra8", 0),
                                                ("bgra8", 8), ("mono8", 3)])
def test_a_messages_own_pixels_and_channel_order_give_the_numpy_paths_input(encoding: str, pad: int) -> None:
    """What encoder_node hands the device path: the message's bytes as they are, swapped and stripped there."""
    channels = {"bgr8": 3, "rgb8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}[encoding]
    pixels = np.random.default_rng(8).integers(0, 256, (120, 160, channels), dtype=np.uint8)
    msg = _message(pixels, encoding, pad)
    raw, order = image_msg_pixels(msg)
    assert order == {"bgr8": "bgr", "rgb8": "rgb", "rgba8": "rgba", "bgra8": "bgra", "mono8": "mono"}[encoding]
    for spec in (ImageSpec(height=64, width=64, channels=3), ImageSpec(height=32, width=48, channels=1)):
        expected = preprocess_image(image_msg_to_array(msg), spec)
        diff = np.abs(DevicePreprocessor(spec, "cpu")(raw, order)[0].numpy() - expected)
        assert diff.max() <= ONE_LEVEL and diff.mean() <= MEAN_U8, (spec, diff.max(), diff.mean())
    with pytest.raises(InputError, match="channel order"):
        DevicePreprocessor(ImageSpec(height=8, width=8, channels=3), "cpu")(raw, "yuv")


def test_uint16_and_float_images_match_the_numpy_path() -> None:
    rng = np.random.default_rng(3)
    spec = ImageSpec(height=64, width=64, channels=1)
    _compare(rng.integers(0, 65536, (480, 640), dtype=np.uint16), spec, 1.0 / 65535.0 + 1e-6, 1e-5)  # mono16
    depth = rng.random((480, 640)).astype(np.float32) * 1.4 - 0.2  # 32FC1, partly outside [0, 1]: clipped
    _compare(depth, spec, FLOAT_TOL, 1e-6)
    _compare(depth.astype(np.float64), spec, FLOAT_TOL, 1e-6)


def test_an_image_of_the_models_size_is_not_resized_and_matches_exactly() -> None:
    image = np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    spec = ImageSpec(height=64, width=64, channels=3)
    np.testing.assert_array_equal(DevicePreprocessor(spec, "cpu")(image)[0].numpy(), preprocess_image(image, spec))


def test_bad_images_are_refused_as_the_numpy_path_refuses_them() -> None:
    on_device = DevicePreprocessor(ImageSpec(height=16, width=16, channels=3), "cpu")
    for bad in (np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4), np.int64),
                np.full((4, 4), np.nan, np.float32), [[1, 2], [3, 4]]):
        with pytest.raises(InputError):
            on_device(bad)  # type: ignore[arg-type]


def _model(tmp_path: Path, modality: str = "image") -> Path:
    spec = ImageSpec(height=32, width=32, channels=3)
    config = ModelConfig(modality, arch=ArchSpec(latent_dim=4, channels=[8, 16]), image=spec)
    torch.manual_seed(0)
    return save_model_dir(tmp_path / "model", config, build_model(config))


def test_encode_tensor_gives_encodes_latents_and_checks_its_input(tmp_path: Path) -> None:
    backend = create_backend(_model(tmp_path), "torch", "cpu")
    image = np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    x = DevicePreprocessor(backend.config.image_spec, backend.device)(image)  # type: ignore[attr-defined]
    mean, logvar = backend.encode_tensor(x)  # type: ignore[attr-defined]
    ref_mean, ref_logvar = backend.encode(preprocess_image(image, backend.config.image_spec)[None])
    np.testing.assert_allclose(mean, ref_mean, atol=1e-4)
    np.testing.assert_allclose(logvar, ref_logvar, atol=1e-4)
    with pytest.raises(InputError, match="float32 tensor of shape"):
        backend.encode_tensor(x[:, :1])  # type: ignore[attr-defined]


def test_preprocess_choice_auto_is_the_cpu_off_cuda_and_device_needs_torch_and_an_image(tmp_path: Path) -> None:
    model = _model(tmp_path)
    on_torch = create_backend(model, "torch", "cpu")
    assert preprocess_on_device("device", "image", on_torch) is True
    assert preprocess_on_device("auto", "image", on_torch) is False  # torch on the CPU: OpenCV is as fast
    assert preprocess_on_device("cpu", "image", on_torch) is False
    with pytest.raises(ConfigError, match="for image models"):
        preprocess_on_device("device", "scan", on_torch)
    with pytest.raises(ConfigError, match="preprocess must be one of auto, cpu, device"):
        preprocess_on_device("gpu", "image", on_torch)
    onnx_like = type("OnnxBackend", (), {"name": "onnxruntime"})()
    with pytest.raises(ConfigError, match="needs backend torch"):
        preprocess_on_device("device", "image", onnx_like)
    assert preprocess_on_device("auto", "image", onnx_like) is False


@pytest.mark.gpu
def test_on_cuda_the_input_and_latents_match_the_cpu_path(tmp_path: Path) -> None:
    backend = create_backend(_model(tmp_path), "torch", "cuda")
    assert preprocess_on_device("auto", "image", backend) is True
    image = np.random.default_rng(6).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    x = DevicePreprocessor(backend.config.image_spec, backend.device)(image)  # type: ignore[attr-defined]
    assert x.device.type == "cuda"
    expected = preprocess_image(image, backend.config.image_spec)
    diff = np.abs(x[0].cpu().numpy() - expected)
    assert diff.max() <= ONE_LEVEL and diff.mean() <= MEAN_U8
    mean, _ = backend.encode_tensor(x)  # type: ignore[attr-defined]
    ref, _ = create_backend(backend.model_dir, "torch", "cpu").encode(expected[None])
    np.testing.assert_allclose(mean, ref, atol=1e-3)  # cuDNN (TF32 on recent GPUs) against the CPU
    # A message's own bgr8 bytes through the pinned staging buffer, frame after frame (the buffer is reused).
    on_device = DevicePreprocessor(backend.config.image_spec, backend.device)  # type: ignore[attr-defined]
    for seed in range(3):
        frame = np.random.default_rng(10 + seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        msg = _message(frame[:, :, ::-1].copy(), "bgr8")
        got = on_device(*image_msg_pixels(msg))[0].cpu().numpy()
        diff = np.abs(got - preprocess_image(image_msg_to_array(msg), backend.config.image_spec))
        assert diff.max() <= ONE_LEVEL and diff.mean() <= MEAN_U8

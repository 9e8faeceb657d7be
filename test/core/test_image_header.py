"""Declared sizes of PNG and JPEG images, read from their headers without decoding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hostile_inputs import png_header_only

from vae_ros.core.errors import InputError
from vae_ros.core.image_header import check_declared_size, declared_size


@pytest.mark.parametrize("ext", [".png", ".jpg"])
@pytest.mark.parametrize("shape", [(48, 64, 3), (7, 300), (1, 1, 3)])
def test_declared_size_matches_what_opencv_decodes(ext: str, shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    data = cv2.imencode(ext, image)[1].tobytes()
    assert declared_size(data) == (shape[1], shape[0])


def test_progressive_jpeg_and_padded_markers() -> None:
    image = np.zeros((40, 90, 3), np.uint8)
    data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert declared_size(data) == (90, 40)
    padded = data[:2] + b"\xff\xff" + data[2:]  # fill bytes before a marker are legal
    assert declared_size(padded) == (90, 40)


def test_a_png_bomb_is_refused_from_its_header() -> None:
    bomb = png_header_only(32000, 32000)
    assert declared_size(bomb) == (32000, 32000)
    with pytest.raises(InputError, match="32000x32000.*max_image_pixels"):
        check_declared_size(bomb, 4096 * 4096)
    assert check_declared_size(png_header_only(64, 48), 4096 * 4096) == (64, 48)


@pytest.mark.parametrize("data, match", [
    (b"GIF89a" + b"\0" * 40, "neither PNG nor JPEG"),
    (b"\x89PNG\r\n\x1a\n\0\0", "truncated"),
    (b"\xff\xd8\xff\xe0\x00", "truncated"),
    (b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 10, "no frame header"),
    (b"\xff\xd8\x00\x00", "corrupt"),
    (b"\xff\xd8\xff\xe0\x00\x01", "corrupt"),
])
def test_bad_headers_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(InputError, match=match):
        declared_size(data)

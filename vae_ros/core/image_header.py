"""The size a PNG or JPEG declares in its header, read without decoding anything.

A 1 MB PNG can declare 32000 x 32000 pixels and cost gigabytes once decoded; OpenCV has no header-only
API, so the encoder reads the declared size here first and refuses images over its limit
(`max_image_pixels`). Only the PNG IHDR chunk and the JPEG SOFn segment are parsed: a few bytes, O(size)
at worst for a JPEG whose frame header comes late.
"""

from __future__ import annotations

from vae_ros.core.errors import InputError

# Default limit on the pixels a compressed image may declare (4096 x 4096); 0 disables the check.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
# Start-of-frame markers (baseline, progressive, lossless, arithmetic...): C0-CF except DHT, JPG and DAC.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length: TEM, RST0-7, SOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8})


def image_format(data: bytes) -> str | None:
    """'png' or 'jpeg' from the first bytes, or None for anything else."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(_JPEG_SOI):
        return "jpeg"
    return None


def declared_size(data: bytes) -> tuple[int, int]:
    """(width, height) declared by a PNG or JPEG; InputError for other data or a truncated header."""
    kind = image_format(data)
    if kind == "png":
        return _png_size(data)
    if kind == "jpeg":
        return _jpeg_size(data)
    raise InputError("compressed image is neither PNG nor JPEG (no PNG signature or JPEG start-of-image marker)")


def _png_size(data: bytes) -> tuple[int, int]:
    # Signature (8), then the first chunk, which must be IHDR: length (4), type (4), width (4), height (4).
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise InputError("PNG is truncated or does not start with an IHDR chunk")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos, end = 2, len(data)
    while pos < end:
        if data[pos] != 0xFF:
            raise InputError(f"JPEG is corrupt: expected a marker at byte {pos}")
        while pos < end and data[pos] == 0xFF:  # markers may be padded with fill bytes
            pos += 1
        if pos >= end:
            break
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        if pos + 2 > end:
            break
        length = int.from_bytes(data[pos:pos + 2], "big")  # includes its own two bytes
        if length < 2:
            raise InputError(f"JPEG is corrupt: segment length {length} at byte {pos}")
        if marker in _JPEG_SOF:
            if pos + 7 > end:
                break
            height = int.from_bytes(data[pos + 3:pos + 5], "big")
            width = int.from_bytes(data[pos + 5:pos + 7], "big")
            if height == 0:  # the height would come later in a DNL segment; OpenCV does not support it
                raise InputError("JPEG declares no height in its frame header (DNL); not supported")
            return width, height
        pos += length
    raise InputError("JPEG is truncated or has no frame header (SOFn) before its image data")


def check_declared_size(data: bytes, max_pixels: int, what: str = "compressed image") -> tuple[int, int]:
    """(width, height) of a PNG/JPEG, or InputError when it declares more than max_pixels pixels.

    Callers skip this call when the limit is disabled (max_image_pixels 0); then other formats OpenCV
    reads (TIFF, WebP) pass too, unchecked.
    """
    try:
        width, height = declared_size(data)
    except InputError as err:
        raise InputError(f"{what} could not be decoded: {err}") from err
    if width == 0 or height == 0:
        raise InputError(f"{what} declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise InputError(
            f"{what} declares {width}x{height} = {width * height} pixels, more than max_image_pixels "
            f"({max_pixels}); refused before decoding"
        )
    return width, height

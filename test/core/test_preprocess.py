"""The shared preprocessing: image scaling/channels/resize, the LaserScan rule, the range-image projection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_ros.core.config import ImageSpec, PointCloudSpec, ScanSpec
from vae_ros.core.errors import InputError
from vae_ros.core.preprocess import preprocess_image, preprocess_pointcloud, preprocess_scan


# -- images -------------------------------------------------------------------------------------------------
def test_image_dtypes_are_scaled_to_unit_range() -> None:
    spec = ImageSpec(height=16, width=16, channels=3)
    u8 = np.full((16, 16, 3), 255, np.uint8)
    u8[0, 0] = (0, 51, 102)
    out = preprocess_image(u8, spec)
    assert out.dtype == np.float32 and out.shape == (3, 16, 16)
    np.testing.assert_allclose(out[:, 0, 0], [0.0, 0.2, 0.4], atol=1e-6)
    assert out[:, 1, 1].tolist() == [1.0, 1.0, 1.0]
    u16 = np.full((16, 16), 65535, np.uint16)
    u16[0, 0] = 0
    out16 = preprocess_image(u16, spec)
    assert out16[0, 0, 0] == 0.0 and out16[0, 1, 1] == pytest.approx(1.0)
    floats = np.full((16, 16, 3), 1.7, np.float64)
    floats[0, 0] = -0.5
    outf = preprocess_image(floats, spec)
    assert outf.dtype == np.float32 and outf.max() == 1.0 and outf.min() == 0.0  # clipped


def test_rgb_order_is_kept_and_alpha_dropped() -> None:
    spec = ImageSpec(height=16, width=16, channels=3)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[..., 3] = 7  # alpha must not leak into any channel
    out = preprocess_image(rgba, spec)
    assert out.shape == (3, 16, 16)
    assert out[0].min() == 1.0 and out[1].max() == 0.0 and out[2].max() == 0.0


def test_grey_and_rgb_conversions() -> None:
    grey = np.full((16, 16), 128, np.uint8)
    rgb_out = preprocess_image(grey, ImageSpec(16, 16, 3))
    assert rgb_out.shape == (3, 16, 16)
    np.testing.assert_array_equal(rgb_out[0], rgb_out[2])
    assert rgb_out[1, 0, 0] == pytest.approx(128 / 255)
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 1] = 255  # pure green -> luminance 0.587 (BT.601)
    grey_out = preprocess_image(rgb, ImageSpec(16, 16, 1))
    assert grey_out.shape == (1, 16, 16)
    assert grey_out[0, 3, 3] == pytest.approx(0.587, abs=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.float16])
def test_resize_to_the_model_size(dtype: type) -> None:
    spec = ImageSpec(height=64, width=128, channels=3)
    image = np.zeros((480, 640, 3), dtype)
    image[:240] = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0  # top half white
    out = preprocess_image(image, spec)
    assert out.shape == (3, 64, 128) and out.dtype == np.float32
    assert out[:, :30].min() == pytest.approx(1.0, abs=1e-3) and out[:, 34:].max() == 0.0


def test_image_rejections() -> None:
    spec = ImageSpec(16, 16, 3)
    bad = np.zeros((16, 16, 3), np.float32)
    bad[2, 2, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        preprocess_image(bad, spec)
    with pytest.raises(InputError, match="channels"):
        preprocess_image(np.zeros((16, 16, 2), np.uint8), spec)
    with pytest.raises(InputError, match="dtype"):
        preprocess_image(np.zeros((16, 16, 3), np.int32), spec)
    with pytest.raises(InputError, match="shape"):
        preprocess_image(np.zeros((0, 16, 3), np.uint8), spec)
    with pytest.raises(InputError, match="NumPy array"):
        preprocess_image([[0, 1]], spec)  # type: ignore[arg-type]


# -- scans ---------------------------------------------------------------------------------------------------
FULL = ScanSpec(beams=16, angle_min=-math.pi, angle_max=math.pi, range_max=10.0)


def test_a_scan_matching_the_model_maps_one_to_one() -> None:
    # 360 beams exactly on the bins of a 360-beam model: every beam in its own bin (no rounding mix-ups).
    spec = ScanSpec(beams=360, range_max=10.0)
    ranges = np.random.default_rng(0).uniform(0.5, 9.5, 360).astype(np.float32)
    out = preprocess_scan(ranges, -math.pi, 2 * math.pi / 360, 0.1, 10.0, spec)
    assert out.shape == (2, 360) and out.dtype == np.float32
    np.testing.assert_allclose(out[0] * 10.0, ranges, rtol=1e-6)
    assert out[1].min() == 1.0


def test_a_denser_scan_pools_by_minimum() -> None:
    ranges = np.arange(64, dtype=np.float32) % 4 + 2.0  # 4 beams per bin: 2, 3, 4, 5
    out = preprocess_scan(ranges, -math.pi, 2 * math.pi / 64, 0.1, 10.0, FULL)
    np.testing.assert_allclose(out[0], 0.2)
    assert out[1].min() == 1.0


def test_a_sparser_scan_borrows_the_nearest_beam_within_one_increment() -> None:
    ranges = np.arange(8, dtype=np.float32) + 1.0  # 8 beams for 16 bins: every other bin is empty
    out = preprocess_scan(ranges, -math.pi, 2 * math.pi / 8, 0.1, 10.0, FULL)
    assert out[1].min() == 1.0
    # Beam i (range i + 1) sits on the edge of bin 2i. Bin 1 (centre -pi + 1.5 bins) has no beam; the
    # nearest is beam 1 at -pi + 2 bins (half a bin away, within one increment), range 2 m.
    np.testing.assert_allclose(out[0, ::2] * 10.0, ranges)
    np.testing.assert_allclose(out[0, 1::2] * 10.0, np.roll(ranges, -1))
    # A scan with a gap wider than its increment leaves the gap invalid.
    half = np.full(4, 5.0, np.float32)  # 4 beams covering only [-pi, -pi/2)
    gappy = preprocess_scan(half, -math.pi, 2 * math.pi / 16, 0.1, 10.0, FULL)
    assert gappy[1, :4].tolist() == [1.0] * 4
    assert gappy[1, 5:15].max() == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 0.05, 12.0, 11.0])
def test_invalid_beams_read_one_with_mask_zero(bad: float) -> None:
    ranges = np.full(16, 4.0, np.float32)
    ranges[5] = bad
    # Message limits 0.1..12 m; the model's range_max is 10 m, so 11 m is out of range too.
    out = preprocess_scan(ranges, -math.pi, 2 * math.pi / 16, 0.1, 12.0, FULL)
    assert out[0, 5] == 1.0 and out[1, 5] == 0.0
    assert out[1].sum() == 15.0
    np.testing.assert_allclose(np.delete(out[0], 5), 0.4)


def test_scan_angles_wrap_around_for_a_full_turn_model() -> None:
    # A scan from 0 to 2pi: its second half lands at the start of a model that runs from -pi.
    ranges = np.arange(16, dtype=np.float32) + 1.0
    out = preprocess_scan(ranges, 0.0, 2 * math.pi / 16, 0.1, 20.0, ScanSpec(16, range_max=20.0))
    np.testing.assert_allclose(out[0] * 20.0, np.roll(ranges, 8))
    # Angles given in a different turn (+2pi) land in the same bins.
    shifted = preprocess_scan(ranges, 2 * math.pi, 2 * math.pi / 16, 0.1, 20.0, ScanSpec(16, range_max=20.0))
    np.testing.assert_array_equal(shifted, out)


def test_partial_model_ignores_beams_outside_its_field_of_view() -> None:
    spec = ScanSpec(beams=16, angle_min=-1.0, angle_max=1.0, range_max=10.0)
    assert not spec.wraps
    ranges = np.full(64, 3.0, np.float32)
    ranges[:16] = 1.0  # behind the robot: outside [-1, 1] rad
    out = preprocess_scan(ranges, -math.pi, 2 * math.pi / 64, 0.1, 10.0, spec)
    np.testing.assert_allclose(out[0], 0.3)


def test_a_clockwise_scan_maps_by_angle() -> None:
    ranges = np.arange(16, dtype=np.float32) + 1.0  # beam i at pi - i * increment
    out = preprocess_scan(ranges, math.pi - 1e-9, -2 * math.pi / 16, 0.0, 20.0, ScanSpec(16, range_max=20.0))
    assert out[1].min() == 1.0
    assert out[0, 15] * 20.0 == pytest.approx(2.0)  # beam 1 at pi - 2pi/16 sits in the last bin


def test_scan_rejections() -> None:
    with pytest.raises(InputError, match="no ranges"):
        preprocess_scan(np.zeros(0), -1.0, 0.1, 0.0, 10.0, FULL)
    with pytest.raises(InputError, match="angle_increment"):
        preprocess_scan(np.ones(4), -1.0, 0.0, 0.0, 10.0, FULL)
    with pytest.raises(InputError, match="angle_increment"):
        preprocess_scan(np.ones(4), -1.0, float("nan"), 0.0, 10.0, FULL)


def _nearest_fill_reference(ranges: np.ndarray, angle_min: float, increment: float, range_min: float,
                            range_max: float, spec: ScanSpec) -> np.ndarray:
    """The empty-bin rule as first written: argmin over the full (empty bins x beams) difference matrix."""
    out = preprocess_scan(ranges, angle_min, increment, range_min, range_max, spec)
    ranges = np.asarray(ranges, np.float32)
    angles = angle_min + increment * np.arange(ranges.size, dtype=np.float64)
    bin_width = (spec.angle_max - spec.angle_min) / spec.beams
    rel = angles - spec.angle_min
    if spec.wraps:
        rel = np.mod(rel, 2 * math.pi)
    bins = np.floor(rel / bin_width + 1e-6).astype(np.int64)
    if spec.wraps:
        bins %= spec.beams
    inside = (bins >= 0) & (bins < spec.beams)
    covered = np.zeros(spec.beams, bool)
    covered[bins[inside]] = True
    empty = np.flatnonzero(~covered)
    valid = np.isfinite(ranges) & (ranges >= range_min) & (ranges <= range_max) & (ranges <= spec.range_max)
    expected = out.copy()
    if empty.size:
        centres = spec.angle_min + (empty + 0.5) * bin_width
        diff = centres[:, None] - angles[None, :]
        if spec.wraps:
            diff = (diff + math.pi) % (2 * math.pi) - math.pi
        nearest = np.argmin(np.abs(diff), axis=1)
        close = np.abs(diff[np.arange(empty.size), nearest]) <= abs(increment) + 1e-9
        ok = close & valid[nearest]
        expected[0, empty] = np.where(ok, ranges[nearest] / np.float32(spec.range_max), 1.0)
        expected[1, empty] = ok
    return expected


@pytest.mark.parametrize("seed", range(40))
def test_empty_bins_match_the_full_difference_matrix(seed: int) -> None:
    # Sparse, dense, clockwise, partial and shifted scans: the O(beams) search gives the same bins as the
    # (empty bins x beams) matrix it replaced.
    rng = np.random.default_rng(seed)
    spec = [ScanSpec(16, range_max=10.0), ScanSpec(beams=64, angle_min=-1.0, angle_max=1.5, range_max=8.0),
            ScanSpec(beams=360, range_max=10.0)][seed % 3]
    n = int(rng.integers(1, 500))
    increment = float(rng.choice([1, -1]) * rng.choice([2 * math.pi / n, rng.uniform(1e-4, 0.5)]))
    angle_min = float(rng.uniform(-4 * math.pi, 4 * math.pi))
    ranges = rng.uniform(0.0, 12.0, n).astype(np.float32)
    ranges[rng.random(n) < 0.1] = np.nan
    out = preprocess_scan(ranges, angle_min, increment, 0.2, 11.0, spec)
    np.testing.assert_array_equal(out, _nearest_fill_reference(ranges, angle_min, increment, 0.2, 11.0, spec))


def test_a_huge_narrow_scan_costs_linear_time_and_memory() -> None:
    # The attack: 1e6 beams in a 0.1 rad arc left 359 empty bins x 1e6 beams = 2.9 GB of float64 (and a
    # MemoryError in the node). Now a few arrays of 1e6 entries.
    import time
    import tracemalloc

    ranges = np.full(1_000_000, 3.0, np.float32)
    tracemalloc.start()
    start = time.perf_counter()
    out = preprocess_scan(ranges, 0.0, 1e-7, 0.1, 30.0, ScanSpec(beams=360, range_max=10.0))
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out[1].sum() >= 1.0
    assert peak < 200e6, f"peak {peak / 1e6:.0f} MB"
    assert elapsed < 5.0, f"{elapsed:.1f} s"


# -- point clouds --------------------------------------------------------------------------------------------
CLOUD = PointCloudSpec(rows=16, cols=256, fov_up_deg=15.0, fov_down_deg=-15.0, range_max=10.0)


def _point(r: float, yaw_deg: float, pitch_deg: float) -> list[float]:
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    return [r * math.cos(pitch) * math.cos(yaw), r * math.cos(pitch) * math.sin(yaw), r * math.sin(pitch)]


def test_a_point_straight_ahead_lands_in_the_middle_column() -> None:
    out = preprocess_pointcloud(np.array([_point(2.0, 0.0, 0.9375)]), CLOUD)  # pitch inside row 7
    assert out.shape == (2, 16, 256) and out.dtype == np.float32
    rows, cols = np.nonzero(out[1])
    assert rows.tolist() == [7] and cols.tolist() == [128]
    assert out[0, 7, 128] == pytest.approx(0.2)
    assert out[0].sum() == pytest.approx(16 * 256 - 1 + 0.2)  # every other pixel reads 1.0


def test_rows_follow_elevation_and_columns_go_counter_clockwise() -> None:
    row_height = 30.0 / 16
    for row in (0, 5, 15):
        pitch = 15.0 - (row + 0.5) * row_height
        out = preprocess_pointcloud(np.array([_point(3.0, 0.0, pitch)]), CLOUD)
        assert np.nonzero(out[1])[0].tolist() == [row]
    left = preprocess_pointcloud(np.array([_point(3.0, 90.0, 0.5)]), CLOUD)  # +y is left (REP-103)
    assert np.nonzero(left[1])[1].tolist() == [192]
    behind = preprocess_pointcloud(np.array([_point(3.0, 179.9, 0.5)]), CLOUD)
    assert np.nonzero(behind[1])[1].tolist() == [255]


def test_a_ring_grid_on_pixel_edges_fills_every_pixel() -> None:
    # Rays cast at exactly the pixel edges in azimuth (as a simulator might): one point per pixel.
    yaw = np.degrees(-math.pi + np.arange(256) * 2 * math.pi / 256)
    pitch = 15.0 - (np.arange(16) + 0.5) * 30.0 / 16
    points = np.array([_point(5.0, y, p) for p in pitch for y in yaw])
    out = preprocess_pointcloud(points, CLOUD)
    assert out[1].sum() == 16 * 256


def test_nearest_point_wins_and_bad_points_are_dropped() -> None:
    points = np.array([
        _point(6.0, 10.0, 1.0), _point(2.5, 10.0, 1.0), _point(4.0, 10.0, 1.0),  # same pixel
        [np.nan, 0.0, 0.0], [np.inf, 1.0, 0.0],  # non-finite
        _point(11.0, -45.0, 1.0),  # beyond range_max
        _point(5.0, -90.0, 40.0),  # above the field of view
        [0.0, 0.0, 0.0],  # zero range
    ])
    out = preprocess_pointcloud(points, CLOUD)
    assert out[1].sum() == 1.0
    assert out[0][out[1] == 1.0].tolist() == [pytest.approx(0.25)]


def test_pointcloud_rejections() -> None:
    with pytest.raises(InputError, match="empty"):
        preprocess_pointcloud(np.zeros((0, 3), np.float32), CLOUD)
    with pytest.raises(InputError, match=r"\(N, 3\)"):
        preprocess_pointcloud(np.zeros((4, 2), np.float32), CLOUD)
    with pytest.raises(InputError, match="no finite point"):
        preprocess_pointcloud(np.full((3, 3), np.nan), CLOUD)
    with pytest.raises(InputError, match="field of view"):
        preprocess_pointcloud(np.array([_point(3.0, 0.0, 60.0)]), CLOUD)


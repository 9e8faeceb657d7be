"""Teaching a route from stamped latents and odometry (vae_ros.control.runtime.route.teach_route) and joining
parts (join_routes): keyframe spacing, the end pose, gaps and model checks, on synthetic drives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_ros.control.runtime.route import Route, join_routes, teach_route
from vae_ros.core.errors import DataError

D = 6


def l_drive(rate_hz: float, t_end: float = 21.0) -> tuple[np.ndarray, np.ndarray]:
    """(stamps ns, (N, 3) poses) of an L: 2 m along +x at 0.2 m/s, a 90 deg turn on the spot, 1.5 m along +y."""
    t = np.arange(0.0, t_end + 1e-9, 1.0 / rate_hz)
    turn_s = (math.pi / 2) / 0.5
    poses = np.zeros((t.size, 3))
    leg1 = t < 10.0
    poses[leg1, 0] = 0.2 * t[leg1]
    turning = (t >= 10.0) & (t < 10.0 + turn_s)
    poses[turning, 0] = 2.0
    poses[turning, 2] = 0.5 * (t[turning] - 10.0)
    leg2 = t >= 10.0 + turn_s
    poses[leg2] = np.stack([np.full(leg2.sum(), 2.0), np.minimum(0.2 * (t[leg2] - 10.0 - turn_s), 1.5),
                            np.full(leg2.sum(), math.pi / 2)], axis=1)
    return (t * 1e9).astype(np.int64) + 1_000_000_000, poses


def latents_of(poses: np.ndarray) -> np.ndarray:
    return np.stack([poses[:, 0], poses[:, 1], np.cos(poses[:, 2]), np.sin(poses[:, 2]),
                     poses[:, 0] * poses[:, 1], np.ones(len(poses))], axis=1).astype(np.float32)


def test_keyframes_honour_the_spacing_and_end_at_the_final_pose() -> None:
    odom_t, odom = l_drive(20.0)
    lat_t, lat_poses = l_drive(10.0)
    route = teach_route(lat_t, latents_of(lat_poses), None, odom_t, odom, spacing_m=0.25, spacing_deg=10.0)
    steps = np.hypot(*np.diff(route.poses[:, :2], axis=0).T)
    turns = np.degrees(np.abs(np.diff(np.unwrap(route.poses[:, 2]))))
    # Every keyframe but the last is one spacing (distance or turn) after the one before: never more than one
    # latent period (0.02 m / 5 deg at 10 Hz) beyond it, and never less.
    assert np.all((steps[:-1] >= 0.25 - 1e-9) | (turns[:-1] >= 10.0 - 1e-9))
    assert np.all(steps[:-1] <= 0.25 + 0.02 + 1e-9) and np.all(turns[:-1] <= 10.0 + 2.9 + 1e-9)
    # The last keyframe is the final pose: it replaced the one before when that was within 0.3 spacing.
    assert steps[-1] <= 1.3 * 0.25 + 0.02
    np.testing.assert_allclose(route.poses[-1], lat_poses[-1], atol=1e-9)
    assert route.stamps_ns[-1] == lat_t[-1]
    assert route.meta["keyframes"] == len(route) and route.meta["spacing_m"] == 0.25
    assert route.length == pytest.approx(3.5, abs=0.03)
    # 8 m along the legs at 0.25 m and 90 deg at 10 deg: about 14 + 9 keyframes.
    assert 20 <= len(route) <= 26


def test_a_wider_spacing_gives_fewer_keyframes() -> None:
    odom_t, odom = l_drive(20.0)
    lat_t, lat_poses = l_drive(10.0)
    dense = teach_route(lat_t, latents_of(lat_poses), None, odom_t, odom, spacing_m=0.25)
    sparse = teach_route(lat_t, latents_of(lat_poses), None, odom_t, odom, spacing_m=0.5, spacing_deg=30.0)
    assert len(sparse) < len(dense)
    assert np.all(np.hypot(*np.diff(sparse.poses[:, :2], axis=0).T)[:-1] <= 0.52 + 1e-9)


def test_a_gap_while_moving_is_refused_and_says_when() -> None:
    odom_t, odom = l_drive(20.0)
    lat_t, lat_poses = l_drive(10.0)
    t = (lat_t - lat_t[0]) * 1e-9
    keep = (t < 4.0) | (t > 6.5)
    with pytest.raises(DataError, match=r"2\.7 s gap in the latents at t = 3\.9 s") as err:
        teach_route(lat_t[keep], latents_of(lat_poses)[keep], None, odom_t, odom)
    assert "\n" not in str(err.value)


def test_a_gap_while_standing_still_is_allowed() -> None:
    odom_t, odom = l_drive(20.0, t_end=30.0)  # stands at the end of the L from 20.7 s on
    lat_t, lat_poses = l_drive(10.0, t_end=30.0)
    t = (lat_t - lat_t[0]) * 1e-9
    keep = (t < 22.0) | (t > 28.0)
    route = teach_route(lat_t[keep], latents_of(lat_poses)[keep], None, odom_t, odom)
    np.testing.assert_allclose(route.poses[-1], lat_poses[-1], atol=1e-9)


def test_standing_still_is_not_a_route() -> None:
    stamps = np.arange(50, dtype=np.int64) * 100_000_000
    poses = np.zeros((50, 3))
    with pytest.raises(DataError, match="at least two keyframes"):
        teach_route(stamps, latents_of(poses), None, stamps, poses)


def test_no_latents_and_no_odometry_are_refused() -> None:
    odom_t, odom = l_drive(20.0)
    with pytest.raises(DataError, match="no latents"):
        teach_route(np.zeros(0, np.int64), np.zeros((0, D), np.float32), None, odom_t, odom)
    with pytest.raises(DataError, match="no odometry"):
        teach_route(odom_t, latents_of(odom), None, np.zeros(0, np.int64), np.zeros((0, 3)))
    with pytest.raises(DataError, match="time span"):
        teach_route(odom_t + 10**12, latents_of(odom), None, odom_t, odom)


def _split(parts: int) -> list:
    """The L taught as `parts` consecutive recordings, each with its own odometry origin (starts at 0, 0, 0)."""
    odom_t, odom = l_drive(20.0)
    lat_t, lat_poses = l_drive(10.0)
    bounds = np.linspace(lat_t[0], lat_t[-1] + 1, parts + 1).astype(np.int64)
    routes = []
    for n in range(parts):
        # Each part begins at the previous part's last latent (the recorder was restarted right there).
        lo = lat_t[lat_t < bounds[n]][-1] if n else lat_t[0]
        lat = (lat_t >= lo) & (lat_t < bounds[n + 1])
        od = (odom_t >= lo) & (odom_t <= lat_t[lat][-1])
        origin = odom[od][0]
        c, s = math.cos(-origin[2]), math.sin(-origin[2])
        rel = odom[od, :2] - origin[:2]
        local = np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1], odom[od, 2] - origin[2]], 1)
        routes.append(teach_route(lat_t[lat], latents_of(lat_poses[lat]), None, odom_t[od], local,
                                  meta={"model_sha256": "abc"}))
    return routes


def test_two_parts_join_into_one_continuous_route() -> None:
    whole = teach_route(*_teach_args())
    first, second = _split(2)
    joined = join_routes([first, second])
    assert len(joined) == len(first) + len(second) - 1  # the shared keyframe once
    assert joined.meta["parts"] == 2 and joined.meta["keyframes"] == len(joined)
    steps = np.hypot(*np.diff(joined.poses[:, :2], axis=0).T)
    assert steps.max() <= 1.3 * 0.25 + 0.02  # no jump where the parts meet (a part's end may be 1.3 spacings on)
    np.testing.assert_allclose(joined.poses[-1], whole.poses[-1], atol=1e-6)
    assert joined.length == pytest.approx(whole.length, abs=0.05)
    assert np.all(np.diff(joined.stamps_ns) > 0)


def _teach_args() -> tuple:
    odom_t, odom = l_drive(20.0)
    lat_t, lat_poses = l_drive(10.0)
    return lat_t, latents_of(lat_poses), None, odom_t, odom


def test_parts_of_different_models_or_sizes_are_refused() -> None:
    first, second = _split(2)
    other = Route(second.poses, second.latents, second.stamps_ns, None, {**second.meta, "model_sha256": "def"})
    with pytest.raises(DataError, match="another model"):
        join_routes([first, other])
    wider = Route(second.poses, np.hstack([second.latents, second.latents]), second.stamps_ns, None, second.meta)
    with pytest.raises(DataError, match="latents of two models"):
        join_routes([first, wider])

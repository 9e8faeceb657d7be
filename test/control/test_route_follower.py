"""The route follower's law (vae_ros.control.runtime.route_follower) on a synthetic representation.

The latent is the pose itself, [x, y, cos yaw, sin yaw] (an exact, noise-free representation) and the pose head
reads the exact relative pose from two such latents: what is tested is the follower (localisation, correction
of drifting odometry, path tracking, the last keyframe, lost / jump handling), not a model. A unicycle is
integrated in the test; the odometry it reports drifts (scale and heading errors), as wheel odometry does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_ros.control.runtime.route import Route, relative_pose
from vae_ros.control.runtime.route_follower import (
    DONE,
    FOLLOWING,
    LOCALISING,
    LOST,
    FollowerConfig,
    FollowerState,
    follower_step,
    keyframe_distances,
    turned_views,
)
from vae_ros.core.errors import ConfigError, InputError
from vae_ros.sim.geometry import wrap_angle

DT = 0.1


def latent(pose: np.ndarray) -> np.ndarray:
    return np.array([pose[0], pose[1], math.cos(pose[2]), math.sin(pose[2])], dtype=np.float32)


def head(z: np.ndarray, z_key: np.ndarray) -> np.ndarray:
    a = (float(z[0]), float(z[1]), math.atan2(float(z[3]), float(z[2])))
    b = (float(z_key[0]), float(z_key[1]), math.atan2(float(z_key[3]), float(z_key[2])))
    return relative_pose(a, b)


def l_route(spacing: float = 0.25) -> Route:
    """2 m east, a left turn, 1.5 m north; keyframes every `spacing` m (and every 10 deg in the turn)."""
    poses = [(x, 0.0, 0.0) for x in np.arange(0.0, 2.0 + 1e-9, spacing)]
    poses += [(2.0, 0.0, math.radians(a)) for a in range(10, 91, 10)]
    poses += [(2.0, y, math.pi / 2) for y in np.arange(spacing, 1.5 + 1e-9, spacing)]
    poses_arr = np.array(poses)
    return Route(poses_arr, np.stack([latent(p) for p in poses_arr]), np.arange(len(poses_arr)) * 10**8)


def drive(route: Route, start: tuple[float, float, float], steps: int = 800, config: FollowerConfig = FollowerConfig(),
          use_head: bool = True, latent_of=latent) -> tuple[FollowerState, np.ndarray, list[FollowerState]]:
    """Integrate a unicycle under the follower; odometry with +3 % scale and 0.05 rad/m heading drift, in a
    frame of its own (origin elsewhere), as a repeat run's odometry would be."""
    true = np.array(start, dtype=np.float64)
    odom = np.array([5.0, -3.0, 1.0])
    state = FollowerState()
    states, path = [], [true.copy()]
    for _ in range(steps):
        state, (v, w) = follower_step(state, route, latent_of(true), tuple(odom), DT, config, head if use_head else None)
        states.append(state)
        if state.status == DONE:
            break
        true = np.array([true[0] + v * DT * math.cos(true[2]), true[1] + v * DT * math.sin(true[2]),
                         wrap_angle(true[2] + w * DT)])
        v_o, w_o = 1.03 * v, w + 0.05 * abs(v)
        odom = np.array([odom[0] + v_o * DT * math.cos(odom[2]), odom[1] + v_o * DT * math.sin(odom[2]),
                         wrap_angle(odom[2] + w_o * DT)])
        path.append(true.copy())
    return state, np.array(path), states


def path_error(route: Route, xy: np.ndarray) -> float:
    dense = np.concatenate([np.linspace(route.poses[i, :2], route.poses[i + 1, :2], 20) for i in range(len(route) - 1)])
    return float(np.min(np.hypot(*(dense - xy).T)))


def test_repeats_the_route_from_a_displaced_start_and_stops_at_its_end() -> None:
    route = l_route()
    state, path, states = drive(route, (0.05, 0.08, math.radians(8)))
    assert state.status == DONE
    end = path[-1]
    assert math.hypot(end[0] - 2.0, end[1] - 1.5) < 0.06
    assert abs(wrap_angle(end[2] - math.pi / 2)) < math.radians(4)
    assert max(path_error(route, p[:2]) for p in path) < 0.12
    assert states[0].status == FOLLOWING and states[0].keyframe <= 1  # found its place at once
    assert {s.status for s in states} <= {FOLLOWING, DONE}


def test_after_done_it_commands_zero() -> None:
    route = l_route()
    state, _, _ = drive(route, (0.0, 0.0, 0.0))
    assert state.status == DONE
    for _ in range(3):
        state, command = follower_step(state, route, latent(np.array([2.0, 1.5, math.pi / 2])), (0.0, 0.0, 0.0), DT,
                                       FollowerConfig(), head)
    assert command == (0.0, 0.0) and state.status == DONE


def test_odometry_alone_drifts_where_the_latent_match_corrects() -> None:
    """The same drive with the head's corrections ends far closer than odometry replay (never confident)."""
    route = l_route()
    replay = FollowerConfig(min_quality=1.0, lost_timeout=1e9)
    start = (0.0, 0.0, 0.0)
    replay_state = FollowerState(status=FOLLOWING, pose=start, odom=(5.0, -3.0, 1.0), localised=True)
    true = np.array(start)
    odom = np.array([5.0, -3.0, 1.0])
    state = replay_state
    for _ in range(800):
        state, (v, w) = follower_step(state, route, latent(true), tuple(odom), DT, replay, head)
        if state.status == DONE:
            break
        true = np.array([true[0] + v * DT * math.cos(true[2]), true[1] + v * DT * math.sin(true[2]), wrap_angle(true[2] + w * DT)])
        v_o, w_o = 1.03 * v, w + 0.05 * abs(v)
        odom = np.array([odom[0] + v_o * DT * math.cos(odom[2]), odom[1] + v_o * DT * math.sin(odom[2]), wrap_angle(odom[2] + w_o * DT)])
    replay_error = math.hypot(true[0] - 2.0, true[1] - 1.5)
    _, path, _ = drive(route, start)
    matched_error = math.hypot(path[-1][0] - 2.0, path[-1][1] - 1.5)
    assert replay_error > 0.1 and matched_error < 0.05 and replay_error > 2 * matched_error


def test_without_a_head_it_still_follows_on_keyframe_poses() -> None:
    route = l_route()
    state, path, _ = drive(route, (0.0, 0.0, 0.0), use_head=False)
    assert state.status == DONE
    assert max(path_error(route, p[:2]) for p in path) < 0.2


def test_unrecognisable_latents_mean_no_motion_and_lost_after_the_timeout() -> None:
    route = l_route()
    config = FollowerConfig(lost_timeout=1.0)
    # Never localised: a latent far from every keyframe is no match, and nothing moves.
    far = np.array([40.0, -40.0, 1.0, 0.0], np.float32)
    state = FollowerState()
    for _ in range(5):
        state, command = follower_step(state, route, far, (0.0, 0.0, 0.0), DT, config, head)
        assert command == (0.0, 0.0) and state.status == LOCALISING
    # Localised and driving, then the view stops matching: LOST after lost_timeout, and the command decays to zero.
    state, _, _ = drive(route, (0.0, 0.0, 0.0), steps=20, config=config)
    assert state.status == FOLLOWING and state.command[0] > 0.05
    statuses, commands = [], []
    for _ in range(25):
        state, command = follower_step(state, route, far, state.odom, DT, config, head)
        statuses.append(state.status)
        commands.append(command)
    assert LOST in statuses and statuses.index(LOST) >= 9  # 1 s at 10 Hz of unconfident steps first
    assert commands[-1] == (0.0, 0.0)
    # The match returns: it resumes.
    state, command = follower_step(state, route, latent(np.array([0.5, 0.0, 0.0])), state.odom, DT, config, head)
    assert state.status == FOLLOWING


def test_an_odometry_jump_stops_and_finds_the_place_again() -> None:
    route = l_route()
    state, _, _ = drive(route, (0.0, 0.0, 0.0), steps=20)
    assert state.status == FOLLOWING
    jumped = (state.odom[0] + 3.0, state.odom[1], state.odom[2])
    state, command = follower_step(state, route, latent(np.array([0.4, 0.0, 0.0])), jumped, DT, FollowerConfig(), head)
    assert state.status == LOCALISING and state.pose is None and "odometry jumped" in state.reason
    assert abs(command[0]) < 0.3  # braking at once (acceleration-limited down to zero)
    state, _ = follower_step(state, route, latent(np.array([0.4, 0.0, 0.0])), jumped, DT, FollowerConfig(), head)
    assert state.status == FOLLOWING


def test_a_route_that_passes_its_start_again_is_started_at_the_beginning() -> None:
    """A loop: the last keyframes are at the first one's place. The first localisation takes the start."""
    poses = [(x, 0.0, 0.0) for x in np.arange(0.0, 1.01, 0.25)]
    poses += [(1.0, y, math.pi / 2) for y in np.arange(0.25, 1.01, 0.25)]
    poses += [(x, 1.0, math.pi) for x in np.arange(0.75, -0.01, -0.25)]
    poses += [(0.0, y, -math.pi / 2) for y in np.arange(0.75, -0.01, -0.25)]
    poses += [(0.0, 0.0, 0.0)]
    arr = np.array(poses)
    route = Route(arr, np.stack([latent(p) for p in arr]), np.arange(len(arr)) * 10**8)
    state, _ = follower_step(FollowerState(), route, latent(np.array([0.0, 0.0, 0.0])), (0.0, 0.0, 0.0), DT,
                             FollowerConfig(), head)
    assert state.status == FOLLOWING and state.keyframe == 0
    anywhere = FollowerConfig(start_factor=0.0, ratio=0.8)
    state, _ = follower_step(FollowerState(), route, latent(np.array([0.0, 0.0, 0.0])), (0.0, 0.0, 0.0), DT,
                             anywhere, head)
    assert state.status == LOCALISING  # two identical places: place recognition alone does not guess


def test_bad_latents_odometry_and_settings_are_refused() -> None:
    route = l_route()
    with pytest.raises(InputError, match="dimensions"):
        follower_step(FollowerState(), route, np.zeros(3, np.float32), None, DT, FollowerConfig(), head)
    with pytest.raises(InputError, match="NaN"):
        follower_step(FollowerState(), route, np.full(4, np.nan, np.float32), None, DT, FollowerConfig(), head)
    with pytest.raises(InputError, match="odometry"):
        follower_step(FollowerState(), route, latent(np.zeros(3)), (math.nan, 0.0, 0.0), DT, FollowerConfig(), head)
    with pytest.raises(InputError, match="dt"):
        follower_step(FollowerState(), route, latent(np.zeros(3)), None, 0.0, FollowerConfig(), head)
    for bad in ({"max_linear": 0.0}, {"correction": 1.5}, {"lost_timeout": math.inf}, {"settle_steps": 0}):
        with pytest.raises(ConfigError):
            FollowerConfig(**bad).validate()
    FollowerConfig().validate()


def test_turned_views_round_trip_and_matching_takes_the_nearest_view() -> None:
    # A stand-in "model" whose latent is the scan itself (encode = first channel, decode = identity): turning a
    # keyframe's view must then be exactly the rolled scan, and a turn of 0 the latent itself.
    rng = np.random.default_rng(3)
    scans = rng.uniform(0.1, 0.9, size=(4, 36)).astype(np.float32)
    views = turned_views(scans, lambda z: z[:, None, :], lambda x: x[:, 0, :], turns_deg=(-20.0, 0.0, 30.0))
    assert views.shape == (4, 4, 36)
    np.testing.assert_allclose(views[0], scans)
    np.testing.assert_allclose(views[1], np.roll(scans, -2, axis=1), atol=1e-6)  # 36 beams: 10 deg each
    np.testing.assert_allclose(views[2], scans, atol=1e-6)
    np.testing.assert_allclose(views[3], np.roll(scans, 3, axis=1), atol=1e-6)
    poses = np.column_stack([np.arange(4) * 0.5, np.zeros(4), np.zeros(4)])
    route = Route(poses, scans, np.arange(4) * 10**9)
    query = np.roll(scans[2], 3)  # keyframe 2 seen turned by 30 deg
    plain = keyframe_distances(route, query)
    turned = keyframe_distances(Route(poses, scans, np.arange(4) * 10**9, views=views), query)
    assert turned[2] == pytest.approx(0.0, abs=1e-5) and plain[2] > 0.1
    assert int(np.argmin(turned)) == 2
    assert np.all(turned <= plain + 1e-6)  # the latent itself is always one of the views
    with pytest.raises(Exception, match="views"):
        Route(poses, scans, np.arange(4) * 10**9, views=views[:, :3])


def test_the_packaged_lidar_model_turns_keyframes_to_match_a_turned_robot() -> None:
    from vae_ros.control.runtime.control_model import ControlModel
    from vae_ros.resources import models_dir
    from vae_ros.sim.world import SimConfig, SimWorld

    model_dir = models_dir() / "control_default"
    if not (model_dir / "model.json").is_file():
        pytest.skip("packaged control model not built (bash scripts/make_control_model.sh)")
    model = ControlModel(model_dir, threads=1)
    world = SimWorld(SimConfig(seed=5151, image_width=16, image_height=16))
    try:
        keys, turned = [], []
        for x, y in ((-1.0, 0.5), (0.5, -1.0), (1.2, 1.0)):
            world.set_pose(x, y, 0.3)
            keys.append(model.latent(world))
            world.set_pose(x, y, 0.3 + math.radians(10))
            turned.append(model.latent(world))
    finally:
        world.close()
    views = model.turned_views(np.array(keys))
    assert views is not None and views.shape == (7, 3, model.latent_dim)
    np.testing.assert_allclose(views[0], np.array(keys), atol=1e-5)
    for k, z in enumerate(turned):
        # The robot turned 10 deg is nearer one of its keyframe's turned views than to the keyframe as taught.
        nearest_view = np.linalg.norm(views[:, k] - z, axis=1).min()
        assert nearest_view < 0.8 * np.linalg.norm(views[0, k] - z)

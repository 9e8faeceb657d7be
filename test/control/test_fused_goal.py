"""A goal given as an image alone, measured in process (vae_ros.control.evaluation.fused_goal): which episodes have
overlapping views, the method names, and what each goal rule gives at the goal pose itself."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vae_ros.control.evaluation.episodes import Episode
from vae_ros.control.evaluation.fused_goal import ImageGoalServoModel, parse_method, views_overlap
from vae_ros.core.errors import ConfigError
from vae_ros.core.fused import is_fused_model
from vae_ros.resources import models_dir

FUSED = models_dir() / "fused_default"


def test_views_overlap_when_one_pose_stands_in_the_others_view() -> None:
    ahead = Episode(0, (0.0, 0.0, 0.0), (0.8, 0.2, 0.3))  # the goal 14 deg off the start's heading
    behind = Episode(0, (0.8, 0.2, 0.3), (0.0, 0.0, 0.0))  # the start ahead of the goal, in its view
    beside = Episode(0, (0.0, 0.0, 0.0), (0.0, 0.8, math.radians(40)))  # 90 deg off the start, start 130 deg off
    assert views_overlap(ahead) and views_overlap(behind)
    assert not views_overlap(beside)


def test_methods_name_a_rule_and_optionally_a_model() -> None:
    default = Path("/models/fused")
    assert parse_method("camera", default) == ("camera", "camera", default)
    assert parse_method("align+camera@/tmp/v2", default) == ("align+camera@/tmp/v2", "align+camera", Path("/tmp/v2"))
    with pytest.raises(ConfigError, match="not a goal rule"):
        parse_method("guess", default)


@pytest.mark.skipif(not is_fused_model(FUSED), reason="models/fused_default not built")
def test_at_the_goal_pose_the_rules_give_the_photos_latent_or_the_live_one() -> None:
    """`camera`: the camera expert's posterior mean of the photo; `relative`: at the goal pose itself, the live fused
    latent (its fixed point is the goal)."""
    from vae_ros.core.preprocess import preprocess_image
    from vae_ros.sim.world import SimConfig, SimWorld

    goal = (0.3, -0.2, 0.4)
    camera = ImageGoalServoModel(FUSED, "camera", threads=1)
    relative = ImageGoalServoModel(FUSED, "relative", threads=1)
    with SimWorld(SimConfig(seed=7919, image_width=128, image_height=128)) as world:
        world.set_pose(*goal)
        photo = preprocess_image(world.render(), camera.live.fused.configs["camera"].image_spec)[None]
        expected = camera.live.fused.encode_sensor("camera", photo)[0][0]
        for model in (camera, relative):
            model.reset()
            model.latent(world)  # the goal's observation: only its photo is used
        z_camera = camera.latent(world)
        z_relative = relative.latent(world)
    np.testing.assert_allclose(camera.goal_latent(z_camera), expected, atol=1e-6)
    assert np.linalg.norm(z_camera - expected) > 0.05  # the photo's latent is not the fused one ...
    np.testing.assert_allclose(relative.goal_latent(z_relative), z_relative, atol=1e-5)  # ... the relative goal is


def test_the_look_around_turns_to_one_side_then_the_other_and_stops_before_each_view() -> None:
    """`align+look` (what goal_align does by default): a view before turning, one at +LOOK_AROUND_DEG and one at
    -LOOK_AROUND_DEG, each taken after the robot stopped."""
    import math

    from vae_ros.control.evaluation.fused_goal import LOOK_PLAN, look_command
    from vae_ros.control.runtime.image_goal import LOOK_AROUND_DEG

    dt = 0.1  # the control rate of the plan (10 Hz)
    heading, headings, moving = 0.0, {}, {}
    for step in range(len(LOOK_PLAN.turns) + 1):
        headings[step], moving[step] = heading, step > 0 and look_command(step - 1)[1] != 0.0
        v, w = look_command(step)
        assert v == 0.0  # in place
        heading += w * dt
    views = LOOK_PLAN.captures
    seen = [math.degrees(headings[k]) for k in views]
    assert abs(seen[0]) < 1e-9 and abs(seen[1] - LOOK_AROUND_DEG) < 2.0 and abs(seen[2] + seen[1]) < 1e-6, seen
    assert not any(moving[k] for k in views)  # stopped before each view
    assert look_command(len(LOOK_PLAN.turns)) == (0.0, 0.0)  # then the servo's turn
    assert abs(headings[len(LOOK_PLAN.turns)] - headings[views[2]]) < 1e-9  # it ends turned the other way

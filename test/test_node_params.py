"""vae_ros.ros.kit.params: every numeric parameter of every node is bounded (issue 21): the ROS descriptor's
range and validation refuse absurd values with a reason, and the world model's plan stays within budget."""

from __future__ import annotations

import pytest

from vae_ros.core.errors import ConfigError
from vae_ros.ros.kit.params import NODE_PARAMS, PLAN_BUDGET, ParamSpec, WorldModelParams, specs_of

NUMERIC = [(node, spec) for node, params in NODE_PARAMS.items() for spec in specs_of(params)
           if spec.kind in (int, float)]


@pytest.mark.parametrize(("node", "spec"), NUMERIC, ids=[f"{n}.{s.name}" for n, s in NUMERIC])
def test_every_numeric_parameter_has_a_range_around_its_default(node: str, spec: ParamSpec) -> None:
    assert spec.range is not None, f"{node} {spec.name} has no range"
    low, high = spec.range
    assert low <= spec.default <= high


@pytest.mark.parametrize(("node", "spec"), NUMERIC, ids=[f"{n}.{s.name}" for n, s in NUMERIC])
def test_absurd_values_are_refused_by_name(node: str, spec: ParamSpec) -> None:
    name = spec.name
    absurd = [10**12, -(10**12)] if spec.kind is int else [1e9, 1e308, -1e308, float("nan"), float("inf")]
    for value in absurd:
        with pytest.raises(ConfigError, match=name):
            NODE_PARAMS[node]().updated({name: value})


def test_the_plan_budget_bounds_horizon_samples_and_iterations_together() -> None:
    WorldModelParams().updated({"iterations": 1, "horizon": 30, "samples": 2000})  # 60000: at the budget
    with pytest.raises(ConfigError, match="rollout steps"):
        WorldModelParams().updated({"horizon": 100, "samples": 2000, "iterations": 10})
    assert 30 * 150 * 3 * 4 < PLAN_BUDGET  # the default leaves room


def test_the_route_followers_defaults_are_the_followers_own() -> None:
    """route_follower_node's limits and follower settings default to FollowerConfig's, the values eval-route
    measures with, so the node repeats a route as the evaluation does."""
    from vae_ros.control.runtime.route_follower import FollowerConfig
    from vae_ros.ros.kit.params import RouteFollowerParams

    assert RouteFollowerParams().follower_config() == FollowerConfig()
    with pytest.raises(ConfigError, match="min_quality"):
        RouteFollowerParams().updated({"min_quality": 0.0})

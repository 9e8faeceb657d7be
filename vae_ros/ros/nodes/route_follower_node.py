"""route_follower_node: repeats a taught route on live latents (teach and repeat), finding its place on the route
by latent similarity.

The route (parameter `route`, a folder written by `vae-ros teach --out ROUTE`: keyframes of latents and the
odometry poses where they were seen, and the digest of the model that made them) is this controller's goal.
The node refuses to start, with one line, without a route, with a route it cannot read, or with a model
(`model`, empty = the packaged control model) that is not the route's: another weights digest or latent size.

Inputs (relative names; remap as needed):
- `vae/latent_stamped` (sensor_msgs/Image 32FC1, from an encoder_node on the route's model): each fresh latent
  is one step of the follower's law (vae_ros.control.runtime.route_follower.follower_step), with dt from the
  latents' stamps (clamped to 0.01..0.5 s).
- `odom` (nav_msgs/Odometry, best effort keep last 1, so it matches any publisher): the newest pose. The
  follower moves its estimate of where it is on the route by the odometry increments between steps, so the
  odometry's frame and drift do not matter. An odometry message with NaN or a non-unit quaternion is rejected,
  counted (`odometry_rejected`), and the pose kept so far is dropped. **Without fresh odometry (none yet, the
  newest stamped more than `odom_timeout` from this node's clock either way, or the newest rejected) the robot
  stops** and the follower does not step: driving on an estimate that no longer moves with the robot would be
  a guess. It goes on when fresh odometry arrives (an increment too large for one step then makes it find its
  place again).
- `scan` (sensor_msgs/LaserScan): the controllers' scan safety layer (vae_ros.ros.nodes.control_base; no fresh
  scan, no motion, unless `scan_safety:=false`).
- `servo/clear_goal` (std_srvs/Trigger): forget the progress on the route and stop; the robot then stays
  stopped, whatever arrives, until `servo/set_goal`, which restarts the repeat from a fresh localisation
  (place recognition over the whole route, preferring the route's start). The route itself stays loaded.
  There is no goal-latent or goal-image input: the route is the goal.

Behaviour: with a latent (and odometry) it starts localising (state `localising`, stopped) until a distinctive
match tells it where it is on the route, then follows the taught path (pure pursuit, then the approach of the
last keyframe) within the speed and acceleration limits. Without a confident match for `lost_timeout` it is
`lost`: it stops, keeps matching, and resumes when the match returns. At the last keyframe it is `done`: zero
command, "route done" said once, until `servo/set_goal`. One log line each on entering lost, done, and
localising again after an odometry jump (with the follower's reason), and a progress line every 10 keyframes.

Outputs: `cmd_vel` through the shell (zero on stale latents, missing odometry, rejected input, lost, done and
shutdown; the scan safety layer on every command), `route/path` (nav_msgs/Path of the keyframe poses, published
once, transient local, so a late RViz still gets it; frame `odom`, which is the route's frame: the teach run's
odometry frame, the same as the repeating robot's odom only where the repeat starts where the teach run did),
and /diagnostics: state, phase, keyframe, keyframes, match, distance_left, progress and the shell's counters.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

from vae_ros.control.runtime.control_model import control_model_dir, latent_model_dir, servo_head_dir
from vae_ros.control.runtime.route import Route
from vae_ros.control.runtime.route_follower import (
    DONE,
    FOLLOWING,
    LOCALISING,
    LOST,
    FollowerConfig,
    FollowerState,
    PoseReader,
    follower_step,
)
from vae_ros.core.conversions.common import checked_planar_pose, path_msg, stamp_ns
from vae_ros.core.conversions.latent import stamped_msg_to_latent
from vae_ros.core.diagnostics import NodeStats
from vae_ros.core.errors import ConfigError, InputError
from vae_ros.core.latent_range import check_latent_range, latent_bound
from vae_ros.ros.interface import CLEAR_GOAL_SERVICE, ODOM_TOPIC, ROUTE_PATH_TOPIC, SET_GOAL_SERVICE
from vae_ros.ros.kit.declare import declare_params, on_parameter_changes
from vae_ros.ros.kit.guard import WARN_THROTTLE_S
from vae_ros.ros.kit.health import DiagnosticsPublisher
from vae_ros.ros.kit.params import RouteFollowerParams
from vae_ros.ros.kit.run import run_node
from vae_ros.ros.nodes.control_base import IDLE, STALE, ControlNode
from vae_ros.ros.qos import LATCHED_QOS, sensor_qos
from vae_ros.ros.sim_messages import ODOM_FRAME

NODE_NAME = "route_follower_node"
PROGRESS_LOG_KEYFRAMES = 10  # a progress line each time the matched keyframe has advanced this many
DT_RANGE_S = (0.01, 0.5)  # a step's dt, from the latents' stamps, is clamped to this
FIRST_DT_S = 0.1


def check_route_model(route: Route, route_dir: Path, model_dir: Path, latent_dim: int, digest: str) -> None:
    """ConfigError, one line naming both, when the route was taught with another model than `model_dir`: another
    weights digest (where the route records one) or another latent size."""
    recorded = str(route.meta.get("model_sha256") or "")
    if recorded and recorded != digest:
        raise ConfigError(f"route {route_dir} was taught with the model whose weights sha256 is {recorded[:12]}..., "
                          f"but model {model_dir} has {digest[:12]}...: repeat it with the model that taught it "
                          "(parameter `model`), or teach the route again with this one")
    if route.latent_dim != latent_dim:
        raise ConfigError(f"route {route_dir} holds {route.latent_dim}-D latents, but model {model_dir} makes "
                          f"{latent_dim}-D ones: repeat it with the model that taught it (parameter `model`)")


class RouteFollowerNode(ControlNode):
    """vae/latent_stamped + odom + a taught route -> follower_step -> cmd_vel; route/path for RViz."""

    ACTIVE = LOCALISING  # a (re)started route begins by finding its place
    GOAL_INPUTS = False  # the route is the goal

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.params: RouteFollowerParams = declare_params(self, RouteFollowerParams)
        if not self.params.route.strip():
            raise ConfigError("parameter `route` is required: the folder of a route written by `vae-ros teach "
                              "--out ROUTE` (e.g. --ros-args -p route:=/path/to/route)")
        from vae_ros.core.backends import load_config, weights_digest
        from vae_ros.ros.route_file import load_route

        self.route_dir = Path(self.params.route.strip()).expanduser()
        self.model_dir = control_model_dir(self.params.model)
        # A fused model's latent is its LiDAR expert's: that expert's config and weights digest (so a route taught
        # with the control model repeats with a fused model whose LiDAR expert it is).
        self.latent_dir = latent_model_dir(self.model_dir)
        self.model_config = load_config(self.latent_dir)
        self.route = load_route(self.route_dir)
        check_route_model(self.route, self.route_dir, self.model_dir, self.model_config.latent_dim,
                          weights_digest(self.latent_dir))
        try:
            check_latent_range(self.route.latents, latent_bound(self.model_config.training), "route latent")
        except InputError as err:
            raise ConfigError(f"route {self.route_dir}: {err}") from err
        self.head = self._load_head()
        self.route = self._with_turned_views(self.route)
        self.config: FollowerConfig = self.params.follower_config()
        self.state = FollowerState()
        self._last_step_ns: int | None = None
        self._odom: tuple[int, tuple[float, float, float]] | None = None  # (stamp ns, pose) of the newest odometry
        self._odometry_rejected = 0
        self._odometry_said = ""  # the odometry problem last logged ('' : none)
        self._progress_logged = 0  # the keyframe of the last progress line
        self.phase = "waiting for a latent"
        self.stats = NodeStats()
        self._start_control(self.model_config.latent_dim, self.model_dir, self.model_config.modality)
        from nav_msgs.msg import Odometry
        from nav_msgs.msg import Path as Path_

        self._odom_sub = self.create_subscription(Odometry, ODOM_TOPIC, self._guard.wrap("odometry", self._on_odom),
                                                  sensor_qos(depth=1))
        self._path_pub = self.create_publisher(Path_, ROUTE_PATH_TOPIC, LATCHED_QOS)
        self._path_pub.publish(path_msg(self.route.poses, ODOM_FRAME, self.get_clock().now()))
        self._set_goal(self.route.latents[-1], f"route {self.route_dir}")
        self._diagnostics = DiagnosticsPublisher(
            self, self.stats, f"{self.get_fully_qualified_name()}: route follower", hardware_id=str(self.model_dir),
            period=self.params.diagnostics_period, extra=self._diagnostic_values,
        )
        on_parameter_changes(self, lambda: self.params, self._apply_params)
        self.get_logger().info(
            f"route {self.route_dir}: {len(self.route)} keyframes, {self.route.length:.2f} m; model {self.model_dir} "
            f"(latent {self.model_config.latent_dim}, {'pose head' if self.head else 'no pose head: keyframe poses'}"
            f"); {self._latent_sub.topic_name} + {self._odom_sub.topic_name} -> {self._cmd_pub.topic_name}; "
            f"{self._path_pub.topic_name} in frame {ODOM_FRAME} (the route's)")

    def _load_head(self) -> PoseReader | None:
        """The model's relative-pose head (offset and heading from a keyframe), where it has one."""
        from vae_ros.core.model_dir import SERVO_HEAD_FILE

        # Present at all (a link to /dev/zero, a FIFO too): PoseHeadNumpy.load refuses what it cannot read.
        head_dir = servo_head_dir(self.model_dir)
        if not os.path.lexists(head_dir / SERVO_HEAD_FILE):
            return None
        from vae_ros.control.runtime.pose_head import PoseHeadNumpy

        return PoseHeadNumpy.load(head_dir, self.model_config.latent_dim).estimate

    def _with_turned_views(self, route: Any) -> Any:
        """The route with each keyframe also as its scan turned by +-5..15 deg (a full-turn LiDAR model only):
        the model decodes, turns and encodes the keyframes once, here (route_follower.turned_views)."""
        from dataclasses import replace

        from vae_ros.control.runtime.route_follower import TURNS_DEG, scan_turned_views
        from vae_ros.core.backends import create_backend

        if self.model_config.modality != "scan":
            return route
        try:
            backend = create_backend(self.latent_dir, "auto", "cpu", threads=1)
        except ImportError as err:  # a lean install without the runtime this model directory needs
            self.get_logger().warning(f"keyframes matched as taught only (no runtime to turn them: {err})")
            return route
        views = scan_turned_views(backend, self.model_config, route.latents)
        if views is None:
            return route
        self.get_logger().info(f"keyframes also matched turned by {', '.join(f'{t:+g}' for t in TURNS_DEG)} deg "
                               f"(decoded, turned and encoded by {self.latent_dir.name})")
        return replace(route, views=views)

    # -- the route as the goal (ControlNode hooks) -----------------------------------------------------------
    def _reset_for_goal(self) -> None:
        """A (re)started or cleared route: forget the progress; the next step localises afresh."""
        self.state = FollowerState(command=self.state.command)
        self._last_step_ns = None
        self._progress_logged = 0

    def _reset_command(self) -> None:
        self.state = dataclasses.replace(self.state, command=(0.0, 0.0))

    def _on_set_goal(self, _request: Any, response: Any) -> Any:
        """Restart the repeat: the progress is forgotten and the follower finds its place afresh."""
        self._set_goal(self.route.latents[-1], f"route {self.route_dir} ({SET_GOAL_SERVICE})")
        self.phase = "localising"
        response.success = True
        response.message = f"route {self.route_dir} restarted: finding the place on the route"
        if self._latest is None or self._is_stale():
            response.message += f" as soon as fresh latents arrive ({self._no_fresh_latent()})"
        return response

    def _on_clear_goal(self, request: Any, response: Any) -> Any:
        had = self.goal is not None
        response = super()._on_clear_goal(request, response)
        self.phase = "idle"
        response.message = (f"route progress cleared; stopped until {SET_GOAL_SERVICE}" if had
                            else f"the route was cleared already; {SET_GOAL_SERVICE} restarts it")
        if had:
            self.get_logger().info(f"route cleared ({CLEAR_GOAL_SERVICE}): stopped until {SET_GOAL_SERVICE}")
        return response

    # -- inputs ----------------------------------------------------------------------------------------------
    def _on_odom(self, msg: Any) -> None:
        try:
            pose = checked_planar_pose(msg.pose.pose, "odometry pose")
        except InputError:
            self._odometry_rejected += 1
            self._odom = None  # a broken source: nothing to move the estimate by until a good message
            raise
        self._odom = (stamp_ns(msg.header.stamp), pose)

    def _odometry_problem(self) -> str:
        """Why there is no odometry to step with ('' when the newest is fresh)."""
        if self._odom is None:
            what = "rejected" if self._odometry_rejected else "none yet"
            return f"no odometry on {self._odom_sub.topic_name} ({what})"
        age = (self.get_clock().now().nanoseconds - self._odom[0]) * 1e-9
        if abs(age) > self.params.odom_timeout:
            when = f"{age:.1f} s old" if age > 0 else f"stamped {-age:.1f} s in the future"
            return (f"the newest odometry on {self._odom_sub.topic_name} is {when} (odom_timeout "
                    f"{self.params.odom_timeout} s)")
        return ""

    def _on_latent(self, msg: Any) -> None:
        """One follower step on a fresh latent and the newest odometry."""
        start = time.perf_counter()
        self.stats.on_received()
        mean, _, header = stamped_msg_to_latent(msg, expected_dim=self.model_config.latent_dim)
        stamp = self._record_latent(mean, header)
        if self.goal is None:  # cleared: stopped until set_goal
            self._publish_command(0.0, 0.0)
            return
        if self._is_stale():  # an old latent (a delayed link, a bag replayed late) is no basis for a command
            self._on_watchdog()
            return
        odom, problem = self._odom, self._odometry_problem()
        if problem or odom is None:
            self.status, self.phase = self.state.status, "waiting for odometry"
            if problem != self._odometry_said:
                self.get_logger().warning(f"{problem}: stopped until fresh odometry arrives",
                                          throttle_duration_sec=WARN_THROTTLE_S)
            self._odometry_said = problem
            self._stop()
            return
        self._odometry_said = ""
        dt = FIRST_DT_S if self._last_step_ns is None else min(max((stamp - self._last_step_ns) * 1e-9, DT_RANGE_S[0]),
                                                                DT_RANGE_S[1])
        before = self.state
        self.state, (v, w) = follower_step(before, self.route, mean, odom[1], dt, self.config, self.head)
        self._last_step_ns = stamp
        self.status = self.state.status
        if self.status == DONE:
            v, w = 0.0, 0.0
        sent = self._publish_command(v, w)  # through the scan safety layer
        if sent != self.state.command:  # the follower carries what was sent (its acceleration limits)
            self.state = dataclasses.replace(self.state, command=sent)
        self.phase = self._phase()
        self._say(before, self.state)
        self.stats.on_published(time.perf_counter() - start)

    # -- what is said ----------------------------------------------------------------------------------------
    def _phase(self) -> str:
        if self.goal is None:
            return "idle"
        status = self.state.status
        if status == FOLLOWING:
            return "approaching the last keyframe" if self.state.final else "following the path"
        return status

    def _phase_said(self) -> str:
        """The phase for /diagnostics: the shell's idle and stale win over the follower's last phase."""
        if self.status == IDLE:
            return "idle"
        if self.status == STALE:
            return "waiting for a latent" if self._latest is None else "stale: no fresh latent"
        return self.phase

    def _where(self, state: FollowerState) -> str:
        return (f"keyframe {state.keyframe}/{len(self.route) - 1}, {self.route.length - state.progress:.2f} m left, "
                f"match {state.quality:.2f}")

    def _say(self, before: FollowerState, after: FollowerState) -> None:
        """One log line on entering lost, done or localising again (with the follower's reason), on finding the
        place on the route, and a progress line every PROGRESS_LOG_KEYFRAMES keyframes."""
        log = self.get_logger()
        if after.status != before.status:
            if after.status == LOST:
                log.warning(f"lost at {self._where(after)}: {after.reason}; stopped, still matching")
            elif after.status == DONE:
                log.info(f"route done: {self._where(after)}")
            elif after.status == LOCALISING:
                log.warning(f"localising again: {after.reason}")
            elif after.status == FOLLOWING:
                found = "match back" if before.status == LOST else "found the place on the route"
                log.info(f"{found} at {self._where(after)}: following")
                self._progress_logged = after.keyframe
        if after.status == FOLLOWING and after.keyframe >= self._progress_logged + PROGRESS_LOG_KEYFRAMES:
            self._progress_logged = after.keyframe
            log.info(f"progress: {self._where(after)}")

    # -- parameters and health -------------------------------------------------------------------------------
    def _apply_params(self, params: RouteFollowerParams) -> None:
        self.config = params.follower_config()
        self.params = params

    def _diagnostic_values(self) -> list[tuple[str, str]]:
        state = self.state
        odometry = self._odometry_problem() or "fresh"
        status = self.status if self.status in (IDLE, STALE) else state.status
        return [
            ("state", status),
            ("phase", self._phase_said()),
            ("keyframe", str(state.keyframe)),
            ("keyframes", str(len(self.route))),
            ("match", f"{state.quality:.3f}"),
            ("distance_left", f"{self.route.length - state.progress:.3f}"),
            ("progress", f"{state.progress:.3f}"),
            ("lateral_offset", f"{state.lateral:.3f}"),
            ("confident", str(state.confident).lower()),
            ("reason", state.reason),
            ("odometry", odometry),
            ("odometry_rejected", str(self._odometry_rejected)),
            ("route", str(self.route_dir)),
            ("route_length_m", f"{self.route.length:.3f}"),
            ("model", str(self.model_dir)),
            ("goal_source", self.goal_source or "none"),
            ("command", f"{state.command[0]:.3f} m/s, {state.command[1]:.3f} rad/s"),
            *self._safety_diagnostics(),
            *self._link_diagnostics(),
        ]


def main(args: list[str] | None = None) -> int:
    """Console script / `python -m vae_ros.ros.nodes.route_follower_node` entry point."""
    return run_node(RouteFollowerNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())

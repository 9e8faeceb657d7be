"""Every topic, service and diagnostics key of vae_ros, written once: name, message type, QoS, who publishes
and who subscribes, and what it carries.

The nodes take their names from here, and docs/INTERFACE.md is generated from this module and the parameter
specs (vae_ros.ros.kit.params) by `python -m vae_ros.apps.interface_doc`; test/test_interface_doc.py fails when the
file is out of date or when a name of ../shared/CONTRACT.md is missing. ROS-free (types are named, not
imported), so launch files, docs tools and the core may read it.

All names are relative (so namespaces and remapping work) except `/clock` and `/diagnostics`, which ROS
defines as global. QoS names refer to the profiles of vae_ros.ros.qos.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- QoS profile names (vae_ros.ros.qos defines them) -------------------------------------------------------------
SENSOR = "sensor (best effort, keep last 1; reliable when every publisher is)"
RELIABLE = "reliable, keep last 10"
LATCHED = "reliable, transient local, keep last 1"


@dataclass(frozen=True)
class Topic:
    """A topic of the interface. `planned`: named by the contract, not implemented yet (the issue that adds it)."""

    name: str
    type: str
    qos: str
    publishers: tuple[str, ...]
    subscribers: tuple[str, ...]
    description: str
    planned: str = ""


@dataclass(frozen=True)
class Service:
    """A service of the interface."""

    name: str
    type: str
    servers: tuple[str, ...]
    description: str
    planned: str = ""


_SERVO, _WM, _ENC, _DEC, _SIM = "latent_servo_node", "world_model_node", "encoder_node", "decoder_node", "sim_node"
_ROUTE = "route_follower_node"
GOAL_CONTROLLERS = (_SERVO, _WM)  # the controllers whose goal is a latent (goal latents, goal images)
CONTROLLERS = (*GOAL_CONTROLLERS, _ROUTE)  # every node on the control-node shell (cmd_vel, scan safety, goals)

# -- sensors and robot state ----------------------------------------------------------------------------------
CAMERA_TOPIC = "camera/image_raw"
COMPRESSED_CAMERA_TOPIC = "camera/image_raw/compressed"
SCAN_TOPIC = "scan"
CLOUD_TOPIC = "lidar/points"
ODOM_TOPIC = "odom"
GROUND_TRUTH_ODOM_TOPIC = "ground_truth/odom"
CMD_TOPIC = "cmd_vel"
CLOCK_TOPIC = "/clock"
# -- latents and what is made of them -------------------------------------------------------------------------
LATENT_TOPIC = "vae/latent"
LATENT_STAMPED_TOPIC = "vae/latent_stamped"
RECONSTRUCTION_TOPIC = "vae/reconstruction"
DECODED_SCAN_TOPIC = "vae/scan"
DECODED_POINTS_TOPIC = "vae/points"
ANOMALY_TOPIC = "vae/anomaly_score"
# -- control ----------------------------------------------------------------------------------------------------
GOAL_IMAGE_TOPIC = "servo/goal_image"
GOAL_LATENT_TOPIC = "servo/goal_latent"
SERVO_ERROR_TOPIC = "servo/error"
PREDICTED_TOPIC = "world_model/predicted_latent"
PLANNED_TOPIC = "world_model/planned_latents"
ROUTE_PATH_TOPIC = "route/path"
SET_GOAL_SERVICE = "servo/set_goal"
CLEAR_GOAL_SERVICE = "servo/clear_goal"
DIAGNOSTICS_TOPIC = "/diagnostics"

_IMAGE, _FLOATS = "sensor_msgs/msg/Image", "std_msgs/msg/Float32MultiArray"
_STAMPED_LAYOUT = ("sensor_msgs/Image 32FC1, width D, height 1 (means) or 2 (row 1 log-variances), header of "
                   "the encoded sensor message")

TOPICS: tuple[Topic, ...] = (
    Topic(CAMERA_TOPIC, _IMAGE, SENSOR, (_SIM,), (_ENC, *GOAL_CONTROLLERS),
          "Camera frames; the controllers keep them beside the latent of the same stamp (view memory) so that "
          "goal images work with a LiDAR model."),
    Topic(COMPRESSED_CAMERA_TOPIC, "sensor_msgs/msg/CompressedImage", SENSOR, (), (_ENC,),
          "JPEG / PNG camera frames, with encoder_node `compressed:=true`."),
    Topic(SCAN_TOPIC, "sensor_msgs/msg/LaserScan", SENSOR, (_SIM,), (_ENC, *CONTROLLERS),
          "2-D LiDAR; every controller's scan safety layer checks each command against it (no fresh scan: zero "
          "velocity), and the world model's collision cost reads it."),
    Topic(CLOUD_TOPIC, "sensor_msgs/msg/PointCloud2", SENSOR, (_SIM,), (_ENC,),
          "3-D LiDAR, fields x, y, z float32."),
    Topic(ODOM_TOPIC, "nav_msgs/msg/Odometry", RELIABLE, (_SIM,), (_ROUTE,),
          "Wheel odometry (REP-103/105 frames): the ground truth unless sim_node's `odom_error` > 0. The route "
          "follower subscribes best effort, keep last 1 (it matches reliable and best-effort publishers) and uses "
          "only the newest pose's increments."),
    Topic(GROUND_TRUTH_ODOM_TOPIC, "nav_msgs/msg/Odometry", RELIABLE, (_SIM,), (),
          "The true pose, for evaluation only: no controller reads it."),
    Topic(CMD_TOPIC, "geometry_msgs/msg/Twist", RELIABLE, CONTROLLERS, (_SIM, _WM),
          "Velocity commands; zero on stale, missing or invalid input and on shutdown. The world model also "
          "reads the executed command for its one-step prediction."),
    Topic(CLOCK_TOPIC, "rosgraph_msgs/msg/Clock", RELIABLE, (_SIM,), ("every node with use_sim_time",),
          "Simulated time."),
    Topic(LATENT_TOPIC, _FLOATS, RELIABLE, (_ENC,), (_DEC,),
          "The latent mean (layout dim `latent`), or mean and log-variance (dims `stat` x `latent`) with "
          "`publish_variance:=true`."),
    Topic(LATENT_STAMPED_TOPIC, _IMAGE, RELIABLE, (_ENC,), (*CONTROLLERS, _DEC), _STAMPED_LAYOUT + "."),
    Topic(RECONSTRUCTION_TOPIC, _IMAGE, RELIABLE, (_DEC,), (),
          "The decoded observation as an image (every modality)."),
    Topic(DECODED_SCAN_TOPIC, "sensor_msgs/msg/LaserScan", RELIABLE, (_DEC,), (),
          "Scan models: the decoded scan with the input's stamp and frame."),
    Topic(DECODED_POINTS_TOPIC, "sensor_msgs/msg/PointCloud2", RELIABLE, (_DEC,), (),
          "Point-cloud models: the decoded cloud with the input's stamp and frame."),
    Topic(ANOMALY_TOPIC, "std_msgs/msg/Float32", RELIABLE, (_ENC,), (),
          "Per input, with `publish_anomaly_score:=true` (`anomaly_metric`)."),
    Topic(GOAL_IMAGE_TOPIC, _IMAGE, RELIABLE, (), GOAL_CONTROLLERS,
          "A goal as an image: encoded by a camera model, or the latent of the matching remembered view; with a "
          "fused model, aligned with the live view through the live scan (goal_align), else the camera expert's "
          "joint latent of it, until a remembered view matches."),
    Topic(GOAL_LATENT_TOPIC, _FLOATS, RELIABLE, (), GOAL_CONTROLLERS, "A goal as a latent (the vae/latent layout)."),
    Topic(SERVO_ERROR_TOPIC, "std_msgs/msg/Float32", RELIABLE, (_SERVO,), (), "The latent error norm."),
    Topic(PREDICTED_TOPIC, _IMAGE, RELIABLE, (_WM,), (),
          "The one-step prediction, stamped for the time it predicts (row 0 mean, row 1 log-variance)."),
    Topic(PLANNED_TOPIC, _IMAGE, RELIABLE, (_WM,), (),
          "The latents the chosen plan predicts, one row per planned step, stamped like the latent planned from."),
    Topic(ROUTE_PATH_TOPIC, "nav_msgs/msg/Path", LATCHED, (_ROUTE,), (),
          "The taught route's keyframe poses, for RViz, published once at start (a late subscriber still gets "
          "it). Frame `odom`: the route's frame, the teach run's odometry frame; it coincides with the repeating "
          "robot's odom only where the repeat started where the teach run did."),
    Topic(DIAGNOSTICS_TOPIC, "diagnostic_msgs/msg/DiagnosticArray", RELIABLE, (_ENC, _DEC, _SIM, *CONTROLLERS), (),
          "Health of every node: the keys below."),
)

SERVICES: tuple[Service, ...] = (
    Service(SET_GOAL_SERVICE, "std_srvs/srv/Trigger", CONTROLLERS,
            "The newest fresh latent becomes the goal (teach, then repeat). The route follower: repeat the route "
            "again from a fresh localisation."),
    Service(CLEAR_GOAL_SERVICE, "std_srvs/srv/Trigger", CONTROLLERS,
            "Forget the goal and stop. The route follower forgets its progress on the route and stays stopped "
            "until servo/set_goal."),
)

EXECUTABLES: tuple[tuple[str, str], ...] = (
    (_ENC, "sensor -> latent: modality image (Image or CompressedImage), scan (LaserScan) or pointcloud "
           "(PointCloud2)"),
    (_DEC, "latent -> reconstruction (Image, and the decoded LaserScan / PointCloud2), or generation from the prior"),
    (_SERVO, "latent + goal latent -> velocity command, by a control law in latent space"),
    (_WM, "latent + executed commands -> predicted latents; MPC toward a goal latent"),
    (_ROUTE, "repeats a taught route (a recording of latents and odometry) on live latents; finds its place on the "
             "route by latent similarity"),
    (_SIM, "MuJoCo robot world: camera, LiDAR, odometry, clock; consumes velocity commands"),
    ("vae-ros", "the command-line tool (subcommands below)"),
)

# Diagnostics keys (diagnostic_msgs/KeyValue) each node publishes on /diagnostics, beside the counters every
# node has (STATS_KEYS).
STATS_KEYS: tuple[tuple[str, str], ...] = (
    ("input_rate_hz", "messages received per second"),
    ("output_rate_hz", "messages published per second"),
    ("received / published / dropped / rejected / errors", "counters since start"),
    ("processing_time_*_ms, latency_*_ms", "per-message work and stamp-to-publish latency"),
    ("last_rejection, last_error", "the reason of the newest rejected message / unexpected error"),
)
_INFERENCE_KEYS: tuple[tuple[str, str], ...] = (
    ("backend", "the runtime serving the model"), ("modality", "image, scan, pointcloud or fused"),
    ("latent_dim", "latent size"), ("fallback", "why a faster runtime was passed over (when one was)"),
)
_SHELL_KEYS: tuple[tuple[str, str], ...] = (
    ("goal_source", "where the goal came from"),
    ("command", "the last command"),
    ("latent_publishers", "publishers of vae/latent_stamped in the graph (0: nothing to control from)"),
    ("future_stamped", "latents rejected for a stamp further ahead of the node's clock than `max_clock_skew`"),
    ("out_of_range", "latents and goal latents rejected for lying outside the model's range"),
    ("goals_dropped_after_clear", "goal latents sent before a servo/clear_goal and dropped after it"),
    ("latent_bound", "the bound |z_i| latents are held to (model.json training.latent_range, or 50)"),
    ("blocked", "what the scan safety layer did to the last command: no, slowed: ... free ahead/behind, stopped: ..."),
)
_CONTROL_KEYS: tuple[tuple[str, str], ...] = (
    ("state", "idle, the controller's active state, converged, lost or stale"),
    ("latent_error", "latent error norm to the goal (none without one)"),
    ("tolerance", "latent error that counts as converged"),
    *_SHELL_KEYS,
    ("remembered_views, goal_image", "the view memory and a goal image's match (LiDAR and fused models)"),
)
DIAGNOSTICS_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    _ENC: (*_INFERENCE_KEYS, ("input_topic", "the resolved input topic"),
           ("input_reliability", "best_effort or reliable, matched to the publishers"),
           ("preprocess", "where inputs are resized and normalised: cpu, or the model's torch device (device cuda:0)"),
           ("cuda_graph", "on where the batch-1 encoder replays a CUDA graph (cuda_graph parameter), else off"),
           ("sensors", "a fused model: the sensors that made the last latent, e.g. camera,scan (or camera, scan alone)"),
           ("live_sensors", "a fused model: the sensors with a usable message within sensor_timeout"),
           ("unpaired, stamp_offset_s", "a fused model: whether the live sensors' stamps have stopped pairing "
                                        "within sync_slop (each message then encoded alone), and the newest scan "
                                        "stamp minus the newest camera stamp")),
    _DEC: (*_INFERENCE_KEYS, ("mode", "decode or generate"), ("latent_input", "which latent topic is decoded"),
           ("latent_bound", "latents beyond this |z_i| are rejected, never decoded")),
    _SIM: (("frames, commands, rejected_commands, stale_stops, errors", "simulator counters"),),
    _SERVO: (*_CONTROL_KEYS,
             ("phase", "approaching, aligning yaw or backing off"),
             ("goal_estimate_robot_frame", "the servo head's estimate of the goal in the robot frame"),
             ("model", "the control model directory")),
    _WM: (*_CONTROL_KEYS,
          ("prediction_error_mean, prediction_error_p50, prediction_error_count", "one-step prediction error"),
          ("prediction_zscore_rms_mean", "calibration of the predicted variance"),
          ("plan_time_p50_ms, plan_time_p99_ms, plan_time_max_ms, plan_time_count", "time of the CEM planning steps (servo-law steps near the goal left out) and how many"),
          ("plan_cost", "cost of the chosen plan"),
          ("plan_device", "where the plans' candidates are scored: cpu, or the GPU (cuda:0) with plan_device"),
          ("late_plans_dropped", "plans finished after a stop, a clear, a new goal or on a stale latent: dropped")),
    _ROUTE: (("state", "idle (cleared), localising, following, lost, done or stale"),
             ("phase", "what the follower does now: waiting for a latent, waiting for odometry, localising, following "
                       "the path, approaching the last keyframe, lost, done, idle"),
             ("keyframe", "the keyframe the live latent matched best (0-based)"),
             ("keyframes", "keyframes in the route"),
             ("match", "that match's quality: 1 - distance / median distance over the route (1 = identical)"),
             ("distance_left", "metres of the taught path from the robot's projection on it to the last keyframe"),
             ("progress, lateral_offset", "metres along the path, and to its left (negative: right)"),
             ("confident", "whether the last match counted (quality >= min_quality, not an outlier)"),
             ("reason", "why the last step commanded zero (empty while following)"),
             ("odometry", "fresh, none yet, or how old the newest odometry is"),
             ("odometry_rejected", "odometry messages rejected (NaN, a non-unit quaternion)"),
             ("route, route_length_m", "the route folder and its length"),
             ("model", "the model directory (its weights digest is the route's)"),
             *_SHELL_KEYS),
}

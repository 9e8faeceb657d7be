"""ROS messages of the simulated robot, built the same way for sim_node and `vae-ros collect`.

Imports message packages lazily and never rclpy (message classes do not need it). Frames: odometry is
`odom` -> `base_link` (REP-105, twist in base_link); both LiDARs are in `lidar_link`; the
image is in `camera_optical_frame` (z forward, x right, y down). The static transforms between them are
world.LIDAR_OFFSET and world.CAMERA_OFFSET (no /tf is published: tf2_msgs has no PyPI wheel here).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vae_ros.core.conversions.image import array_to_image_msg
from vae_ros.core.conversions.lidar import scan_to_msg, xyz_to_pointcloud_msg
from vae_ros.ros.interface import TOPICS
from vae_ros.sim.world import Pose2D, ScanGeometry, Velocity2D

ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
LIDAR_FRAME = "lidar_link"
CAMERA_FRAME = "camera_optical_frame"

# Topic -> message type of what sim_node publishes or takes (vae_ros.ros.interface; bags store the names with a
# leading '/').
MSGTYPES = {topic.name: topic.type for topic in TOPICS if "sim_node" in (*topic.publishers, *topic.subscribers)}


def time_msg(seconds: float) -> Any:
    """builtin_interfaces/Time of a simulated time in seconds (rounded to the nanosecond)."""
    from builtin_interfaces.msg import Time

    ns = time_ns(seconds)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def time_ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def image_msg(image: np.ndarray, stamp: Any) -> Any:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image rgb8 in the camera's optical frame."""
    return array_to_image_msg(image, "rgb8", CAMERA_FRAME, stamp)


def scan_msg(ranges: np.ndarray, geometry: ScanGeometry, stamp: Any, scan_time: float) -> Any:
    """(beams,) ranges -> sensor_msgs/LaserScan in lidar_link (all beams at the same instant)."""
    return scan_to_msg(ranges, geometry.angle_min, geometry.angle_increment, geometry.range_min,
                       geometry.range_max, LIDAR_FRAME, stamp, scan_time=scan_time)


def cloud_msg(points: np.ndarray, rings: int, columns: int, stamp: Any) -> Any:
    """(rings * columns, 3) ring-major points (NaN = no return) -> organised PointCloud2 x, y, z float32."""
    msg = xyz_to_pointcloud_msg(points, LIDAR_FRAME, stamp)
    msg.height, msg.width = int(rings), int(columns)
    msg.row_step = msg.point_step * int(columns)
    return msg


def odometry_msg(pose: Pose2D, velocity: Velocity2D, stamp: Any) -> Any:
    """nav_msgs/Odometry odom -> base_link (the true pose, or wheel odometry's); covariances are zero."""
    from nav_msgs.msg import Odometry

    msg = Odometry()
    msg.header.stamp = stamp
    msg.header.frame_id = ODOM_FRAME
    msg.child_frame_id = BASE_FRAME
    msg.pose.pose.position.x = pose.x
    msg.pose.pose.position.y = pose.y
    msg.pose.pose.orientation.z = math.sin(pose.yaw / 2.0)
    msg.pose.pose.orientation.w = math.cos(pose.yaw / 2.0)
    msg.twist.twist.linear.x = velocity.linear_x
    msg.twist.twist.linear.y = velocity.linear_y
    msg.twist.twist.angular.z = velocity.angular_z
    return msg


def clock_msg(stamp: Any) -> Any:
    from rosgraph_msgs.msg import Clock

    return Clock(clock=stamp)


def twist_msg(linear: float, angular: float) -> Any:
    from geometry_msgs.msg import Twist

    msg = Twist()
    msg.linear.x = float(linear)
    msg.angular.z = float(angular)
    return msg

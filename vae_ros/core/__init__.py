"""The ROS-free core of vae_ros: models, losses, preprocessing, data, training, export, backends.

Nothing under vae_ros.core imports rclpy (a test checks it), so the core runs in training jobs, notebooks
and CI without a ROS graph.
"""

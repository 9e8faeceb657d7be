"""vae_ros: variational autoencoders on robots (ROS 2)."""

__version__ = "0.1.0"

"""The one message <-> array module: ROS sensor messages to NumPy arrays and back.

Decoders are duck-typed on message fields, so the same code reads rclpy messages (``data`` is an
``array.array``, ``bytes`` or a list) and rosbags' deserialised dataclasses (``data`` is a NumPy array);
the training data path and the encoder node therefore decode identically. Pixels and points are never
touched in Python loops: buffers are viewed with NumPy and converted with OpenCV.

This module never imports rclpy. Message classes (sensor_msgs, std_msgs) are imported lazily by the
builders only, so decoding works on machines that have rosbags but no ROS 2. Every problem with an input
raises vae_ros.core.errors.InputError, with a message saying what was wrong and what was expected.

common.py, image.py, lidar.py, latent.py, model_input.py
"""

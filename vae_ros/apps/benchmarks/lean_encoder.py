"""The lean reference process of `vae-ros bench footprint`: camera images in, latents out, nothing else.

It loads only rclpy (with sensor_msgs / std_msgs), onnxruntime, cv2 (and NumPy under them) and an
encoder.onnx: the least a ROS 2 process that turns images into latents with ONNX Runtime can load, so
encoder_node's memory and start time are measured against it. Deliberately nothing from vae_ros beyond
this file and the topic names (vae_ros.ros.interface, which imports nothing) (no checks, parameters or diagnostics): it is a yardstick, not a node to run on a robot.

    python -m vae_ros.apps.benchmarks.lean_encoder --onnx models/image_default/encoder.onnx
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from vae_ros.ros.interface import CAMERA_TOPIC, LATENT_TOPIC


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae_ros.apps.benchmarks.lean_encoder",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", required=True, metavar="PATH", help="encoder.onnx of an image model")
    parser.add_argument("--threads", type=int, default=0, metavar="N", help="intra-op threads (0: cores up to 4)")
    args = parser.parse_args(argv)

    import cv2
    import numpy as np
    import onnxruntime
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32MultiArray

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads or max(1, min(4, os.cpu_count() or 1))  # as encoder_node
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(args.onnx, sess_options=options, providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    channels, height, width = (int(s) for s in model_input.shape[1:4])  # (B, C, H, W)

    rclpy.init()
    node = rclpy.create_node("lean_encoder")
    publisher = node.create_publisher(Float32MultiArray, LATENT_TOPIC, 10)

    def on_image(msg: Image) -> None:  # bgr8 / rgb8, rows possibly padded
        rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
        image = rows[:, : msg.width * 3].reshape(msg.height, msg.width, 3)  # (H, W, 3)
        small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        code: int | None = cv2.COLOR_BGR2GRAY if channels == 1 else cv2.COLOR_BGR2RGB
        if msg.encoding == "rgb8":
            code = cv2.COLOR_RGB2GRAY if channels == 1 else None
        if code is not None:
            small = cv2.cvtColor(small, code)
        x = small.reshape(height, width, channels).transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        mean = session.run(None, {model_input.name: x})[0]  # (1, D)
        publisher.publish(Float32MultiArray(data=mean[0].tolist()))

    node.create_subscription(Image, CAMERA_TOPIC, on_image, 10)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

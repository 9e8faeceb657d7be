"""The ROS layer: everything that knows about rclpy, topics, QoS, bags and launch.

interface.py      every topic, service and diagnostics key, once (docs/INTERFACE.md is generated from it and the parameter specs by vae_ros.apps.interface_doc)
qos.py            named QoS profiles
bagio.py          rosbag2 MCAP writing and repair
sim_messages.py   the simulated robot's messages (sim_node and `vae-ros collect`)
kit/              what every node shares: parameters, the bad-message guard, /diagnostics, main, launch helpers
nodes/            the node shells: encoder, decoder, sim, the control base and the controllers

Messages <-> arrays live below, in vae_ros.core.conversions (no rclpy): the training path decodes bag messages with them too.
"""

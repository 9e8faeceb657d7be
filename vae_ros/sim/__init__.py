"""The simulator (ROS-free): MuJoCo world, exploration policy. Nodes and the CLI wrap it."""

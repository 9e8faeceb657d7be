"""Control that runs on the robot (ROS-free): the servo law and head, the world model's dynamics and MPC planner, the view memory, the LiDAR safety layer.
"""

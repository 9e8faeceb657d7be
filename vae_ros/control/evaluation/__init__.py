"""Research evaluation of control (ROS-free): closed-loop episodes in the simulator, basins of attraction, baselines, representations, plots.
"""

"""Control in latent space (ROS-free): representations of what the robot sees and how fit they are for servoing.

representations.py  what the robot observes at a pose, and the representations measured on it (pixels, PCA,
                    raw scan, any vae_ros model directory, the true pose as an oracle)
basin.py            the basin of attraction of latent-distance descent on a pose grid around goals
"""

"""Training for control (torch): the pose-metric VAE, the servo head, the latent dynamics and their data.
"""

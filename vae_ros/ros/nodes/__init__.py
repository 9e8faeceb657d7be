"""The node shells: parameters -> core objects -> publishers, subscriptions, timers; callbacks that convert, call the core and publish.

encoder_node.py, decoder_node.py, sim_node.py; control_base.py (what every controller shares: goals, the newest latent, the stale / future watchdog, cmd_vel that fails safe), latent_servo_node.py, world_model_node.py
"""

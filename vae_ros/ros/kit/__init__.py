"""What every node shares.

params.py     every node's parameters, once (ROS-free: launch files read it)
declare.py    declare / read / validate them on a node
guard.py      one path for a bad message (MessageGuard), the latest-wins worker
health.py     /diagnostics
run.py        a node's main (Fast DDS profile, signals, clean stop)
inference.py  one model on one runtime (encoder, decoder), anomaly scores
launch.py     what launch/*.launch.py share
"""

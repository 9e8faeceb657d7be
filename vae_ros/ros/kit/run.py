"""A node's `main`: the Fast DDS large-data profile, rclpy.init, build, spin, and a clean stop on Ctrl-C / SIGTERM at
any point of start-up (one error line and exit 2 for a VaeRosError).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from vae_ros.core.errors import ConfigError, VaeRosError
from vae_ros.ros.kit.declare import check_params_files, warn_unknown_parameters

FASTDDS_PROFILE_NAME = "fastdds_large_data.xml"
# Fast DDS 3 (Kilted and later) reads the first; Fast DDS 2.x (Humble 2.6, Jazzy 2.14) the second, which
# Fast DDS 3's RMW reports as deprecated, so it is only set for the distributions that need it.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
FASTDDS2_DISTROS = ("humble", "iron", "jazzy")


# -- Fast DDS -------------------------------------------------------------------------------------------------
def profile_variables_for(ros_distro: str) -> tuple[str, ...]:
    """The profile variables to set on this ROS distribution ($ROS_DISTRO): both on the Fast DDS 2.x ones
    (humble, iron, jazzy), only FASTDDS_DEFAULT_PROFILES_FILE on the others (Kilted's RMW warns about the
    old name). The launch files (vae_ros.ros.kit.launch) follow the same rule."""
    return PROFILE_VARIABLES if ros_distro in FASTDDS2_DISTROS else PROFILE_VARIABLES[:1]


def use_large_data_profile(environ: MutableMapping[str, str] | None = None) -> Path | None:
    """Point Fast DDS at the packaged large-data profile (config/fastdds_large_data.xml) unless the user
    chose a profile file (even an empty one) or another RMW. Must run before rclpy.init: Fast DDS reads
    the variable when the process creates its participant. Returns the profile set, or None.

    Why: with Fast DDS defaults, best-effort 640x480 images mostly never arrive (see the XML's comment).
    Every process on the robot that exchanges large messages needs the same profile; the launch files set
    it, and this covers `ros2 run`.
    """
    env = os.environ if environ is None else environ
    if any(name in env for name in PROFILE_VARIABLES):
        return None
    rmw = env.get("RMW_IMPLEMENTATION", "") or "rmw_fastrtps_cpp"
    if not rmw.startswith("rmw_fastrtps"):
        return None
    from vae_ros.resources import config_dir

    profile = config_dir() / FASTDDS_PROFILE_NAME
    if not profile.is_file():
        return None
    for name in profile_variables_for(env.get("ROS_DISTRO", "")):
        env[name] = str(profile)
    return profile


# -- main -----------------------------------------------------------------------------------------------------
def run_node(node_factory: Callable[[], Any], program: str, args: list[str] | None = None) -> int:
    """Shared `main`: Fast DDS profile, rclpy.init, build the node, spin, clean shutdown.

    A VaeRosError while building the node (missing or broken model, invalid parameter) prints one line
    `program: error: ...` on stderr and returns 2, without a traceback. Ctrl-C, SIGTERM and external
    shutdown return 0, at any point of start-up too, and also when they cut a callback short. A failed
    worker thread (a bug; its traceback is printed) returns 1.
    """
    use_large_data_profile()
    # SIGTERM (launch, systemd, docker stop) stops start-up at once, like Ctrl-C: a Python-level handler
    # raises in the main thread, whatever start-up is doing (importing torch, loading a model). rclpy's own
    # handler, installed by rclpy.init, calls this one after shutting its context down.
    del INTERRUPTED_BY[:]
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = _init_build_spin(node_factory, program, args)
    except KeyboardInterrupt:
        code = 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if INTERRUPTED_BY:
        forget_handled_interrupt()
    return code


# Termination signals received while run_node ran (their names), in order.
INTERRUPTED_BY: list[str] = []


def interrupt(signum: int, frame: Any) -> None:
    """SIGINT / SIGTERM handler: remembered, then KeyboardInterrupt in the main thread."""
    name = signal.Signals(signum).name
    INTERRUPTED_BY.append(name)
    raise KeyboardInterrupt(name)


def forget_handled_interrupt() -> None:
    """Let a process that handled its KeyboardInterrupt exit with its own code.

    CPython 3.11 sets a process-wide flag when a KeyboardInterrupt passes through code run by
    PyRun_String (extension modules run Python that way while they import, e.g. during model loading) and
    keeps it even after Python code caught the exception; at exit the interpreter then kills itself with
    SIGINT (measured: a node sent SIGTERM about a second into start-up exited -2 without a word, and
    `ros2 launch` reported it as died). The interrupt was handled here, so the flag is cleared. A no-op on
    interpreters without it.
    """
    import ctypes

    try:
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except (AttributeError, ValueError, OSError):
        pass


def _executor(cls: Any) -> Any:
    """An rclpy executor that survives being cut short while it is built.

    A Ctrl-C or SIGTERM landing inside rclpy's Executor.__init__ (or the context shut down under it) leaves
    the object half-built, and its __del__ then reads an attribute that was never set: an AttributeError
    traceback at exit, after an otherwise clean stop (seen in CI, a node stopped right after its start-up
    line). The attribute is set to None first, so that __del__ has nothing to release.
    """

    class StartupExecutor(cls):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self._sigint_gc = None
            super().__init__()

    return StartupExecutor()


def _init_build_spin(node_factory: Callable[[], Any], program: str, args: list[str] | None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    node = None
    code = 0
    try:
        check_params_files(sys.argv if args is None else args)
        try:
            rclpy.init(args=args)
        except Exception as err:  # rclpy's RCLError: bad --ros-args; its text ends in C source locations
            detail = str(err).split(", at /")[0]
            raise ConfigError(f"invalid ROS arguments: {detail}") from err
        node = node_factory()
        warn_unknown_parameters(node)
        executor = _executor(SingleThreadedExecutor)
        executor.add_node(node)
        executor.spin()
    except VaeRosError as err:
        # A signal that cut start-up short (mid-import it can surface as an ImportError) is a stop, not an error.
        code = 0 if INTERRUPTED_BY else 2
        if not INTERRUPTED_BY:
            print(f"{program}: error: {err}", file=sys.stderr, flush=True)
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    except Exception:
        # Ctrl-C shuts the context down while a callback may still run: its publish then fails. That is
        # the shutdown asked for (`ros2 launch` would otherwise report the node as died), not a failure.
        if rclpy.ok():
            raise
        code = 0
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            if getattr(node, "failed", False):
                code = 1
            node.destroy_node()
        rclpy.try_shutdown()
    return code

"""Run launch files through the real ROS 2 `launch` stack, as `ros2 launch vae_ros FILE args` does.

What it needs, set up here and cached:
- ROS 2's `launch`, `launch_ros`, `launch_testing` and `ros2launch` from the wheels in ../shared/ros-launch/
  (Jazzy and Humble lines; they conflict, so each goes into its own pip --target folder under
  .venv/ros-launch/<distro>, reused while the wheels are unchanged), plus osrf-pycommon from the registry;
  `rclpy`, `ament_index_python`, `lifecycle_msgs` and `lark` come from this environment's ROS wheels;
- the package colcon-built into a temporary install prefix, found through the ament index as on a robot.

Where ../shared/ros-launch is absent (a user's clone) the tests that need it skip, saying why.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import ros_env

REPO = Path(__file__).resolve().parent.parent
SHARED_LAUNCH = REPO.parent / "shared" / "ros-launch"
DISTROS = ("jazzy", "humble")
CACHE = Path(sys.prefix) / "ros-launch"
# What the launch wheels import beyond this environment (their package.xml dependencies).
EXTRA_REQUIREMENTS = ("osrf-pycommon>=2.0",)

# `ros2 launch PKG FILE args...` without ros2cli: the same ros2launch.api calls.
DRIVER = (
    "import sys\n"
    "from ros2launch.api import get_share_file_path_from_package, launch_a_launch_file\n"
    "path = get_share_file_path_from_package(package_name=sys.argv[1], file_name=sys.argv[2])\n"
    "sys.exit(launch_a_launch_file(launch_file_path=path, launch_file_arguments=sys.argv[3:]))\n"
)


def missing_reason(distro: str) -> str | None:
    """Why the real launch of `distro` cannot run here (None: it can)."""
    if not (SHARED_LAUNCH / distro).is_dir():
        return f"{SHARED_LAUNCH / distro} is absent: the real ROS 2 launch wheels are only beside the " \
               "repository on development and CI machines (on a robot, `ros2 launch` is the test)"
    if importlib.util.find_spec("colcon_core") is None:
        return "colcon is not installed (pip install colcon-common-extensions, see requirements-dev.txt)"
    return None


def launch_site(distro: str) -> Path:
    """The folder holding `distro`'s launch packages (installed on first use, then reused)."""
    wheels = sorted((SHARED_LAUNCH / distro).glob("*.whl"))
    requirements = list(EXTRA_REQUIREMENTS)
    if importlib.util.find_spec("lark") is None:
        requirements.append("lark")
    key = hashlib.sha256("\n".join([sys.version, *map(str, wheels), *requirements]).encode()).hexdigest()[:12]
    target = CACHE / f"{distro}-{key}"
    if (target / ".complete").is_file():
        return target
    partial = CACHE / f".{distro}-{key}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                             "--no-deps", "--target", str(partial), *map(str, wheels), *requirements],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"installing the {distro} launch wheels failed:\n{result.stdout}{result.stderr}")
    (partial / ".complete").touch()
    for stale in CACHE.glob(f"{distro}-*"):  # older wheel sets
        shutil.rmtree(stale, ignore_errors=True)
    os.replace(partial, target)
    return target


@dataclass(frozen=True)
class Installed:
    prefix: Path          # colcon's install/vae_ros
    site_packages: Path   # its Python packages


def colcon_install(base: Path) -> Installed:
    """colcon build the package into base/install (isolated layout), as on a robot."""
    command = [sys.executable, "-c", "import sys; from colcon_core.command import main; sys.exit(main())",
               "--log-base", str(base / "log"), "build", "--base-paths", str(REPO),
               "--build-base", str(base / "build"), "--install-base", str(base / "install")]
    result = subprocess.run(command, cwd=base, capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        raise RuntimeError("colcon build failed:\n" + result.stdout + result.stderr)
    prefix = base / "install" / "vae_ros"
    (site_packages,) = (prefix / "lib").glob("python3*/site-packages")
    return Installed(prefix, site_packages)


def launch_env(distro: str, installed: Installed, log_dir: Path, **extra: str) -> dict[str, str]:
    """The isolated ROS environment (test/ros_env.py) with `distro`'s launch and the colcon install."""
    paths = [str(launch_site(distro)), str(installed.site_packages)]
    if importlib.util.find_spec("composition_interfaces") is None:  # launch_ros imports it; no wheel exists
        paths.append(str(SHARED_LAUNCH / "stubs"))
    env = ros_env.ros_env(**extra)
    for variable in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "ROS_DISTRO"):
        env.pop(variable, None)  # the launch files choose the profile; the node wheels are Kilted's
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(installed.prefix), sys.prefix])
    env["ROS_LOG_DIR"] = str(log_dir)
    return env


class LaunchProcess:
    """`ros2 launch vae_ros FILE args` in its own process group; stop() is Ctrl-C, then a kill if needed."""

    def __init__(self, env: dict[str, str], log_path: Path, file_name: str, arguments: dict[str, str]) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        command = [sys.executable, "-c", DRIVER, "vae_ros", file_name,
                   *(f"{name}:={value}" for name, value in arguments.items())]
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int | None:
        """Ctrl-C as a terminal delivers it: SIGINT to the launch and its nodes (one process group; launch
        itself only escalates to SIGTERM, then SIGKILL, for processes still running after 5 s). Wait; kill
        the whole group if anything is left. Returns the launch's exit status, None when it had to be killed."""
        status: int | None = None
        try:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGINT)
            status = self.process.wait(timeout)
            deadline = time.monotonic() + timeout
            while _group_alive(self.process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(self.process.pid):
                status = None
        except subprocess.TimeoutExpired:
            status = None
        finally:
            if _group_alive(self.process.pid):
                os.killpg(self.process.pid, signal.SIGKILL)
            if self.process.poll() is None:
                self.process.wait(10)
            self._log.close()
        return status


def run_in_group(command: list[str], env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, str]:
    """Run command in its own process group; (exit status, output). On a timeout the whole group is killed
    (a launch's nodes too) and the status is -9."""
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
        return process.returncode, output
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return -9, output + f"\n[killed after {timeout:g} s]"
    finally:
        if _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a process we do not own reused the group id
        return False
    return True

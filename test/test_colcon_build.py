"""The package builds and installs as on a robot (`colcon build`) and as in a virtual environment (`pip
install`): the install trees hold what `ros2 run` / `ros2 launch` and the console scripts need."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vae_ros.resources import PACKAGED_MODELS

REPO = Path(__file__).resolve().parent.parent
EXECUTABLES = ("encoder_node", "decoder_node", "sim_node", "latent_servo_node", "route_follower_node", "vae-ros")
# What setup.py installs under share/vae_ros, relative to the source tree: of models/, the packaged models only.
SHARED_GLOBS = ("launch/*.launch.py", "config/*.yaml", "config/*.xml", "config/gazebo/*",
                *(f"models/{name}/**/*" for name in PACKAGED_MODELS))

pytestmark = pytest.mark.slow


def _shared_files() -> list[str]:
    files = {str(p.relative_to(REPO)) for pattern in SHARED_GLOBS for p in REPO.glob(pattern) if p.is_file()}
    return sorted(f for f in files if "__pycache__" not in f)


def _check_share(share: Path) -> None:
    assert (share / "package.xml").read_text() == (REPO / "package.xml").read_text()
    for relative in ["launch/encoder.launch.py", "config/fastdds_large_data.xml", *_shared_files()]:
        assert (share / relative).is_file(), f"{relative} is not installed under {share}"
    assert sorted(p.name for p in (share / "models").iterdir()) == sorted(PACKAGED_MODELS)


def test_colcon_build_installs_a_ros_package(tmp_path: Path) -> None:
    if importlib.util.find_spec("colcon_core") is None:
        pytest.skip("colcon is not installed (pip install colcon-common-extensions, see requirements-dev.txt)")
    command = [sys.executable, "-c", "import sys; from colcon_core.command import main; sys.exit(main())",
               "--log-base", str(tmp_path / "log"), "build", "--base-paths", str(REPO),
               "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install")]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Summary: 1 package finished" in result.stdout
    prefix = tmp_path / "install" / "vae_ros"  # colcon's default isolated layout
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "vae_ros").is_file()
    _check_share(prefix / "share" / "vae_ros")
    for name in EXECUTABLES:  # `ros2 run vae_ros NAME` looks in lib/vae_ros (setup.cfg)
        executable = prefix / "lib" / "vae_ros" / name
        assert executable.is_file() and os.access(executable, os.X_OK), executable
    (site_packages,) = (prefix / "lib").glob("python3*/site-packages")
    assert (site_packages / "vae_ros" / "__init__.py").is_file()

    # The installed package finds its share files through the ament index, as on a robot.
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), PYTHONPATH=str(site_packages))
    probe = subprocess.run([sys.executable, "-c", "import vae_ros, vae_ros.resources as r; "
                            "print(vae_ros.__file__); print(r.config_dir())"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    module_file, config_dir = probe.stdout.split()
    assert Path(module_file).is_relative_to(site_packages)
    assert Path(config_dir) == prefix / "share" / "vae_ros" / "config"
    help_run = subprocess.run([str(prefix / "lib" / "vae_ros" / "vae-ros"), "record", "--help"], env=env,
                              capture_output=True, text=True, timeout=60)
    assert help_run.returncode == 0 and help_run.stdout.startswith("usage: vae-ros record"), help_run.stderr


def test_pip_install_puts_console_scripts_in_bin(tmp_path: Path) -> None:
    """setup.cfg sends scripts to lib/vae_ros for colcon; a pip install must still put them in bin."""
    source = tmp_path / "src"  # a copy, so that setuptools' build/ folder does not land in the checkout
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "install", "log", "test", "bench", "__pycache__", "*.egg-info", ".*_cache"))
    # A model the user trained into models/ (as the README's workflow once did) is theirs: not installed.
    user_model = source / "models" / "my_camera"
    user_model.mkdir(exist_ok=True)
    (user_model / "model.json").write_text("{}")
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip would first uninstall the environment's own (editable) vae_ros.
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                             "--no-build-isolation", "--ignore-installed", "--disable-pip-version-check",
                             "--prefix", str(prefix), str(source)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in EXECUTABLES:
        assert (prefix / "bin" / name).is_file(), f"{name} is not in bin/"
    assert not (prefix / "lib" / "vae_ros").exists()
    _check_share(prefix / "share" / "vae_ros")
    assert (Path(sys.executable).parent / "vae-ros").is_file(), "the test environment's vae_ros was removed"

"""Where the package's share files (models/, config/, launch/) live, however it was installed."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "vae_ros"
# The models the package ships under models/ (setup.py installs these and nothing else there; the packaged-model
# tests check exactly these). A model a user trains into models/ is theirs: neither installed nor tested.
PACKAGED_MODELS: tuple[str, ...] = ("control_default", "fused_default", "image_default", "pointcloud_default", "scan_default")
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """share/vae_ros of a colcon or pip install, else the source tree (editable installs, tests)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            return Path(get_package_share_directory(PACKAGE))
        except (PackageNotFoundError, KeyError, ValueError, OSError):  # OSError: AMENT_PREFIX_PATH unset
            pass
    except ImportError:
        pass
    prefix_share = Path(sys.prefix) / "share" / PACKAGE
    if (prefix_share / "models").is_dir():
        return prefix_share
    return _SOURCE_ROOT


def models_dir() -> Path:
    return share_dir() / "models"


def packaged_model_dirs() -> list[Path]:
    """The directories of the packaged models (PACKAGED_MODELS), whatever else models/ holds."""
    return [models_dir() / name for name in PACKAGED_MODELS]


def config_dir() -> Path:
    return share_dir() / "config"


def default_model_dir(modality: str) -> Path:
    """The packaged default model for a modality: models/<modality>_default."""
    return models_dir() / f"{modality}_default"

"""Model configuration: the dataclasses behind model.json.

A model directory is self-describing: model.json holds the modality, the input specification the
preprocessing follows, the architecture and a training summary. Nothing about a model's shape is repeated
in ROS parameters; nodes read it from here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vae_ros.core.errors import ConfigError, ModelFileError

FORMAT_VERSION = 1
MODALITIES = ("image", "scan", "pointcloud")
LIKELIHOODS = ("gaussian", "bernoulli")


@dataclass
class ImageSpec:
    """What the image model sees: (channels, height, width) floats in [0, 1].

    channels 3 means RGB order, 1 means luminance. Inputs of any size are resized with INTER_AREA.
    """

    height: int = 64
    width: int = 64
    channels: int = 3

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"image channels must be 1 or 3, got {self.channels}")
        for name in ("height", "width"):
            size = getattr(self, name)
            if size < 16 or size % 16:
                raise ConfigError(f"image {name} must be a multiple of 16 and >= 16, got {size}")


@dataclass
class ScanSpec:
    """What the LaserScan model sees: (2, beams) = normalised range r / range_max in [0, 1], validity mask.

    Model beam i sits at angle_min + (i + 0.5) * (angle_max - angle_min) / beams; see
    vae_ros.core.preprocess.preprocess_scan for the mapping rule from scans of any beam count.
    """

    beams: int = 360
    angle_min: float = -math.pi
    angle_max: float = math.pi
    range_max: float = 10.0

    def validate(self) -> None:
        if self.beams < 16 or self.beams % 8:
            raise ConfigError(f"scan beams must be a multiple of 8 and >= 16, got {self.beams}")
        if not self.angle_max > self.angle_min:
            raise ConfigError("scan angle_max must be greater than angle_min")
        if not self.range_max > 0:
            raise ConfigError("scan range_max must be positive")

    @property
    def wraps(self) -> bool:
        """True when the beams cover a full turn, so the model uses circular convolution."""
        return abs((self.angle_max - self.angle_min) - 2 * math.pi) < 1e-6


@dataclass
class PointCloudSpec:
    """What the PointCloud2 model sees: a spherical range image (2, rows, cols) = r / range_max, mask.

    Row 0 looks up at fov_up_deg, the last row down at fov_down_deg; column 0 looks backwards (yaw -pi)
    and columns increase counter-clockwise (REP-103). The nearest point wins a pixel.
    """

    rows: int = 16
    cols: int = 256
    fov_up_deg: float = 15.0
    fov_down_deg: float = -15.0
    range_max: float = 10.0

    def validate(self) -> None:
        if self.rows < 8 or self.rows % 8:
            raise ConfigError(f"pointcloud rows must be a multiple of 8 and >= 8, got {self.rows}")
        if self.cols < 16 or self.cols % 16:
            raise ConfigError(f"pointcloud cols must be a multiple of 16, got {self.cols}")
        if not self.fov_up_deg > self.fov_down_deg:
            raise ConfigError("pointcloud fov_up_deg must be greater than fov_down_deg")
        if not self.range_max > 0:
            raise ConfigError("pointcloud range_max must be positive")


@dataclass
class ArchSpec:
    """Architecture hyper-parameters. Each entry of `channels` is one stride-2 convolution stage."""

    latent_dim: int = 16
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    likelihood: str = "gaussian"
    # Fixed observation noise of the Gaussian likelihood (in normalised units).
    obs_std: float = 0.1

    def validate(self) -> None:
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ConfigError(f"channels must be a non-empty list of positive ints, got {self.channels}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if not self.obs_std > 0:
            raise ConfigError("obs_std must be positive")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and preprocess its inputs: the content of model.json."""

    modality: str = "image"
    arch: ArchSpec = field(default_factory=ArchSpec)
    image: ImageSpec | None = None
    scan: ScanSpec | None = None
    pointcloud: PointCloudSpec | None = None
    # Filled by training: data source, epochs, ELBO, reconstruction error, active units...
    training: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.modality == "image" and self.image is None:
            self.image = ImageSpec()
        elif self.modality == "scan" and self.scan is None:
            self.scan = ScanSpec()
        elif self.modality == "pointcloud" and self.pointcloud is None:
            self.pointcloud = PointCloudSpec()

    # -- derived shapes ---------------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.arch.latent_dim

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one preprocessed sample, without the batch dimension."""
        if self.modality == "image":
            spec = self.image_spec
            return (spec.channels, spec.height, spec.width)
        if self.modality == "scan":
            return (2, self.scan_spec.beams)
        return (2, self.pointcloud_spec.rows, self.pointcloud_spec.cols)

    @property
    def output_channels(self) -> int:
        """Channels the decoder produces: the image channels, or 1 (range) for LiDAR."""
        return self.image_spec.channels if self.modality == "image" else 1

    @property
    def image_spec(self) -> ImageSpec:
        if self.image is None:
            raise ConfigError(f"model modality is {self.modality!r}, not 'image'")
        return self.image

    @property
    def scan_spec(self) -> ScanSpec:
        if self.scan is None:
            raise ConfigError(f"model modality is {self.modality!r}, not 'scan'")
        return self.scan

    @property
    def pointcloud_spec(self) -> PointCloudSpec:
        if self.pointcloud is None:
            raise ConfigError(f"model modality is {self.modality!r}, not 'pointcloud'")
        return self.pointcloud

    def validate(self) -> None:
        if self.modality not in MODALITIES:
            raise ConfigError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        self.arch.validate()
        spec = {"image": self.image, "scan": self.scan, "pointcloud": self.pointcloud}[self.modality]
        if spec is None:
            raise ConfigError(f"model.json has no '{self.modality}' input spec")
        spec.validate()

    # -- (de)serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("image", "scan", "pointcloud"):
            if out[name] is None:
                del out[name]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from model.json's content; ModelFileError in one line naming the first field of the wrong
        type ("height": "64", "format_version": "one") or value, before anything is built from it."""
        version = data.get("format_version", 0)
        if not _is_int(version):
            raise ModelFileError(f"model.json format_version must be an integer, got {version!r}")
        if version > FORMAT_VERSION or version < 1:
            raise ModelFileError(
                f"model.json format_version {version} is not supported (this vae_ros reads 1..{FORMAT_VERSION})"
            )
        if "modality" not in data:
            raise ModelFileError("model.json misses the key 'modality'")
        if not isinstance(data["modality"], str):
            raise ModelFileError(f"model.json modality must be a string, got {data['modality']!r}")
        training = data.get("training", {})
        if not isinstance(training, dict):
            raise ModelFileError(f"model.json training must be an object, got {type(training).__name__}")
        cfg = cls(
            modality=data["modality"],
            arch=_typed(ArchSpec, data.get("arch", {}), "arch"),
            image=_typed(ImageSpec, data["image"], "image") if data.get("image") else None,
            scan=_typed(ScanSpec, data["scan"], "scan") if data.get("scan") else None,
            pointcloud=_typed(PointCloudSpec, data["pointcloud"], "pointcloud") if data.get("pointcloud") else None,
            training=dict(training),
            format_version=version,
        )
        try:
            cfg.validate()
        except ConfigError as err:
            raise ModelFileError(f"model.json is inconsistent: {err}") from err
        return cfg

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return cls.from_dict(read_json_object(path))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _matches(value: Any, annotation: str) -> bool:
    """Whether a JSON value fits a spec field's annotation (the few the specs use)."""
    if annotation == "int":
        return _is_int(value)
    if annotation == "float":
        return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
    if annotation == "str":
        return isinstance(value, str)
    if annotation == "list[int]":
        return isinstance(value, list) and all(_is_int(v) for v in value)
    return True


_TYPE_WORDS = {"int": "an integer", "float": "a finite number", "str": "a string", "list[int]": "a list of integers"}


def _typed(spec_class: type[Any], values: Any, section: str) -> Any:
    """spec_class(**values) once every value has its field's type: a string "64" for a height would
    otherwise fail deep inside validation or model building, with a traceback."""
    if not isinstance(values, dict):
        raise ModelFileError(f"model.json {section} must be an object, got {type(values).__name__}")
    fields = {f.name: str(f.type) for f in dataclasses.fields(spec_class)}
    for key, value in values.items():
        if key not in fields:
            raise ModelFileError(f"model.json {section} has an unknown field {key!r}; expected {', '.join(fields)}")
        if not _matches(value, fields[key]):
            raise ModelFileError(f"model.json {section}.{key} must be {_TYPE_WORDS[fields[key]]}, got {value!r}")
    return spec_class(**values)


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON file holding an object (model.json), or ModelFileError saying what is wrong with it."""
    from vae_ros.core.files import MAX_JSON_BYTES, check_regular_file

    path = Path(path)
    check_regular_file(path, MAX_JSON_BYTES)  # not a FIFO or /dev/zero: reading those never ends
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ModelFileError(f"{path} does not exist") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path} is not readable JSON: {err}") from err
    except RecursionError as err:  # e.g. 100000 nested brackets: deeper than any file of ours
        raise ModelFileError(f"{path} is not readable JSON: nested too deeply") from err
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} must hold a JSON object")
    return data

"""Domain errors. Callers (nodes, the CLI) catch these and only these; anything else is a bug."""


class VaeRosError(Exception):
    """Base of every error vae_ros raises on purpose; its message is meant for the user as it is."""


class InputError(VaeRosError, ValueError):
    """A sensor message or array that cannot be used (wrong encoding, size, step, NaN, empty cloud...)."""


class ModelFileError(VaeRosError, ValueError):
    """A model directory or file that is missing, corrupt, unsafe (pickle) or inconsistent."""


class DataError(VaeRosError, ValueError):
    """A data source (bag, topic, image folder) that cannot be read or holds no usable samples."""


class ConfigError(VaeRosError, ValueError):
    """An invalid configuration or argument value."""


class BackendUnavailableError(VaeRosError, RuntimeError):
    """An inference backend (onnxruntime, TensorRT, CUDA) that is not installed or cannot run here."""

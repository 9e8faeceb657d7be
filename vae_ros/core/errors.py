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


class TrainingDivergedError(VaeRosError, RuntimeError):
    """Training produced a non-finite loss or weights (too high a learning rate, broken data)."""


class RosError(VaeRosError, RuntimeError):
    """A ROS 2 node that a tool started, or the link to it, failed: see the subclasses."""


class NodeExitedError(RosError):
    """A node process ended on its own; its log says why."""


class RosTimeoutError(RosError, TimeoutError):
    """A message, service or answer expected over ROS 2 did not come in time."""

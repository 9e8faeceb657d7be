"""Helpers shared by the vae_ros node shells: parameters, /diagnostics, the latest-wins worker, Fast DDS
set-up, raw-message decoding, anomaly scores and a common `main`.

Nothing here runs at import time; rclpy message packages are imported where they are used.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from vae_ros.core.config import ModelConfig
from vae_ros.core.diagnostics import NodeStats
from vae_ros.core.errors import ConfigError, InputError, VaeRosError
from vae_ros.node_params import InferenceParams, NodeParams, specs_of

if TYPE_CHECKING:
    from vae_ros.core.backends import InferenceBackend

FASTDDS_PROFILE_NAME = "fastdds_large_data.xml"
# Fast DDS 3 (Kilted and later) reads the first; Fast DDS 2.x (Humble 2.6, Jazzy 2.14) the second, which
# Fast DDS 3's RMW reports as deprecated, so it is only set for the distributions that need it.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
FASTDDS2_DISTROS = ("humble", "iron", "jazzy")
ANOMALY_METRICS = ("reconstruction", "neg_elbo")


# -- Fast DDS -------------------------------------------------------------------------------------------------
def profile_variables_for(ros_distro: str) -> tuple[str, ...]:
    """The profile variables to set on this ROS distribution ($ROS_DISTRO): both on the Fast DDS 2.x ones
    (humble, iron, jazzy), only FASTDDS_DEFAULT_PROFILES_FILE on the others (Kilted's RMW warns about the
    old name). The launch files (vae_ros.launch_support) follow the same rule."""
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


# -- parameters -----------------------------------------------------------------------------------------------
P = TypeVar("P", bound=NodeParams)


def declare_params(node: Any, params_type: type[P]) -> P:
    """Declare every field of a parameters dataclass (vae_ros.node_params) as a ROS parameter, with its
    description, read-only flag and range, and return the start-up values read into it, validated.
    ConfigError, in one line, for a value of the wrong type, out of range or invalid."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values = {}
    for spec in specs_of(params_type):
        descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
        if spec.range is not None and spec.kind is float:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                                  to_value=float(spec.range[1]))]
        elif spec.range is not None and spec.kind is int:
            descriptor.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]))]
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        try:
            values[spec.name] = node.declare_parameter(spec.name, default, descriptor).value
        except InvalidParameterTypeException as err:
            raise ConfigError(
                f"parameter {spec.name!r} must be of type {spec.kind.__name__} (e.g. {default!r}): {err}"
            ) from err
        except InvalidParameterValueException as err:
            raise ConfigError(f"parameter {spec.name!r}: {err}") from err
    return params_type.from_values(values)


def on_parameter_changes(node: Any, current: Callable[[], P], apply: Callable[[P], None]) -> None:
    """Register the usual on-set-parameters callback: a validated copy of current() with the new values goes
    to apply(), which swaps it in (and may raise ConfigError to refuse it with a reason); a ConfigError
    refuses the change with its message as the reason."""
    from rcl_interfaces.msg import SetParametersResult

    def callback(parameters: list[Any]) -> Any:
        try:
            apply(current().updated({p.name: p.value for p in parameters}))
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(callback)


# -- encoder_node and decoder_node: one model on one runtime ---------------------------------------------------
@dataclass
class InferenceModel:
    """A VAE loaded for a node: directory, config, backend and what its warm-up did."""

    model_dir: Path
    config: ModelConfig
    backend: InferenceBackend
    warm_up: str = ""

    def diagnostic_values(self, *node_values: tuple[str, str]) -> list[tuple[str, str]]:
        """The /diagnostics pairs every inference node reports, with the node's own in the middle."""
        return [
            ("backend", self.backend.name),
            ("modality", self.config.modality),
            ("latent_dim", str(self.config.latent_dim)),
            *node_values,
            *([("fallback", self.backend.fallback)] if self.backend.fallback else []),
            *([("warm_up", self.warm_up)] if self.warm_up else []),
        ]


def load_inference_model(node: Any, params: InferenceParams, threads: int | None = None) -> InferenceModel:
    """The model the parameters name (the packaged default for the modality when `model` is empty), checked
    against `modality`, on the runtime asked for; a fallback runtime is said once in the log."""
    from vae_ros.core.backends import create_backend, load_config
    from vae_ros.core.model_dir import resolve_model_dir

    model_dir = resolve_model_dir(params.model, params.modality or "image")
    config = load_config(model_dir)
    if params.modality and params.modality != config.modality:
        raise ConfigError(
            f"modality {params.modality!r} does not match the model's {config.modality!r} "
            f"({model_dir}); set modality to {config.modality!r} or pass another model"
        )
    backend = create_backend(model_dir, params.backend, params.device, threads=threads,
                             engine_cache=params.engine_cache or None)
    if backend.fallback:  # said once, here; /diagnostics repeats it
        node.get_logger().warning(backend.fallback)
    return InferenceModel(model_dir, config, backend)


def warm_up_model(node: Any, model: InferenceModel, run: Callable[[np.ndarray], Any], shape: tuple[int, ...],
                  count: int) -> None:
    """`count` runs on a blank (1, *shape) input before the first message (engine builds, CUDA start)."""
    from vae_ros.core.accel import warm_up, warm_up_summary

    model.warm_up = warm_up_summary(warm_up(run, shape, count))
    if model.warm_up:
        node.get_logger().info(model.warm_up)


# -- diagnostics ----------------------------------------------------------------------------------------------
class HealthReport(Protocol):
    """What one DiagnosticStatus carries (core.diagnostics.StatsSnapshot is one)."""

    @property
    def level(self) -> int: ...

    @property
    def message(self) -> str: ...

    def values(self) -> list[tuple[str, str]]: ...


class HealthSource(Protocol):
    """Where a node's health comes from (core.diagnostics.NodeStats is one)."""

    def snapshot(self) -> HealthReport: ...


class DiagnosticsPublisher:
    """Publishes one DiagnosticStatus for a node on /diagnostics every `period` seconds from its health
    source (usually NodeStats).

    `extra` returns additional (key, value) pairs (backend, model, QoS in use...); `stamp` the header stamp
    (default: the node's clock now); `clock` the timer's clock (default: the node's).
    """

    def __init__(
        self,
        node: Any,
        stats: HealthSource,
        name: str,
        hardware_id: str = "",
        period: float = 1.0,
        extra: Callable[[], list[tuple[str, str]]] | None = None,
        stamp: Callable[[], Any] | None = None,
        clock: Any = None,
    ) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from vae_ros.qos import DIAGNOSTICS_QOS

        self._node = node
        self._stats = stats
        self._name = name
        self._hardware_id = hardware_id
        self._extra = extra
        self._stamp = stamp or (lambda: node.get_clock().now().to_msg())
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self._timer = node.create_timer(period, self.publish, clock=clock)

    def build(self) -> Any:
        """The DiagnosticArray for the current snapshot."""
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        snap = self._stats.snapshot()
        status = DiagnosticStatus()
        status.level = bytes([snap.level])
        status.name = self._name
        status.message = snap.message
        status.hardware_id = self._hardware_id
        pairs = snap.values() + (self._extra() if self._extra else [])
        status.values = [KeyValue(key=key, value=value) for key, value in pairs]
        array = DiagnosticArray()
        array.header.stamp = self._stamp()
        array.status = [status]
        return array

    def publish(self) -> None:
        self._publisher.publish(self.build())


# Stamps further than this from the node's clock come from another time source (sim time vs wall time,
# an unsynchronised sensor computer): an end-to-end latency computed from them would be meaningless.
CLOCK_MISMATCH_S = 60.0


def stamp_age(node: Any, stamp: Any) -> float | None:
    """Seconds from a header stamp (sec, nanosec) to the node's clock now.

    None for an unset (zero) stamp, and for a stamp more than CLOCK_MISMATCH_S away from the node's clock,
    which is logged (throttled) with the usual cause: a simulator or bag publishing sim time to a node
    without use_sim_time.
    """
    stamp_ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    if stamp_ns <= 0:
        return None
    age = (node.get_clock().now().nanoseconds - stamp_ns) * 1e-9
    if abs(age) > CLOCK_MISMATCH_S:
        node.get_logger().warning(
            f"input header stamps are {age:.0f} s away from this node's clock, so no end-to-end latency is "
            "reported; if the input comes from a simulator or a bag, set use_sim_time:=true; if it comes from "
            "another machine, synchronise the two clocks (chrony, PTP)",
            throttle_duration_sec=60.0,
        )
        return None
    return age


# -- per-message exception safety ---------------------------------------------------------------------------
WARN_THROTTLE_S = 2.0
ERROR_THROTTLE_S = 10.0


class MessageGuard:
    """Runs one message's work so that no single message can take the node down.

    A VaeRosError (a malformed or unusable message) is logged as a throttled warning and passed to
    `on_rejected`; anything else (a bug, a MemoryError from a hostile message) is logged at error level
    with its traceback, throttled, and passed to `on_error`, which nodes surface in /diagnostics as
    ERROR. Either way the message is dropped and the node goes on. Only per-message work is wrapped:
    start-up errors still end the process (run_node). KeyboardInterrupt and SystemExit pass through.
    """

    def __init__(self, node: Any, on_rejected: Callable[[str], None], on_error: Callable[[str], None]) -> None:
        self._node = node
        self._on_rejected = on_rejected
        self._on_error = on_error

    @classmethod
    def for_stats(cls, node: Any, stats: NodeStats) -> MessageGuard:
        """The usual guard: rejections and errors counted in the node's NodeStats."""
        return cls(node, stats.on_rejected, stats.on_error)

    def run(self, what: str, work: Callable[..., Any], *args: Any) -> bool:
        """Call work(*args); True when it completed, False when the message was dropped."""
        try:
            work(*args)
        except VaeRosError as err:
            self._on_rejected(str(err))
            self._node.get_logger().warning(f"rejected {what}: {err}", throttle_duration_sec=WARN_THROTTLE_S)
            return False
        except Exception as err:  # one bad message must not stop the robot's perception
            context = getattr(self._node, "context", None)
            if context is not None and not context.ok():
                return False  # Ctrl-C shut the context down under this message (its publish failed): no error
            self._on_error(f"{type(err).__name__}: {err}")
            self._node.get_logger().error(
                f"unexpected error while processing {what} (dropped; the node keeps running):\n"
                f"{traceback.format_exc()}", throttle_duration_sec=ERROR_THROTTLE_S)
            return False
        return True

    def wrap(self, what: str, work: Callable[..., Any]) -> Callable[..., None]:
        """A callback that runs work through the guard (for subscriptions, timers, workers)."""

        def guarded(*args: Any) -> None:
            self.run(what, work, *args)

        return guarded


# -- latest-wins worker ---------------------------------------------------------------------------------------
class LatestWorker:
    """Processes submitted items on its own thread, newest only: an item still waiting when a newer one
    arrives is dropped (and counted), so a slow model never works through stale frames, and the executor
    thread stays free to take messages off the wire, run timers and answer parameter requests.

    Nodes pass `process` through MessageGuard.wrap, so one bad item is logged, counted and dropped. What
    still escapes (a process not wrapped, or a BaseException) ends the thread with its traceback and
    `on_failure` runs (the nodes shut down their context so `main` exits non-zero).
    """

    def __init__(
        self,
        process: Callable[[Any], None],
        on_dropped: Callable[[int], None],
        on_failure: Callable[[], None],
        name: str = "vae_ros_worker",
    ) -> None:
        self._process = process
        self._on_dropped = on_dropped
        self._on_failure = on_failure
        self._cond = threading.Condition()
        self._pending: Any = None
        self._has_pending = False
        self._stopping = False
        self.failed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Hand over the newest item; replaces (drops) one not yet started."""
        with self._cond:
            dropped = self._has_pending
            self._pending, self._has_pending = item, True
            self._cond.notify()
        if dropped:
            self._on_dropped(1)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._has_pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                item, self._pending, self._has_pending = self._pending, None, False
            done = False
            try:
                self._process(item)
                done = True
            finally:
                if not done:
                    self.failed = True
                    self._on_failure()

    def close(self, timeout: float = 2.0) -> None:
        """Stop after the item in progress; a pending one is discarded."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


# -- raw (CDR) messages ---------------------------------------------------------------------------------------
class CdrDecoder:
    """Serialized CDR bytes -> a rosbags message dataclass whose arrays are views on the bytes.

    The encoder subscribes raw and decodes with this: for a 640x480 image it costs about 0.1 ms where
    rclpy's conversion to a Python message costs about 0.4 ms, and vae_ros.conversions reads rosbags
    messages exactly like rclpy ones (the training path uses them too).
    """

    def __init__(self, msgtype: str) -> None:
        from rosbags.serde import SerdeError
        from rosbags.typesys import Stores, get_typestore

        self.msgtype = msgtype  # e.g. "sensor_msgs/msg/Image"
        self._typestore = get_typestore(Stores.LATEST)
        self._errors: tuple[type[BaseException], ...] = (SerdeError, ValueError, IndexError, KeyError)
        if msgtype not in self._typestore.types:
            raise ConfigError(f"message type {msgtype} is unknown to rosbags")

    def decode(self, raw: bytes) -> Any:
        try:
            return self._typestore.deserialize_cdr(raw, self.msgtype)
        except self._errors as err:
            raise InputError(f"{self.msgtype} message could not be deserialised: {err}") from err


# -- anomaly scores -------------------------------------------------------------------------------------------
def anomaly_score(
    x: np.ndarray, x_hat: np.ndarray, mean: np.ndarray, logvar: np.ndarray, config: ModelConfig, metric: str
) -> float:
    """How unusual one input is to the model; higher means more anomalous.

    x: (1, *input_shape) model input; x_hat: (1, C_out, ...) decoder output in [0, 1] for the latent mean;
    mean, logvar: (1, D). metric "reconstruction": mean squared error over the (valid) elements, in
    normalised units. "neg_elbo": -ELBO in nats per sample, the same terms as core.losses.vae_loss with
    the decoder evaluated at the mean (gaussian: N(x; x_hat, obs_std^2); bernoulli: cross-entropy).
    """
    if metric not in ANOMALY_METRICS:
        raise ConfigError(f"anomaly_metric must be one of {', '.join(ANOMALY_METRICS)}, got {metric!r}")
    x64 = np.asarray(x, dtype=np.float64)
    if config.modality == "image":
        target, mask = x64, None
    else:
        target, mask = x64[:, :1], x64[:, 1:2]  # (1, 1, ...) range and validity
    pred = np.asarray(x_hat, dtype=np.float64)
    if pred.shape != target.shape:
        raise InputError(f"reconstruction {pred.shape} does not match the target {target.shape}")
    if metric == "reconstruction":
        err = (pred - target) ** 2
        if mask is None:
            return float(err.mean())
        valid = float(mask.sum())
        return float((err * mask).sum() / valid) if valid > 0 else 0.0
    if config.arch.likelihood == "gaussian":
        std = config.arch.obs_std
        nll = 0.5 * ((target - pred) / std) ** 2 + math.log(std) + 0.5 * math.log(2.0 * math.pi)
    else:
        eps = 1e-7  # the decoder's probabilities, clipped as BCE-with-logits would saturate
        p = np.clip(pred, eps, 1.0 - eps)
        nll = -(target * np.log(p) + (1.0 - target) * np.log1p(-p))
    if mask is not None:
        nll = nll * mask
    mu = np.asarray(mean, dtype=np.float64)
    lv = np.asarray(logvar, dtype=np.float64)
    kl = 0.5 * (mu**2 + np.exp(lv) - 1.0 - lv)
    return float(nll.sum() + kl.sum())


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


def _params_file_loader() -> Any:
    """yaml.SafeLoader that also reads `!!python/tuple` sequences as lists: launch_ros writes list parameters
    (e.g. initial_pose) that way into the params files it passes to the nodes, and rcl reads them fine."""
    import yaml

    class ParamsFileLoader(yaml.SafeLoader):
        pass

    ParamsFileLoader.add_constructor("tag:yaml.org,2002:python/tuple",
                                     lambda loader, node: loader.construct_sequence(node))
    return ParamsFileLoader


def check_params_files(args: Sequence[str]) -> None:
    """ConfigError in one line for a `--params-file` that is missing or not YAML (rcl's own error is a
    traceback with C source locations)."""
    import yaml

    for flag, value in zip(args, list(args)[1:], strict=False):
        if flag != "--params-file":
            continue
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"--params-file {path} does not exist or is not a file")
        try:
            content = yaml.load(path.read_text(), Loader=_params_file_loader())
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"--params-file {path} cannot be read: {err}") from err
        except yaml.YAMLError as err:
            mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
            detail = (f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark and problem
                      else " ".join(str(err).split()))
            raise ConfigError(f"--params-file {path} is not valid YAML: {detail}") from err
        problem = _params_tree_problem(content)
        if problem:
            raise ConfigError(f"--params-file {path}: {problem}; expected node names (or namespaces) mapping to "
                              "'ros__parameters:' blocks, e.g. 'encoder_node: {ros__parameters: {backend: torch}}'")


def _params_tree_problem(tree: Any, where: str = "") -> str:
    """What rcl would refuse in a params file's structure ('' when nothing): a value where a node name or
    ros__parameters is expected, or ros__parameters that is not a mapping."""
    if not isinstance(tree, dict) or not tree:
        return f"{where or 'the file'} is not a mapping of node names"
    for key, value in tree.items():
        here = f"{where}/{key}" if where else str(key)
        if key == "ros__parameters":
            if not isinstance(value, dict):
                return f"{here} must be a mapping of parameter names to values"
        elif not isinstance(value, dict):
            return f"{here} has a value before any ros__parameters"
        else:
            problem = _params_tree_problem(value, here)
            if problem:
                return problem
    return ""


def unknown_parameters(node: Any) -> dict[str, str]:
    """Parameters given for this node (params file, -p) that it never declared -> a hint for each (the
    closest declared name, or the declared names)."""
    import difflib

    overrides = getattr(node, "_parameter_overrides", None) or {}  # rclpy keeps them here (Humble..Kilted)
    declared = sorted(name for name in getattr(node, "_parameters", {}))
    unknown = sorted(name for name in overrides if name not in declared and not name.startswith("qos_overrides."))
    hints = {}
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=1)
        hints[name] = f"did you mean {close[0]!r}?" if close else f"its parameters are {', '.join(declared)}"
    return hints


def refuse_unknown_parameters(node: Any) -> None:
    """ConfigError, one line naming them (with the did-you-mean), when parameters were given for this node
    that it never declared: for every node that publishes cmd_vel (REFUSE_UNKNOWN_PARAMETERS), where a
    misspelt safety limit (`max_lineer`) would leave the robot running at the default."""
    hints = unknown_parameters(node)
    if not hints:
        return
    if len(hints) == 1:
        ((name, hint),) = hints.items()
        what = f"parameter {name!r} is not a parameter of {node.get_name()}; {hint}"
    else:
        what = (f"parameters {', '.join(f'{name!r} ({hint})' for name, hint in hints.items())} are not "
                f"parameters of {node.get_name()}")
    raise ConfigError(f"{what}{'' if what.endswith('?') else '.'} Not starting: this node publishes cmd_vel, "
                      "and a misspelt limit would leave its default in force")


def warn_unknown_parameters(node: Any) -> list[str]:
    """Warn, naming them, about parameters given for this node (params file, -p) that it never declared:
    a misspelt `modell:` would otherwise be ignored without a word. Returns the unknown names. A node whose
    class sets REFUSE_UNKNOWN_PARAMETERS refuses to start instead (refuse_unknown_parameters)."""
    if getattr(node, "REFUSE_UNKNOWN_PARAMETERS", False):
        refuse_unknown_parameters(node)
    hints = unknown_parameters(node)
    for name, hint in hints.items():
        node.get_logger().warning(f"parameter {name!r} is not a parameter of {node.get_name()} and is "
                                  f"ignored; {hint}")
    return list(hints)


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
        executor = SingleThreadedExecutor()
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

"""`vae-ros record`: record live ROS 2 topics to a rosbag2 (MCAP) on machines without `ros2 bag`.

Each named topic is subscribed as soon as a publisher appears, whatever its message type (the type comes
from the ROS graph, the Python class from the installed message package). Messages arrive as serialised
CDR (never deserialised) and go straight into the bag through vae_ros.ros.bagio, stamped with their receive
time. QoS adapts to the publishers as rosbag2 does: reliable only when every publisher is reliable,
transient-local only when every publisher is, and the publishers' offered QoS is stored in
metadata.yaml. Ctrl-C or SIGTERM stops the recording and closes the bag with everything received so far.
Once a second the bag is flushed (MCAP chunk closed and synced, sqlite3 committed, metadata.yaml rewritten),
so SIGKILL or a power cut loses at most about a second; `vae-ros repair BAG` then makes such a bag whole.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vae_ros.core.errors import ConfigError, DataError
from vae_ros.ros.interface import CMD_TOPIC, LATENT_TOPIC

DISCOVERY_PERIOD = 0.25  # s between looks at the ROS graph for new topics and publishers
DRAIN_SECONDS = 0.3  # after a stop request, callbacks already queued still get written
RECORD_DEPTH = 100  # keep-last depth of the recording subscriptions: a recorder should not drop
# rmw's "infinite" duration, as rosbag2 writes it into metadata.yaml.
_INFINITE = (2147483647, 4294967295)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topics", nargs="+", metavar="TOPIC",
                        help=f"topics to record, e.g. {LATENT_TOPIC} {CMD_TOPIC} (relative names resolve to /NAME)")
    parser.add_argument("--out", required=True, help="bag folder to create (must not exist)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: until Ctrl-C or SIGTERM)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                        help="bag storage (default mcap)")
    parser.add_argument("--use-sim-time", action="store_true",
                        help="stamp messages with /clock time instead of the system clock")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


# -- message types ---------------------------------------------------------------------------------------------
def message_class(msgtype: str) -> Any:
    """The rclpy message class for 'pkg/msg/Name' (rosidl_runtime_py where installed, else importlib)."""
    try:
        from rosidl_runtime_py.utilities import get_message
    except ImportError:
        get_message = None
    try:
        if get_message is not None:
            return get_message(msgtype)
        package, interface, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{package}.{interface}"), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise DataError(f"no Python bindings for {msgtype} on this machine (install its message package, "
                        f"e.g. ros-<distro>-{msgtype.split('/')[0].replace('_', '-')}): {err}") from err


def _referenced_types(fields: list[Any]) -> set[str]:
    """Names of the message types a rosbags field list refers to (directly, in arrays and sequences)."""
    from rosbags.interfaces import Nodetype

    names: set[str] = set()

    def visit(desc: Any) -> None:
        kind, detail = desc
        if kind == Nodetype.NAME:
            names.add(detail)
        elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            visit(detail[0])

    for _, desc in fields:
        visit(desc)
    return names


def message_definition(msgtype: str, prefixes: list[str] | None = None) -> tuple[str, str]:
    """(msgdef, rihs01) of a type rosbags' typestore lacks (e.g. a custom message), from the .msg files
    that the message packages install under share/<package>/msg in the ament prefixes."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    from rosbags.typesys.base import TypesysError

    if prefixes is None:
        prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    store = get_typestore(Stores.LATEST)
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in store.fielddefs:
            continue
        package, _, short = name.split("/")
        candidates = [Path(prefix) / "share" / package / "msg" / f"{short}.msg" for prefix in prefixes]
        found = next((path for path in candidates if path.is_file()), None)
        if found is None:
            raise DataError(f"cannot find the definition of {name} (share/{package}/msg/{short}.msg in "
                            f"AMENT_PREFIX_PATH); source the workspace that provides it")
        try:
            types = get_types_from_msg(found.read_text(), name)
            store.register(types)
        except TypesysError as err:
            raise DataError(f"cannot parse {found}: {err}") from err
        pending.extend(_referenced_types(types[name][1]) - set(store.fielddefs))
    msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
    return msgdef, store.hash_rihs01(msgtype)


# -- QoS -----------------------------------------------------------------------------------------------------
def _qos_time(duration: Any) -> Any:
    from rosbags.interfaces import QosTime

    nanoseconds = int(duration.nanoseconds)
    if nanoseconds >= 2**63 - 1 or nanoseconds // 1_000_000_000 >= _INFINITE[0]:
        return QosTime(*_INFINITE)
    return QosTime(nanoseconds // 1_000_000_000, nanoseconds % 1_000_000_000)


def offered_qos(profiles: list[Any]) -> list[Any]:
    """Publishers' rclpy QoS profiles -> rosbags Qos records for metadata.yaml (offered_qos_profiles)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability

    def enum(kind: Any, policy: Any) -> Any:
        try:
            return kind(int(policy.value))
        except ValueError:
            return kind.UNKNOWN

    return [Qos(enum(QosHistory, p.history), int(p.depth), enum(QosReliability, p.reliability),
                enum(QosDurability, p.durability), _qos_time(p.deadline), _qos_time(p.lifespan),
                enum(QosLiveliness, p.liveliness), _qos_time(p.liveliness_lease_duration),
                bool(p.avoid_ros_namespace_conventions)) for p in profiles]


def recording_qos(profiles: list[Any]) -> Any:
    """The subscription QoS that receives from all these publishers (rosbag2's adaptation): reliable and
    transient-local only when every publisher offers it, else best effort / volatile."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliable = bool(profiles) and all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
    latched = bool(profiles) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=RECORD_DEPTH,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def _describe(qos: Any) -> str:
    return f"{qos.reliability.name.lower()}, {qos.durability.name.lower()}"


# -- the recorder ----------------------------------------------------------------------------------------------
@dataclass
class _Topic:
    name: str
    msgtype: str = ""
    subscription: Any = None
    qos: Any = None
    skipped: str = ""  # why this topic cannot be recorded (told once)
    warned_qos: bool = False
    count: int = 0


class Recorder:
    """Subscribes the topics as their publishers appear and writes every message received into the bag."""

    def __init__(self, node: Any, out: Path, storage: str, topics: list[str], log: Any) -> None:
        from vae_ros.ros.bagio import BagWriter, normalise_topic

        self.node = node
        self.bag = BagWriter(out, storage=storage)
        self.topics = {name: _Topic(name) for name in dict.fromkeys(normalise_topic(t) for t in topics)}
        self.log = log

    def discover(self) -> None:
        """Subscribe each still-unsubscribed topic that now has a publisher; warn about QoS changes."""
        types = dict(self.node.get_topic_names_and_types())
        for topic in self.topics.values():
            if topic.skipped:
                continue
            infos = self.node.get_publishers_info_by_topic(topic.name)
            if topic.subscription is not None:
                self._check_qos(topic, infos)
                continue
            if not infos or topic.name not in types:
                continue
            names = types[topic.name]
            if len(names) != 1:
                topic.skipped = f"{topic.name} has several types {names}; not recorded"
                self.log(f"warning: {topic.skipped}")
                continue
            if not self.bag.is_open:
                self.bag.open()  # once there is something to record (no empty bags); failing here is fatal
            try:
                self._subscribe(topic, names[0], [info.qos_profile for info in infos])
            except DataError as err:
                topic.skipped = str(err)
                self.log(f"warning: {topic.name} not recorded: {err}")

    def _subscribe(self, topic: _Topic, msgtype: str, profiles: list[Any]) -> None:
        from vae_ros.ros.bagio import normalise_msgtype

        msgtype = normalise_msgtype(msgtype)
        msg_class = message_class(msgtype)
        try:
            self.bag.add_topic(topic.name, msgtype, offered_qos(profiles))
        except DataError:
            msgdef, rihs01 = message_definition(msgtype)  # a type the ROS 2 typestore does not know
            self.bag.add_topic(topic.name, msgtype, offered_qos(profiles), msgdef=msgdef, rihs01=rihs01)
        topic.msgtype, topic.qos = msgtype, recording_qos(profiles)
        topic.subscription = self.node.create_subscription(
            msg_class, topic.name, lambda data, t=topic: self._on_message(t, data), topic.qos, raw=True,
            event_callbacks=self._match_events(topic))
        self.log(f"subscribed {topic.name} ({msgtype}, {len(profiles)} publisher(s), {_describe(topic.qos)})")

    def _match_events(self, topic: _Topic) -> Any:
        """Log each publisher the subscription matches: from then on its messages are recorded (discovery
        is two-sided, so "subscribed" alone does not mean that yet). None where rclpy has no matched event
        (Humble)."""
        from rclpy.event_handler import SubscriptionEventCallbacks

        def on_matched(info: Any) -> None:
            if info.current_count_change > 0:
                self.log(f"{topic.name}: matched {info.current_count} publisher(s)")

        try:
            return SubscriptionEventCallbacks(matched=on_matched)
        except TypeError:
            return None

    def _check_qos(self, topic: _Topic, infos: list[Any]) -> None:
        wanted = recording_qos([info.qos_profile for info in infos]) if infos else topic.qos
        if not topic.warned_qos and (wanted.reliability, wanted.durability) != (topic.qos.reliability,
                                                                                topic.qos.durability):
            topic.warned_qos = True
            self.log(f"warning: a new publisher on {topic.name} offers QoS incompatible with the recording "
                     f"({_describe(topic.qos)}); its messages may be missing")

    def _on_message(self, topic: _Topic, data: bytes) -> None:
        self.bag.write(topic.name, self.node.get_clock().now().nanoseconds, data)
        topic.count += 1

    def counts(self) -> dict[str, int]:
        return {name: topic.count for name, topic in self.topics.items()}

    def close(self) -> None:
        for topic in self.topics.values():
            if topic.subscription is not None:
                self.node.destroy_subscription(topic.subscription)
                topic.subscription = None
        self.bag.close()


def _check_args(args: argparse.Namespace) -> Path:
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise ConfigError(f"--duration must be a positive number of seconds, got {args.duration}")
    for topic in args.topics:
        if not topic.strip("/ ") or any(c.isspace() for c in topic):
            raise ConfigError(f"{topic!r} is not a topic name")
    out = Path(args.out)
    if os.path.lexists(out):
        raise ConfigError(f"{out} already exists; choose a new --out (bags are never overwritten)")
    _check_creatable(out)
    return out


def _check_creatable(out: Path) -> None:
    """Create the bag folder (and missing parents) and remove them again: a name too long for the file system
    or a folder that cannot be written is said now, not when the first publisher appears."""
    missing = [path for path in (out, *out.parents) if not os.path.lexists(path)]  # deepest first
    try:
        out.mkdir(parents=True)
    except OSError as err:
        raise ConfigError(f"cannot create the bag folder --out {out}: {err.strerror or err}") from err
    for path in missing:
        path.rmdir()


def run(args: argparse.Namespace) -> int:
    out = _check_args(args)
    from vae_ros.ros.kit.run import use_large_data_profile

    use_large_data_profile()  # before rclpy starts Fast DDS: large images need the shared-memory profile
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    interactive = sys.stderr.isatty()

    def log(line: str) -> None:
        if not args.quiet:
            print(("\r\033[K" if interactive else "") + f"vae-ros record: {line}", file=sys.stderr, flush=True)

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(f"vae_ros_record_{os.getpid()}", parameter_overrides=[
        Parameter("use_sim_time", Parameter.Type.BOOL, bool(args.use_sim_time))])
    recorder = Recorder(node, out, args.storage, args.topics, log)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    started = time.monotonic()
    deadline = started + args.duration if args.duration is not None else math.inf
    log(f"waiting for {', '.join(recorder.topics)} (Ctrl-C to stop)")
    from vae_ros.ros.bagio import FLUSH_PERIOD_S

    try:
        next_discovery = next_progress = next_flush = 0.0
        flush_failed = False
        while not stop.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_discovery:
                recorder.discover()
                next_discovery = now + DISCOVERY_PERIOD
            if now >= next_flush and recorder.bag.is_open:  # a hard kill loses at most this period
                try:
                    recorder.bag.flush()
                except DataError as err:  # e.g. the folder made read-only: the open file still takes messages
                    if not flush_failed:
                        log(f"warning: {err}; still recording, but a hard kill now loses more than a second")
                    flush_failed = True
                next_flush = now + FLUSH_PERIOD_S
            if now >= next_progress and not args.quiet:
                if recorder.bag.is_open:
                    counts = "  ".join(f"{name}: {n}" for name, n in recorder.counts().items())
                    print(("\r\033[K" if interactive else "") + f"{now - started:7.1f} s  {counts}",
                          end="" if interactive else "\n", file=sys.stderr, flush=True)
                next_progress = now + (1.0 if interactive else 5.0)
            executor.spin_once(timeout_sec=0.05)
        drain_end = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < drain_end:  # what arrived before the stop is written too
            executor.spin_once(timeout_sec=0.02)
    finally:
        try:
            recorder.close()  # DataError (one line: where the messages are) once ROS is shut down below
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if interactive and not args.quiet:
        print(file=sys.stderr)
    why = f"stopped by {received[0]}" if received else "duration reached"
    if not out.exists():  # the bag is created with the first subscription
        raise DataError(f"none of {', '.join(recorder.topics)} had a publisher ({why}); nothing recorded")
    summary = [f"{name} {topic.count} messages" if topic.msgtype else
               f"{name} not recorded ({'see the warning above' if topic.skipped else 'no publisher'})"
               for name, topic in recorder.topics.items()]
    print(f"wrote {out} ({why}): " + ", ".join(summary))
    return 0

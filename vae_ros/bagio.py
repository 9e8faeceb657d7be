"""rosbag2 writing without ROS: a thin, safe layer over rosbags' Writer (used by `collect` and `record`).

Bags get a standard metadata.yaml (rosbag2 format version 9), message definitions and type hashes from
rosbags' ROS 2 typestore, and each topic's offered QoS profiles, so `ros2 bag info` / `ros2 bag play`
(Jazzy, Kilted) and `vae-ros train` read them. Messages go in as CDR bytes, e.g. from
rclpy.serialization.serialize_message; this module itself never imports rclpy.

Unlike rosbags' own context manager, which aborts (loses the chunk in memory and the metadata) when an
exception leaves the block, BagWriter always closes the bag properly, so Ctrl-C keeps what was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from vae_ros.core.errors import DataError

STORAGES = ("mcap", "sqlite3")
BAG_VERSION: Literal[9] = 9


def _qos(reliable: bool, depth: int) -> list[Any]:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    unspecified = QosTime(0, 0)  # rmw's "use the default" duration
    return [Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
                QosDurability.VOLATILE, unspecified, unspecified, QosLiveliness.AUTOMATIC, unspecified, False)]


def reliable_qos(depth: int = 10) -> list[Any]:
    """Offered QoS for a reliable, keep-last, volatile publisher (odometry, commands, clock, latents)."""
    return _qos(True, depth)


def best_effort_qos(depth: int = 5) -> list[Any]:
    """Offered QoS of a sensor-data publisher (best effort, keep last, volatile), as rclpy's profile."""
    return _qos(False, depth)


def normalise_msgtype(msgtype: str) -> str:
    """'sensor_msgs/Image' or 'sensor_msgs/msg/Image' -> 'sensor_msgs/msg/Image' (the rosbag2 spelling)."""
    parts = msgtype.strip().split("/")
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3 and all(parts):
        return msgtype.strip()
    raise DataError(f"message type must look like 'pkg/msg/Name' or 'pkg/Name', got {msgtype!r}")


def normalise_topic(topic: str) -> str:
    """Bags store fully qualified names, as `ros2 bag record` does: 'scan' -> '/scan'."""
    topic = topic.strip()
    if not topic or topic == "/":
        raise DataError("topic name must not be empty")
    return topic if topic.startswith("/") else "/" + topic


class BagWriter:
    """Write a new rosbag2 folder (MCAP by default): add_topic() each topic once, then write() CDR bytes.

    Use as a context manager; the bag is closed (index and metadata.yaml written) however the block ends.
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise DataError(f"storage must be one of {STORAGES}, got {storage!r}")
        self.path = Path(path)
        self.storage = storage
        self._writer: Any = None
        self._connections: dict[str, Any] = {}
        self._counts: dict[str, int] = {}
        self._typestore: Any = None

    # -- life cycle --------------------------------------------------------------------------------------
    def open(self) -> BagWriter:
        """Create the bag folder; refuses to touch an existing path."""
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

        if self.path.exists():
            raise DataError(f"{self.path} already exists; bags are never overwritten, choose a new path")
        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        try:
            writer.open()
        except (WriterError, OSError) as err:
            raise DataError(f"cannot create the bag {self.path}: {err}") from err
        self._writer = writer
        return self

    def close(self) -> None:
        """Finish the bag: flush the last chunk, write the index and metadata.yaml. Idempotent."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except BaseException:
            writer.abort()
            raise

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    # -- content -----------------------------------------------------------------------------------------
    def _store(self) -> Any:
        if self._typestore is None:
            from rosbags.typesys import Stores, get_typestore

            store = getattr(Stores, "ROS2_KILTED", None) or Stores.LATEST
            self._typestore = get_typestore(store)
        return self._typestore

    def add_topic(self, topic: str, msgtype: str, qos_profiles_yaml: str | Sequence[Any] | None = None,
                  msgdef: str | None = None, rihs01: str | None = None) -> str:
        """Register a topic before writing to it; returns its fully qualified name.

        qos_profiles_yaml: the publishers' offered QoS, as rosbag2 metadata YAML (a list of profiles) or a
        list of rosbags Qos (see reliable_qos / best_effort_qos); None records no profile. msgdef/rihs01
        give the definition of a type the ROS 2 typestore does not know (e.g. a custom message).
        """
        from rosbags.rosbag2 import WriterError

        if self._writer is None:
            raise DataError("the bag is not open; use `with BagWriter(path) as bag:`")
        name = normalise_topic(topic)
        if name in self._connections:
            raise DataError(f"topic {name} was already added to {self.path}")
        msgtype = normalise_msgtype(msgtype)
        profiles = self._parse_qos(qos_profiles_yaml)
        if msgdef is not None:
            rihs01 = rihs01 or self._register_definition(msgtype, msgdef)
            kwargs: dict[str, Any] = {"msgdef": msgdef, "rihs01": rihs01}
        elif msgtype in self._store().fielddefs:
            kwargs = {"typestore": self._store()}
        else:
            raise DataError(f"message type {msgtype} is unknown to the ROS 2 type store; pass its .msg "
                            f"definition as msgdef to add_topic")
        try:
            self._connections[name] = self._writer.add_connection(
                name, msgtype, offered_qos_profiles=profiles, **kwargs)
            self._counts[name] = 0
        except WriterError as err:
            raise DataError(f"cannot add topic {name} ({msgtype}) to {self.path}: {err}") from err
        return name

    def _register_definition(self, msgtype: str, msgdef: str) -> str:
        """Add a .msg definition to the type store and return its RIHS01 type hash."""
        from rosbags.typesys import get_types_from_msg
        from rosbags.typesys.base import TypesysError

        try:
            self._store().register(get_types_from_msg(msgdef, msgtype))
            return str(self._store().hash_rihs01(msgtype))
        except (TypesysError, KeyError) as err:
            raise DataError(f"cannot use the definition of {msgtype}: {err}") from err

    @staticmethod
    def _parse_qos(qos: str | Sequence[Any] | None) -> list[Any]:
        if qos is None:
            return []
        if isinstance(qos, str):
            from rosbags.rosbag2.errors import ReaderError
            from rosbags.rosbag2.metadata import parse_qos

            try:
                return parse_qos(qos)
            except (ReaderError, KeyError, TypeError) as err:
                raise DataError(f"offered QoS profiles are not valid rosbag2 YAML: {err}") from err
        return list(qos)

    def write(self, topic: str, timestamp_ns: int, cdr_bytes: bytes | bytearray | memoryview) -> None:
        """Append one serialised message received at timestamp_ns (nanoseconds, the bag's time axis)."""
        if self._writer is None:
            raise DataError("the bag is not open (or already closed)")
        name = normalise_topic(topic)
        connection = self._connections.get(name)
        if connection is None:
            raise DataError(f"topic {name} was not added to the bag; call add_topic first")
        if timestamp_ns < 0:
            raise DataError(f"timestamp must be >= 0 ns, got {timestamp_ns}")
        self._writer.write(connection, int(timestamp_ns), cdr_bytes)
        self._counts[name] += 1

    def set_custom_data(self, key: str, value: str) -> None:
        """Store a string in metadata.yaml's custom_data (e.g. how the bag was made)."""
        if self._writer is None:
            raise DataError("the bag is not open (or already closed)")
        self._writer.set_custom_data(key, str(value))

    @property
    def topics(self) -> list[str]:
        return list(self._connections)

    @property
    def counts(self) -> dict[str, int]:
        """Messages written so far, per topic."""
        return dict(self._counts)

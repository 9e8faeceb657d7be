"""rosbag2 writing without ROS: a thin, safe layer over rosbags' Writer (used by `collect` and `record`).

(Over 500 lines: writing and repairing share the MCAP record format; most of it is the repair's bounded
record reader, which must refuse hostile files on its own.)

Bags get a standard metadata.yaml (rosbag2 format version 9; 8 where $ROS_DISTRO is humble, whose
`ros2 bag` reads no later one), message definitions and type hashes from
rosbags' ROS 2 typestore, and each topic's offered QoS profiles, so `ros2 bag info` / `ros2 bag play`
(Jazzy, Kilted) and `vae-ros train` read them. Messages go in as CDR bytes, e.g. from
rclpy.serialization.serialize_message; this module itself never imports rclpy.

Unlike rosbags' own context manager, which aborts (loses the chunk in memory and the metadata) when an
exception leaves the block, BagWriter always closes the bag properly, so Ctrl-C keeps what was written.
A recorder that can be killed (SIGKILL, power loss) calls flush() about once a second: the pending MCAP
chunk is closed and synced to disk (sqlite3: the transaction is committed) and metadata.yaml is rewritten
to describe it, so a kill loses at most the last second; `vae-ros repair` then adds what a killed writer
never wrote (the MCAP summary and footer).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator, Sequence
from io import StringIO
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from vae_ros.core.errors import DataError

STORAGES = ("mcap", "sqlite3")
BAG_VERSION: Literal[9] = 9
# Whose `ros2 bag` reads only up to metadata version 8 (offered QoS as one YAML string, not a list).
VERSION_8_DISTROS = ("foxy", "galactic", "humble", "iron")


def bag_version(ros_distro: str | None = None) -> Literal[8, 9]:
    """metadata.yaml version the target distribution reads: 8 for Humble (and older), else 9.

    ros_distro: "humble", "jazzy", ...; None takes $ROS_DISTRO (unset: 9, what Jazzy and later read).
    """
    distro = (os.environ.get("ROS_DISTRO", "") if ros_distro is None else ros_distro).strip().lower()
    return 8 if distro in VERSION_8_DISTROS else BAG_VERSION

METADATA_FILE = "metadata.yaml"
# What a hard kill may lose: recorders flush (close the MCAP chunk, commit, rewrite metadata.yaml) this often.
FLUSH_PERIOD_S = 1.0


def metadata_yaml(storage: str, file_name: str, topics: Sequence[dict[str, Any]], start_ns: int, end_ns: int,
                  custom_data: dict[str, str] | None = None, version: Literal[8, 9] = BAG_VERSION) -> str:
    """metadata.yaml text of a one-file bag, in the layout rosbags' Writer writes at close (version 8 or 9).

    topics: {"name", "type", "serialization_format", "offered_qos_profiles" (rosbags Qos list),
    "type_description_hash", "message_count"} each. start_ns/end_ns: first and last message stamps.
    """
    from rosbags.rosbag2.metadata import dump_qos_v8, dump_qos_v9
    from ruamel.yaml import YAML

    count = sum(int(t["message_count"]) for t in topics)
    start = start_ns if count else 0
    duration = max(0, end_ns - start_ns) if count else 0
    info = {
        "version": version,
        "storage_identifier": storage,
        "relative_file_paths": [file_name],
        "duration": {"nanoseconds": duration},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": count,
        "topics_with_message_count": [
            {"topic_metadata": {"name": t["name"], "type": t["type"],
                                "serialization_format": t.get("serialization_format", "cdr"),
                                "offered_qos_profiles": (dump_qos_v9 if version >= 9 else dump_qos_v8)(
                                    list(t.get("offered_qos_profiles") or [])),
                                "type_description_hash": t.get("type_description_hash", "")},
             "message_count": int(t["message_count"])}
            for t in topics
        ],
        "compression_format": "",
        "compression_mode": "",
        "files": [{"path": file_name, "starting_time": {"nanoseconds_since_epoch": start},
                   "duration": {"nanoseconds": duration}, "message_count": count}],
        "custom_data": custom_data or None,
        "ros_distro": "rosbags",
    }
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    text = StringIO()
    yaml.dump({"rosbag2_bagfile_information": info}, text)
    return text.getvalue()


def write_durably(path: Path, text: str) -> None:
    """Replace path with text atomically, synced to disk (a temporary name, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def reliable_qos(depth: int = 10) -> list[Any]:
    """Offered QoS for a reliable, keep-last, volatile publisher (odometry, commands, clock, latents)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    unspecified = QosTime(0, 0)  # rmw's "use the default" duration
    return [Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, QosDurability.VOLATILE, unspecified,
                unspecified, QosLiveliness.AUTOMATIC, unspecified, False)]


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

    def __init__(self, path: str | Path, storage: str = "mcap", version: Literal[8, 9] | None = None) -> None:
        """version: metadata.yaml version, 8 or 9; None = bag_version() (from $ROS_DISTRO)."""
        if storage not in STORAGES:
            raise DataError(f"storage must be one of {STORAGES}, got {storage!r}")
        if version not in (None, 8, 9):
            raise DataError(f"bag version must be 8 (Humble) or 9 (Jazzy and later), got {version!r}")
        self.version = bag_version() if version is None else version
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
        writer = Writer(self.path, version=self.version, storage_plugin=plugin)
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
        storage = getattr(getattr(writer, "storage", None), "path", None)
        try:
            writer.close()
        except OSError as err:  # e.g. the folder made read-only while recording: the data is on disk
            writer.abort()
            raise DataError(f"cannot finish the bag {self.path} ({err.strerror or err}"
                            f"{': ' + str(err.filename) if err.filename else ''}); the messages written so far are "
                            f"in {storage or self.path}: make {self.path} writable and run `vae-ros repair "
                            f"{self.path}`") from err
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

    def flush(self) -> None:
        """Make every message written so far survive a SIGKILL or power loss, and describe it in
        metadata.yaml: MCAP closes its pending chunk (rosbags keeps up to 1 MiB in memory otherwise) and
        syncs the file; sqlite3 commits its transaction. Costs one small chunk and one fsync per call."""
        if self._writer is None:
            return
        storage = getattr(self._writer, "storage", None)
        try:
            if self.storage == "mcap":
                chunk = getattr(storage, "chunk", None)
                if chunk is not None and chunk.bio.tell():
                    storage.close_chunk()  # type: ignore[union-attr]
                stream = getattr(storage, "bio", None)
                if stream is not None:
                    stream.flush()
                    os.fsync(stream.fileno())
            else:
                connection = getattr(storage, "conn", None)
                if connection is not None:
                    connection.commit()
            write_durably(self.path / METADATA_FILE, self._metadata_snapshot())
        except OSError as err:
            raise DataError(f"cannot write to the bag {self.path}: {err}") from err

    def _metadata_snapshot(self) -> str:
        """metadata.yaml for what is in the bag now (its final version is written by close)."""
        writer = self._writer
        storage_path = Path(getattr(writer.storage, "path", self.path / f"{self.path.name}.{self.storage}"))
        topics = [{"name": c.topic, "type": c.msgtype, "serialization_format": c.ext.serialization_format,
                   "offered_qos_profiles": c.ext.offered_qos_profiles, "type_description_hash": c.digest,
                   "message_count": writer.counts.get(c.id, 0)} for c in writer.connections]
        return metadata_yaml("mcap" if self.storage == "mcap" else "sqlite3", storage_path.name, topics,
                             writer.min_timestamp, writer.max_timestamp, dict(writer.custom_data), self.version)

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
        list of rosbags Qos (see reliable_qos); None records no profile. msgdef/rihs01
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


# -- repair ---------------------------------------------------------------------------------------------------
_MCAP_MAGIC = b"\x89MCAP0\r\n"


def _storage_file(bag: Path) -> tuple[str, Path]:
    """('mcap' | 'sqlite3', the bag's one storage file); DataError when there is not exactly one, or when it
    is not a regular file (a named pipe would block the reader, a device never end)."""
    from vae_ros.core.errors import ModelFileError
    from vae_ros.core.files import BAG_STORAGE_SUFFIXES, check_bag_path, check_regular_file

    check_bag_path(bag)  # e.g. metadata.yaml
    if bag.suffix in BAG_STORAGE_SUFFIXES and os.path.lexists(bag) and not bag.is_dir():
        files, bag = [bag], bag.parent
    elif not bag.is_dir():
        raise DataError(f"bag {bag} does not exist (expected a bag folder)")
    else:
        files = sorted(bag.glob("*.mcap")) + sorted(bag.glob("*.db3"))
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise DataError(f"bag {bag} must hold exactly one .mcap or .db3 file to repair, found {found}")
    try:
        check_regular_file(files[0], 1 << 62)  # stat only: never opens a FIFO
    except ModelFileError as err:
        raise DataError(f"cannot repair: {err}") from err
    return ("mcap" if files[0].suffix == ".mcap" else "sqlite3"), files[0]


def _known_hashes(bag: Path) -> dict[str, str]:
    """topic -> type_description_hash from an existing (snapshot) metadata.yaml, if readable."""
    from ruamel.yaml import YAML, YAMLError

    try:
        info = YAML(typ="safe").load((bag / METADATA_FILE).read_text())["rosbag2_bagfile_information"]
        return {t["topic_metadata"]["name"]: str(t["topic_metadata"].get("type_description_hash", ""))
                for t in info["topics_with_message_count"]}
    except (OSError, YAMLError, KeyError, TypeError):
        return {}


def _type_hash(msgtype: str, known: str) -> str:
    if known:
        return known
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.LATEST)
    return str(store.hash_rihs01(msgtype)) if msgtype in store.fielddefs else ""


def _qos_profiles(text: str) -> list[Any]:
    from rosbags.rosbag2.errors import ReaderError
    from rosbags.rosbag2.metadata import parse_qos

    try:
        return parse_qos(text) if text else []
    except (ReaderError, KeyError, TypeError, ValueError):
        return []


def _mcap_complete(path: Path) -> bool:
    size = path.stat().st_size
    if size < 8 + 37:
        return False
    with path.open("rb") as handle:
        handle.seek(-8, os.SEEK_END)
        return handle.read(8) == _MCAP_MAGIC


# What repair holds in memory at once: one record (a chunk, or a message outside chunks) and one chunk's
# decompressed records. rosbag2 and rosbags write chunks of about 1 MiB; a message larger than that (a 4K image:
# 25 MB) gets a chunk of its own. A record or chunk claiming more is damage (or a decompression bomb).
MAX_MCAP_RECORD_BYTES = 128 << 20
_MCAP_CHUNK = 0x06
_MCAP_FOOTER = 0x02
_MCAP_HEADER = 0x01


class _McapStop(Exception):
    """Where a damaged MCAP file stops being readable: what follows is not taken."""


def _decompress_chunk(compression: str, data: memoryview, declared: int, limit: int) -> bytes:
    """A chunk's records, decompressed as a stream that stops past min(declared size, limit): a chunk that
    expands beyond what it declares (or beyond the limit) is refused without being expanded."""
    if declared > limit:
        raise _McapStop(f"a chunk declares {declared} bytes of records, more than the {limit} this tool reads")
    if compression == "":
        out = bytes(data)
    elif compression == "zstd":
        import zstandard

        try:
            with zstandard.ZstdDecompressor().stream_reader(data) as reader:
                out = reader.read(declared + 1)
        except zstandard.ZstdError as err:
            raise _McapStop(f"a zstd chunk does not decompress: {err}") from err
    elif compression == "lz4":
        import lz4.frame

        try:
            out = lz4.frame.LZ4FrameDecompressor().decompress(data, max_length=declared + 1)
        except RuntimeError as err:
            raise _McapStop(f"an lz4 chunk does not decompress: {err}") from err
    else:
        raise _McapStop(f"a chunk has unknown compression {compression!r}")
    if len(out) != declared:
        raise _McapStop(f"a chunk declares {declared} bytes of records but holds "
                        f"{'more' if len(out) > declared else len(out)}")
    return out


def _mcap_records(source: Any, limit: int = MAX_MCAP_RECORD_BYTES) -> Iterator[Any]:
    """The records of an MCAP stream, chunks opened, up to the first one that is incomplete or not a record:
    then _McapStop says why. Each record is bounded by `limit`; the file is never scanned past a byte that
    cannot start a record (opcode 0: a hole of zeros, e.g. a sparse file), so the work is bounded too."""
    import zlib

    from mcap.data_stream import ReadDataStream
    from mcap.exceptions import McapError
    from mcap.records import Channel, Chunk, Message, Metadata, Schema
    from mcap.stream_reader import breakup_chunk

    readers = {0x03: Schema.read, 0x04: Channel.read, 0x0C: Metadata.read}
    offset = len(_MCAP_MAGIC)
    first = True
    while True:
        head = source.read(9)
        if len(head) < 9:
            raise _McapStop(f"the file ends at byte {offset + len(head)} without a footer")
        opcode, length = struct.unpack("<BQ", head)
        if opcode == 0 or (first and opcode != _MCAP_HEADER):
            raise _McapStop(f"byte {offset} does not start an MCAP record (opcode {opcode:#04x})")
        if length > limit:
            raise _McapStop(f"the record at byte {offset} claims {length} bytes, more than the {limit} this tool "
                            "reads")
        body = source.read(length)
        if len(body) < length:
            raise _McapStop(f"the record at byte {offset} is cut off ({len(body)} of {length} bytes)")
        offset += 9 + length
        first = False
        view = memoryview(body)
        try:
            if opcode == _MCAP_CHUNK:
                start, end, declared, crc, name_len = struct.unpack_from("<QQQII", view)
                compression = str(view[32:32 + name_len], "utf8")
                (data_len,) = struct.unpack_from("<Q", view, 32 + name_len)
                data = view[40 + name_len:40 + name_len + data_len]
                if len(data) != data_len:
                    raise _McapStop(f"the chunk at byte {offset - 9 - length} is inconsistent")
                records = _decompress_chunk(compression, data, declared, limit)
                if crc and zlib.crc32(records) != crc:
                    raise _McapStop(f"the chunk at byte {offset - 9 - length} fails its CRC")
                del body, view, data
                yield from breakup_chunk(Chunk(compression="", data=records, message_end_time=end,
                                               message_start_time=start, uncompressed_crc=0,
                                               uncompressed_size=declared))
            elif opcode == 0x05:
                yield Message.read(ReadDataStream(io.BytesIO(body)), length)
            elif opcode in readers:
                yield readers[opcode](ReadDataStream(io.BytesIO(body)))
            elif opcode == _MCAP_FOOTER:
                return
        except (McapError, struct.error, UnicodeDecodeError, ValueError, EOFError) as err:
            raise _McapStop(f"the record at byte {offset - 9 - length} is corrupt "
                            f"({type(err).__name__}{': ' + str(err) if str(err) else ''})") from err


def _repair_mcap(path: Path) -> tuple[list[dict[str, Any]], int, int, str]:
    """Rewrite the records a killed writer completed (schemas, channels and messages of whole chunks)
    into a new MCAP with index and summary; the damaged original is kept as NAME.damaged.
    Returns (topics, first stamp, last stamp, what was done). A file that does not start as an MCAP file
    (magic and header record) is left as it is: DataError."""
    try:
        from mcap.records import Channel, Message, Schema
        from mcap.records import Metadata as McapMetadata
        from mcap.writer import CompressionType, Writer
    except ImportError as err:
        raise DataError("repairing an MCAP bag needs the mcap package (pip install mcap)") from err

    with path.open("rb") as source:
        magic = source.read(len(_MCAP_MAGIC) + 1)
    if not magic.startswith(_MCAP_MAGIC) or magic[len(_MCAP_MAGIC):] != bytes([_MCAP_HEADER]):
        raise DataError(f"nothing of {path} is an MCAP bag (it does not start with the MCAP magic and header); "
                        "the file was left as it is")
    complete = _mcap_complete(path)
    tmp = path.with_name(f".{path.name}.repair.tmp")
    schemas: dict[int, tuple[int, Schema]] = {}
    channels: dict[int, tuple[int, Channel]] = {}
    counts: dict[int, int] = {}
    first, last, problem = 2**63 - 1, 0, ""
    try:
        with path.open("rb") as source, tmp.open("wb") as target:
            source.seek(len(_MCAP_MAGIC))
            writer = Writer(target, compression=CompressionType.NONE)
            writer.start(profile="ros2", library="vae_ros repair")
            try:
                for record in _mcap_records(source):
                    if isinstance(record, Schema) and record.id not in schemas:
                        schemas[record.id] = (writer.register_schema(record.name, record.encoding, record.data),
                                              record)
                    elif isinstance(record, Channel) and record.id not in channels:
                        schema_id = schemas[record.schema_id][0] if record.schema_id in schemas else 0
                        new_id = writer.register_channel(record.topic, record.message_encoding, schema_id,
                                                         dict(record.metadata))
                        channels[record.id] = (new_id, record)
                    elif isinstance(record, Message) and record.channel_id in channels:
                        writer.add_message(channels[record.channel_id][0], record.log_time, record.data,
                                           record.publish_time, record.sequence)
                        counts[record.channel_id] = counts.get(record.channel_id, 0) + 1
                        first, last = min(first, record.log_time), max(last, record.log_time)
                    elif isinstance(record, McapMetadata):
                        writer.add_metadata(record.name, dict(record.metadata))
            except _McapStop as err:
                problem = str(err)
            writer.finish()
            target.flush()
            os.fsync(target.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if complete and not problem:
        tmp.unlink()
        done = "the MCAP file is complete"
    elif not channels:
        tmp.unlink()
        raise DataError(f"nothing of {path} could be recovered: no topic before the damage ({problem or 'no footer'});"
                        " the file was left as it is")
    else:
        backup = path.with_name(path.name + ".damaged")
        os.replace(path, backup)
        os.replace(tmp, path)
        done = (f"rebuilt {path.name} from its complete chunks (the writer stopped mid-record: {problem or 'no footer'}); "
                f"the damaged original is kept as {backup.name}")
    topics = [{"name": ch.topic, "type": schemas[ch.schema_id][1].name if ch.schema_id in schemas else "",
               "serialization_format": ch.message_encoding,
               "offered_qos_profiles": _qos_profiles(ch.metadata.get("offered_qos_profiles", "")),
               "message_count": counts.get(old_id, 0)} for old_id, (_, ch) in channels.items()]
    return topics, first, last, done


def _repair_sqlite3(path: Path) -> tuple[list[dict[str, Any]], int, int, str]:
    """Open the database read-write once (sqlite rolls back the transaction a kill left open) and read
    what it holds: topics, message counts and time range."""
    import sqlite3

    try:
        connection = sqlite3.connect(path, timeout=0.0)
        try:
            try:  # the write lock: no recorder may still be writing this bag (and a hot journal is rolled back)
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                raise DataError(f"{path} is still being written by another process ({err}); stop the recorder "
                                "first") from err
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise DataError(f"{path} is damaged beyond a killed recorder ({check}); it cannot be repaired here")
            topics_rows = connection.execute(
                "SELECT id, name, type, serialization_format, offered_qos_profiles FROM topics").fetchall()
            stats = {row[0]: row[1:] for row in connection.execute(
                "SELECT topic_id, COUNT(*), MIN(timestamp), MAX(timestamp) FROM messages GROUP BY topic_id")}
            # A journal left now is not hot (sqlite rolled a hot one back when it took the lock): stale.
            path.with_name(path.name + "-journal").unlink(missing_ok=True)
            connection.rollback()
        finally:
            connection.close()
    except sqlite3.Error as err:
        raise DataError(f"cannot read {path}: {err}") from err
    topics = [{"name": name, "type": msgtype, "serialization_format": fmt, "offered_qos_profiles": _qos_profiles(qos),
               "message_count": stats.get(topic_id, (0,))[0]} for topic_id, name, msgtype, fmt, qos in topics_rows]
    first = min((s[1] for s in stats.values()), default=2**63 - 1)
    last = max((s[2] for s in stats.values()), default=0)
    return topics, first, last, "the committed messages are intact (an open transaction was rolled back)"


def _needs_repair(folder: Path, storage: str, path: Path) -> bool:
    """False for a bag that was closed properly: rosbags opens it (metadata.yaml, MCAP footer and summary)
    and no sqlite3 transaction was left open (a -journal or -wal file beside the database)."""
    from rosbags.rosbag2 import Reader, ReaderError

    if storage == "sqlite3" and any(path.with_name(path.name + suffix).exists() for suffix in ("-journal", "-wal")):
        return True
    if not (folder / METADATA_FILE).is_file():
        return True
    try:
        with Reader(folder):
            return False
    except (ReaderError, OSError, ValueError, KeyError, struct.error):
        return True


def repair_bag(bag: str | Path) -> str:
    """Make a bag left by a killed recorder (SIGKILL, power loss) readable: the MCAP summary and footer
    rebuilt from its complete chunks, metadata.yaml rebuilt from what the storage file holds. Returns a
    one-line summary. Bags that are already complete get a fresh metadata.yaml only if theirs is missing."""
    bag_path = Path(bag)
    storage, path = _storage_file(bag_path)
    folder = path.parent
    if not _needs_repair(folder, storage, path):
        return f"{folder} is complete and readable; nothing to repair"
    known = _known_hashes(folder)
    try:
        if storage == "mcap":
            topics, first, last, done = _repair_mcap(path)
        else:
            topics, first, last, done = _repair_sqlite3(path)
        for topic in topics:
            topic["type_description_hash"] = _type_hash(topic["type"], known.get(topic["name"], ""))
        write_durably(folder / METADATA_FILE, metadata_yaml(storage, path.name, topics, first, last,
                                                                    version=bag_version()))
    except OSError as err:
        raise DataError(f"cannot repair {folder}: {err}") from err
    count = sum(int(t["message_count"]) for t in topics)
    return f"{folder}: {done}; metadata.yaml rebuilt: {count} messages on {len(topics)} topic(s)"

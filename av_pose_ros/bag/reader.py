"""Opens any rosbag2 a user is likely to hand us (a directory with metadata.yaml, one without it, a bare .mcap or
.db3; written here or by `ros2 bag record`) and yields raw messages in time order. A damaged bag does not stop
playback of what is still readable: the reader says what is wrong in `notes`, stops at the first unreadable record,
and leaves the reason in `error`. Plain Python (rosbags), no rclpy."""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.interfaces import Qos
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError
from rosbags.rosbag2.metadata import parse_qos

from av_pose_ros.bag.mcap_scan import Channel, McapDamage, McapScanner

READ_ERRORS = (ReaderError, OSError, sqlite3.Error, struct.error, ValueError, KeyError, EOFError)


class BagError(Exception):
    """A bag that cannot be opened at all; the message says what is wrong and what to do."""


@dataclass
class TopicInfo:
    name: str
    msgtype: str
    count: int
    qos: list[Qos] = field(default_factory=list)
    msgdef: str = ""


def _truncated_sqlite_copy(path: Path) -> Path | None:
    """SQLite refuses a file shorter than its header says; a temporary copy whose header counts only the pages
    present reads up to the damage. None when the file is not cut short."""
    with path.open("rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return None
    page = struct.unpack(">H", header[16:18])[0]
    page = 65536 if page == 1 else page
    size = path.stat().st_size
    if size >= struct.unpack(">I", header[28:32])[0] * page or size < page:
        return None
    fd, name = tempfile.mkstemp(suffix=".db3")
    os.close(fd)
    copy = Path(name)
    shutil.copyfile(path, copy)
    with copy.open("r+b") as f:
        f.truncate(size // page * page)
        f.seek(28)
        f.write(struct.pack(">I", size // page))
    return copy


def _sqlite_rows(path: Path) -> Iterator[tuple[Channel, int, bytes]]:
    """Rows of a rosbag2 sqlite3 file in insertion order, straight from its tables (no index or metadata needed);
    sqlite3.Error where the file is damaged."""
    copy = _truncated_sqlite_copy(path)
    con = sqlite3.connect(f"file:{copy or path}?mode=ro&immutable=1", uri=True)
    try:
        columns = {row[1] for row in con.execute("PRAGMA table_info(topics)")}
        qos = "offered_qos_profiles" if "offered_qos_profiles" in columns else "''"
        topics = {tid: Channel(tid, name, msgtype, "", "cdr", {"offered_qos_profiles": profiles or ""})
                  for tid, name, msgtype, profiles in con.execute(f"SELECT id, name, type, {qos} FROM topics")}
        for tid, stamp, data in con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
            if tid not in topics:
                raise sqlite3.DatabaseError(f"message on topic id {tid} that the topics table does not list")
            yield topics[tid], int(stamp), bytes(data)
    finally:
        con.close()
        if copy is not None:
            copy.unlink()


def _storage_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))


class BagReader:
    """`topics`, `start_ns`, `end_ns`, `messages(topics)`; `notes` (warnings worth printing) and, after a
    `messages()` pass that stopped early, `error` and `read` (messages yielded before the damage)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.notes: list[str] = []
        self.error: str | None = None
        self.read = 0
        self.storage = ""
        self._reader: Reader | None = None
        self._scan_files: list[Path] = []
        if not self.path.exists():
            raise BagError(f"{self.path} does not exist")
        files = [self.path] if self.path.is_file() else _storage_files(self.path)
        if self.path.is_dir() and not (self.path / "metadata.yaml").exists():
            if not files:
                raise BagError(f"{self.path} is not a rosbag2: no metadata.yaml and no .mcap or .db3 file in it")
            self.notes.append(f"{self.path} has no metadata.yaml (a recording that was not closed?): reading "
                              f"{', '.join(f.name for f in files)} directly")
            target = files[0] if len(files) == 1 else None
        else:
            target = self.path
        if target is None:
            self._scan_files = files  # several splits without metadata: read in name order
        else:
            try:
                reader = Reader(target)
                reader.open()
                self._reader = reader
            except READ_ERRORS as err:
                if not files:
                    raise BagError(f"cannot open {target}: {err}") from err
                self.notes.append(f"{target} is damaged or truncated ({err}); reading its records in file order "
                                  "up to the damage")
                self._scan_files = files
        self.storage = self._storage_name(files)
        self.topics, self.start_ns, self.end_ns = self._summary()

    def _storage_name(self, files: list[Path]) -> str:
        return "mcap" if any(f.suffix == ".mcap" for f in files) else "sqlite3"

    def _summary(self) -> tuple[dict[str, TopicInfo], int, int]:
        topics: dict[str, TopicInfo] = {}
        if self._reader is not None:
            for c in self._reader.connections:
                info = topics.setdefault(c.topic, TopicInfo(c.topic, c.msgtype, 0,
                                                            list(getattr(c.ext, "offered_qos_profiles", []) or []),
                                                            c.msgdef.data if c.msgdef else ""))
                info.count += c.msgcount
            count = self._reader.message_count
            return topics, (self._reader.start_time if count else 0), (self._reader.end_time if count else 0)
        start, end = None, None
        for channel, stamp, _ in self._scan():  # one pass to count what is readable
            info = topics.get(channel.topic)
            if info is None:
                qos = channel.metadata.get("offered_qos_profiles", "")
                try:
                    profiles = parse_qos(qos) if qos else []
                except READ_ERRORS:
                    profiles = []
                info = topics[channel.topic] = TopicInfo(channel.topic, channel.msgtype, 0, profiles, channel.msgdef)
            info.count += 1
            start = stamp if start is None else min(start, stamp)
            end = stamp if end is None else max(end, stamp)
        if self.error and not topics:
            raise BagError(f"cannot read {self.path}: {self.error}")
        if self.error:
            self.notes.append(f"readable part: {self.read} messages; then {self.error}")
        return topics, start or 0, end or 0

    def _scan(self) -> Iterator[tuple[object, int, bytes]]:
        self.error, self.read = None, 0
        for path in self._scan_files:
            try:
                for item in (McapScanner(path) if path.suffix == ".mcap" else _sqlite_rows(path)):
                    yield item
                    self.read += 1
            except (McapDamage, sqlite3.Error) as err:
                self.error = f"{path.name}: {err}"
                return

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())

    def messages(self, topics: list[str] | None = None, start_ns: int | None = None
                 ) -> Iterator[tuple[str, int, bytes]]:
        """(topic, receive time ns, serialized bytes) in bag order; stops (with `error` set) at unreadable data."""
        self.error, self.read = None, 0
        wanted = None if topics is None else set(topics)
        if self._reader is not None:
            connections = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
            if not connections:
                return
            try:
                for connection, stamp, data in self._reader.messages(connections=connections, start=start_ns):
                    yield connection.topic, stamp, bytes(data)
                    self.read += 1
            except READ_ERRORS as err:
                self.error = f"{type(err).__name__}: {err}"
            return
        for channel, stamp, data in self._scan():
            if (wanted is None or channel.topic in wanted) and (start_ns is None or stamp >= start_ns):
                yield channel.topic, stamp, data

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def qos_text(profiles: list[Qos]) -> str:
    if not profiles:
        return "-"
    q = profiles[0]
    return f"{q.reliability.name.lower()}/{q.durability.name.lower()}/depth {q.depth}" + (
        f" (+{len(profiles) - 1})" if len(profiles) > 1 else "")


def info_text(bag: BagReader) -> str:
    """What `av-pose bag info` prints: storage, span, and per topic its type, count and offered QoS."""
    duration = (bag.end_ns - bag.start_ns) * 1e-9 if bag.message_count else 0.0
    lines = [f"bag:       {bag.path}", f"storage:   {bag.storage}", f"duration:  {duration:.3f} s",
             f"start:     {bag.start_ns * 1e-9:.3f} s", f"end:       {bag.end_ns * 1e-9:.3f} s",
             f"messages:  {bag.message_count}", "topics:"]
    width = max((len(t) for t in bag.topics), default=0)
    for name, t in sorted(bag.topics.items()):
        lines.append(f"  {name:<{width}}  {t.count:7d}  {t.msgtype}  [{qos_text(t.qos)}]")
    lines += [f"note: {n}" for n in bag.notes]
    return "\n".join(lines)

"""Container logs as a kubelet keeps them (CRI log format) and serves them (containerLogs).

Writing: each container instance's stdout and stderr go to `<dir>/<container>/<restartCount>.log`,
one record per line, `<RFC 3339 time, UTC, nanoseconds> <stdout|stderr> <F|P> <text>\\n`; a line
longer than 16 KiB is split into P (partial) records ending with an F (full) one. When the file
would grow past `max_bytes` it is renamed to `<restartCount>.log.<UTC time>` and a new one started;
of the rotated files only the newest `max_files - 1` are kept.

Reading: the instance's rotated files then its current one, as `kubectl logs` shows them: the
text of each line (P records joined with the records completing them, per stream), optionally
prefixed with its time, with the kubelet's `tailLines`, `sinceSeconds`/`sinceTime`, `limitBytes`
and `follow` (new lines from the live writer until it closes).

Not implemented: rotated files are not gzip-compressed; only the CRI format is read (not Docker's
JSON); the `stream` query parameter (stdout or stderr only) is not supported. Unlike the kubelet,
`tailLines` counts whole lines rather than records, and reading spans the rotated files.
Rotated names carry microseconds, unlike the kubelet's seconds, as a small `max_bytes` can rotate
several times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, NamedTuple

STREAMS = ("stdout", "stderr")
MAX_LINE_BYTES = 16 * 1024  # containerd's default max_container_log_line_size


def log_path(pod_log_dir: Path, container: str, restart_count: int) -> Path:
    """The current log file of one instance of a container."""
    return pod_log_dir / container / f"{restart_count}.log"


def instance_files(current: Path) -> list[Path]:
    """An instance's log files, oldest first: the rotated ones, then `current`."""
    # Rotated names end with a fixed-width time, so sorting by name sorts by age.
    rotated = sorted(current.parent.glob(glob.escape(current.name) + ".*"))
    return [*rotated, current]


def _format_time(nanoseconds: int) -> bytes:
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    whole = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{fraction:09d}Z".encode()


class LogWriter:
    """Writes one container instance's stdout and stderr to its CRI log file, rotating it."""

    def __init__(
        self, path: Path, *, max_bytes: int = 10 * 1024 * 1024, max_files: int = 5
    ) -> None:
        if max_files < 2:
            raise ValueError(
                f"max_files must be at least 2 (the current file and one rotated), not {max_files}"
            )
        self._path = path
        self._max_bytes = max_bytes
        self._max_files = max_files
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._size = self._file.tell()
        self._pending = {stream: bytearray() for stream in STREAMS}
        self._subscribers: list[asyncio.Queue[bytes | None]] = []
        self._closed = False

    def write(self, stream: str, data: bytes) -> None:
        """Add output of `stream`; complete lines are written now, the rest is kept for later."""
        if stream not in self._pending:
            raise ValueError(f"stream must be one of {STREAMS}, not {stream!r}")
        if self._closed:
            raise ValueError(f"log writer of {self._path} is closed")
        pending = self._pending[stream]
        pending += data
        while True:
            end = pending.find(b"\n", 0, MAX_LINE_BYTES + 1)
            if end != -1:
                self._record(stream, "F", pending[:end])
                del pending[: end + 1]
            elif len(pending) > MAX_LINE_BYTES:
                self._record(stream, "P", pending[:MAX_LINE_BYTES])
                del pending[:MAX_LINE_BYTES]
            else:
                break

    def flush(self) -> None:
        """Write the unterminated last line of each stream as a full line (at process exit)."""
        for stream, pending in self._pending.items():
            if pending:
                self._record(stream, "F", pending)
                pending.clear()

    def close(self) -> None:
        """Flush, close the file, and end every follower's queue."""
        if self._closed:
            return
        self.flush()
        self._file.close()
        self._closed = True
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        """A queue of every record written from now on, then None once the writer is closed."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        if self._closed:
            queue.put_nowait(None)
        else:
            self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        """Stop feeding `queue` (a follower went away)."""
        with contextlib.suppress(ValueError):
            self._subscribers.remove(queue)

    def _record(self, stream: str, tag: str, text: bytes | bytearray) -> None:
        stamp = _format_time(time.time_ns())
        record = b"%s %s %s %s\n" % (stamp, stream.encode(), tag.encode(), text)
        if self._size and self._size + len(record) > self._max_bytes:
            self._rotate()
        # Flushed at once, so that a reader opening the file sees every record written so far.
        self._file.write(record)
        self._file.flush()
        self._size += len(record)
        for queue in self._subscribers:
            queue.put_nowait(record)

    def _rotate(self) -> None:
        self._file.close()
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S.%f")
        self._path.rename(self._path.with_name(f"{self._path.name}.{stamp}"))
        rotated = instance_files(self._path)[:-1]
        for old in rotated[: -(self._max_files - 1)]:
            old.unlink(missing_ok=True)
        self._file = self._path.open("ab")
        self._size = 0


async def pump(reader: asyncio.StreamReader, stream: str, writer: LogWriter) -> None:
    """Copy a container's pipe into its log until EOF."""
    while data := await reader.read(64 * 1024):
        writer.write(stream, data)


@dataclass(frozen=True)
class LogOptions:
    """What of a log to serve: the kubelet's PodLogOptions, validated as the API server does."""

    follow: bool = False
    tail_lines: int | None = None
    timestamps: bool = False
    since_seconds: int | None = None
    since_time: datetime | None = None
    limit_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.tail_lines is not None and self.tail_lines < 0:
            raise ValueError(f"tailLines must not be negative, not {self.tail_lines}")
        if self.limit_bytes is not None and self.limit_bytes < 1:
            raise ValueError(f"limitBytes must be greater than 0, not {self.limit_bytes}")
        if self.since_seconds is not None and self.since_seconds < 1:
            raise ValueError(f"sinceSeconds must be greater than 0, not {self.since_seconds}")
        if self.since_seconds is not None and self.since_time is not None:
            raise ValueError("at most one of sinceTime and sinceSeconds may be specified")
        if self.since_time is not None and self.since_time.tzinfo is None:
            raise ValueError(f"sinceTime must have a time zone, not {self.since_time}")

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> LogOptions:
        """Options from the query parameters of the kubelet's containerLogs endpoint."""
        return cls(
            follow=_flag(query, "follow"),
            tail_lines=_integer(query, "tailLines"),
            timestamps=_flag(query, "timestamps"),
            since_seconds=_integer(query, "sinceSeconds"),
            since_time=_time(query, "sinceTime"),
            limit_bytes=_integer(query, "limitBytes"),
        )

    def since(self) -> datetime | None:
        """The time before which lines are left out, if any, as of now."""
        if self.since_seconds is not None:
            return datetime.now(UTC) - timedelta(seconds=self.since_seconds)
        return self.since_time


def _flag(query: Mapping[str, str], name: str) -> bool:
    # As Kubernetes decodes query booleans: present is true, unless "0" or "false".
    value = query.get(name)
    return value is not None and value != "0" and value.lower() != "false"


def _integer(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    return int(value)


def _time(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(
            f"{name} must be an RFC 3339 time such as 2024-05-01T12:00:00Z, not {value!r}"
        )
    return parsed


class _Line(NamedTuple):
    time: datetime
    stamp: bytes  # the time as written in the file
    stream: bytes
    text: bytes


def _parse(record: bytes) -> tuple[_Line, bool] | None:
    """A record's line and whether it is partial; None if it is not a CRI log record."""
    fields = record.removesuffix(b"\n").split(b" ", 3)
    if len(fields) != 4 or fields[1] not in (b"stdout", b"stderr"):
        return None
    stamp, stream, tags, text = fields
    try:
        when = datetime.fromisoformat(stamp.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    # Tags are ":"-separated, for forward compatibility; the first says partial or full.
    return _Line(when, stamp, stream, text), tags.split(b":")[0] == b"P"


class _Joiner:
    """Joins partial records with the records that complete them, stream by stream."""

    def __init__(self) -> None:
        self._parts: dict[bytes, list[_Line]] = {}

    def add(self, record: bytes) -> _Line | None:
        """The line this record completes, if any."""
        parsed = _parse(record)
        if parsed is None:
            return None  # skipped, as the kubelet skips lines it cannot parse
        line, partial = parsed
        self._parts.setdefault(line.stream, []).append(line)
        return None if partial else _join(self._parts.pop(line.stream))

    def unfinished(self) -> list[_Line]:
        """Lines whose completing record is not written (yet)."""
        return [_join(parts) for parts in self._parts.values()]


def _join(parts: list[_Line]) -> _Line:
    # A line is as old as its first part.
    return parts[0]._replace(text=b"".join(part.text for part in parts))


class _Output:
    """Renders lines as served: `since`, `timestamps` and `limitBytes` applied."""

    def __init__(self, options: LogOptions) -> None:
        self._since = options.since()
        self._timestamps = options.timestamps
        self.remaining = options.limit_bytes  # None: no limit; 0: done

    def render(self, line: _Line) -> bytes:
        if self._since is not None and line.time < self._since:
            return b""
        data = line.text + b"\n"
        if self._timestamps:
            data = line.stamp + b" " + data
        if self.remaining is not None:
            data = data[: self.remaining]
            self.remaining -= len(data)
        return data


def _open(paths: Iterable[Path]) -> list[tuple[BinaryIO, int]]:
    """Each file still there, opened, with its size now."""
    opened: list[tuple[BinaryIO, int]] = []
    for path in paths:
        try:
            file = path.open("rb")
        except FileNotFoundError:
            continue  # rotated away since it was listed
        opened.append((file, os.fstat(file.fileno()).st_size))
    return opened


def _records(files: Iterable[tuple[BinaryIO, int]]) -> Iterator[bytes]:
    """The records of the files, each read up to the size it had when opened."""
    for file, size in files:
        left = size
        while left > 0 and (record := file.readline(left)):
            left -= len(record)
            yield record


def _lines(records: Iterable[bytes], joiner: _Joiner, *, finish: bool) -> Iterator[_Line]:
    for record in records:
        if line := joiner.add(record):
            yield line
    if finish:
        yield from joiner.unfinished()


async def read(
    paths: Sequence[Path], options: LogOptions, live: LogWriter | None = None
) -> AsyncIterator[bytes]:
    """An instance's log (`paths` from `instance_files`) as the kubelet's containerLogs serves
    it; with `follow` and the instance's `live` writer, then its new lines until it closes."""
    queue = live.subscribe() if options.follow and live is not None else None
    files: list[tuple[BinaryIO, int]] = []
    try:
        # Opened with their sizes right after subscribing, before anything else can be written:
        # the files up to those sizes, then the queue, hold every line once, even if the files
        # grow or rotate meanwhile.
        files = _open(paths)
        joiner = _Joiner()
        output = _Output(options)
        # Without a queue nothing completes the unfinished lines: show them as they are.
        lines: Iterable[_Line] = _lines(_records(files), joiner, finish=queue is None)
        if options.tail_lines is not None:
            lines = deque(lines, maxlen=options.tail_lines)
        for line in lines:
            if data := output.render(line):
                yield data
            if output.remaining == 0:
                return
        while queue is not None and (record := await queue.get()) is not None:
            if (completed := joiner.add(record)) and (data := output.render(completed)):
                yield data
            if output.remaining == 0:
                return
    finally:
        for file, _ in files:
            file.close()
        if queue is not None and live is not None:
            live.unsubscribe(queue)

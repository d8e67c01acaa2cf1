"""Container logs: CRI log files written and rotated, and read as the kubelet serves them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from reconciler_envtest.container_logs import (
    MAX_LINE_BYTES,
    LogOptions,
    LogWriter,
    instance_files,
    log_path,
    pump,
    read,
)

RECORD = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([FP]) (.*)\n")


def parse(path: Path) -> list[re.Match[bytes]]:
    """The records of a log file, checking their format."""
    matches = []
    for record in path.read_bytes().splitlines(keepends=True):
        match = RECORD.fullmatch(record)
        assert match, record
        matches.append(match)
    return matches


def records(path: Path) -> list[tuple[bytes, bytes, bytes]]:
    """The (stream, tag, text) of each record of a log file."""
    return [(match[2], match[3], match[4]) for match in parse(path)]


def prepare(path: Path, content: bytes) -> None:
    """A log file as if written earlier, by another writer."""
    path.parent.mkdir(parents=True)
    path.write_bytes(content)


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def read_all(path: Path, options: LogOptions | None = None) -> bytes:
    return await collect(read(instance_files(path), options or LogOptions()))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return log_path(tmp_path / "ns_pod_uid", "database", 0)


def test_records_are_cri_lines_stamped_when_complete(path: Path) -> None:
    writer = LogWriter(path)
    before = datetime.now(UTC)
    writer.write("stdout", b"hello\n\n")
    writer.close()

    assert path == path.parent.parent / "database" / "0.log"
    assert records(path) == [(b"stdout", b"F", b"hello"), (b"stdout", b"F", b"")]
    stamp = datetime.fromisoformat(parse(path)[0][1].decode())
    assert before <= stamp <= datetime.now(UTC)


def test_lines_are_assembled_across_writes_per_stream(path: Path) -> None:
    writer = LogWriter(path)
    writer.write("stdout", b"hel")
    writer.write("stderr", b"oops")
    writer.write("stdout", b"lo\nwor")
    writer.write("stderr", b"!\n")
    writer.write("stdout", b"ld\nno newline")
    assert records(path) == [
        (b"stdout", b"F", b"hello"),
        (b"stderr", b"F", b"oops!"),
        (b"stdout", b"F", b"world"),
    ]
    writer.flush()
    assert records(path)[-1] == (b"stdout", b"F", b"no newline")
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write("stdout", b"late\n")


def test_long_lines_are_split_into_partial_records(path: Path) -> None:
    long = b"x" * (2 * MAX_LINE_BYTES + 100)
    writer = LogWriter(path)
    writer.write("stdout", long[:1000])
    writer.write("stdout", long[1000:])
    # Written as soon as they are full, before the line ends.
    assert [tag for _, tag, _ in records(path)] == [b"P", b"P"]
    writer.write("stderr", b"meanwhile\n")
    writer.write("stdout", b"\n")
    writer.close()

    assert [(stream, tag, len(text)) for stream, tag, text in records(path)] == [
        (b"stdout", b"P", MAX_LINE_BYTES),
        (b"stdout", b"P", MAX_LINE_BYTES),
        (b"stderr", b"F", 9),
        (b"stdout", b"F", 100),
    ]


async def test_read_joins_partial_records_per_stream(path: Path) -> None:
    long = b"y" * (MAX_LINE_BYTES + 5)
    writer = LogWriter(path)
    writer.write("stdout", long)
    writer.write("stderr", b"meanwhile\n")
    writer.write("stdout", b"\nafter\n")
    writer.close()

    assert await read_all(path) == b"meanwhile\n" + long + b"\nafter\n"


async def test_read_shows_an_unfinished_line_of_a_running_writer(path: Path) -> None:
    writer = LogWriter(path)
    writer.write("stdout", b"z" * (MAX_LINE_BYTES + 1))

    assert await read_all(path) == b"z" * MAX_LINE_BYTES + b"\n"
    writer.close()


async def test_timestamps_prefix_each_line_with_its_time(path: Path) -> None:
    writer = LogWriter(path)
    writer.write("stdout", b"one\n")
    writer.write("stderr", b"two\n")
    writer.close()
    stamps = [match[1] for match in parse(path)]

    output = await read_all(path, LogOptions(timestamps=True))

    assert output == b"%s one\n%s two\n" % (stamps[0], stamps[1])


async def test_tail_lines(path: Path) -> None:
    writer = LogWriter(path)
    writer.write("stdout", b"".join(b"line %d\n" % n for n in range(5)))
    writer.close()

    assert await read_all(path, LogOptions(tail_lines=2)) == b"line 3\nline 4\n"
    assert await read_all(path, LogOptions(tail_lines=10)) == await read_all(path)
    assert await read_all(path, LogOptions(tail_lines=0)) == b""


async def test_since_leaves_out_older_lines(path: Path) -> None:
    prepare(
        path,
        b"2020-01-01T00:00:00.000000001Z stdout F old\n"
        b"not a CRI record\n"
        b"2020-01-01T00:00:01Z stderr F older time, less precise\n",
    )
    writer = LogWriter(path)
    writer.write("stdout", b"new\n")
    writer.close()

    assert await read_all(path, LogOptions(since_seconds=60)) == b"new\n"
    since = datetime(2020, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert await read_all(path, LogOptions(since_time=since)) == b"older time, less precise\nnew\n"
    assert await read_all(path) == b"old\nolder time, less precise\nnew\n"


async def test_limit_bytes_cuts_the_output(path: Path) -> None:
    writer = LogWriter(path)
    writer.write("stdout", b"first\nsecond\nthird\n")
    writer.close()

    assert await read_all(path, LogOptions(limit_bytes=9)) == b"first\nsec"
    assert await read_all(path, LogOptions(limit_bytes=6)) == b"first\n"
    assert await read_all(path, LogOptions(limit_bytes=1000)) == b"first\nsecond\nthird\n"


async def test_rotation_keeps_max_files_and_reads_across_them(path: Path) -> None:
    writer = LogWriter(path, max_bytes=200, max_files=3)
    for n in range(40):
        writer.write("stdout", b"line %02d\n" % n)
    writer.close()

    files = instance_files(path)
    assert len(files) == 3
    assert files[-1] == path
    assert all(file.name.startswith("0.log.") for file in files[:-1])
    assert all(0 < file.stat().st_size <= 200 for file in files)

    lines = (await read_all(path)).splitlines()
    # A contiguous run of the newest lines, in order, across the files.
    first = int(lines[0].split()[1])
    assert lines == [b"line %02d" % n for n in range(first, 40)]
    assert first > 0


def test_max_files_must_leave_room_for_a_rotated_file(path: Path) -> None:
    with pytest.raises(ValueError, match="max_files must be at least 2"):
        LogWriter(path, max_files=1)


async def test_follow_continues_with_new_lines_until_the_writer_closes(path: Path) -> None:
    writer = LogWriter(path, max_bytes=300)
    writer.write("stdout", b"".join(b"before %02d\n" % n for n in range(20)))
    chunks = read(instance_files(path), LogOptions(follow=True), writer)

    # Lines written while the files are being read, rotating them, come once, from the queue.
    output = [await anext(chunks)]
    writer.write("stdout", b"".join(b"during %02d\n" % n for n in range(20)))
    output.append(await anext(chunks))
    writer.write("stdout", b"partial line ")
    writer.write("stderr", b"after\n")
    writer.write("stdout", b"ends at close")
    writer.close()
    async with asyncio.timeout(5):
        output += [chunk async for chunk in chunks]

    lines = b"".join(output).splitlines()
    # The oldest files were deleted by rotation; the reader already had them open.
    assert lines == [
        *(b"before %02d" % n for n in range(20)),
        *(b"during %02d" % n for n in range(20)),
        b"after",
        b"partial line ends at close",
    ]


async def test_follow_tail_applies_to_the_files_only(path: Path) -> None:
    writer = LogWriter(path)
    writer.write("stdout", b"a\nb\nc\n")
    chunks = read(instance_files(path), LogOptions(follow=True, tail_lines=1), writer)
    assert await anext(chunks) == b"c\n"
    writer.write("stdout", b"d\ne\n")
    writer.close()
    async with asyncio.timeout(5):
        assert [chunk async for chunk in chunks] == [b"d\n", b"e\n"]


async def test_follow_stops_at_limit_bytes_and_unsubscribes(path: Path) -> None:
    writer = LogWriter(path)
    writer.write("stdout", b"abc\n")
    options = LogOptions(follow=True, limit_bytes=6)
    reading = asyncio.create_task(collect(read(instance_files(path), options, writer)))
    await asyncio.sleep(0)
    writer.write("stdout", b"defgh\n")
    async with asyncio.timeout(5):
        assert await reading == b"abc\nde"
    assert writer._subscribers == []
    writer.close()


async def test_follow_of_a_closed_writer_ends_with_the_files(path: Path) -> None:
    writer = LogWriter(path)
    writer.write("stdout", b"done\n")
    writer.close()
    async with asyncio.timeout(5):
        output = await collect(read(instance_files(path), LogOptions(follow=True), writer))
    assert output == b"done\n"


async def test_pump_copies_a_pipe_until_eof(path: Path) -> None:
    writer = LogWriter(path)
    reader = asyncio.StreamReader()
    reader.feed_data(b"from ")
    reader.feed_data(b"a pipe\nand more")
    reader.feed_eof()
    await pump(reader, "stderr", writer)
    writer.close()

    assert records(path) == [(b"stderr", b"F", b"from a pipe"), (b"stderr", b"F", b"and more")]


def test_options_from_query() -> None:
    options = LogOptions.from_query(
        {
            "follow": "true",
            "tailLines": "10",
            "timestamps": "1",
            "sinceTime": "2024-05-01T12:00:00Z",
            "limitBytes": "+500",
        }
    )
    assert options == LogOptions(
        follow=True,
        tail_lines=10,
        timestamps=True,
        since_time=datetime(2024, 5, 1, 12, tzinfo=UTC),
        limit_bytes=500,
    )
    assert LogOptions.from_query({}) == LogOptions()
    assert LogOptions.from_query({"follow": "False", "timestamps": "0"}) == LogOptions()
    since = LogOptions.from_query({"sinceSeconds": "60"}).since()
    assert since is not None
    assert abs(since - (datetime.now(UTC) - timedelta(seconds=60))) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"tailLines": "ten"}, "tailLines must be an integer, not 'ten'"),
        ({"tailLines": "-1"}, "tailLines must not be negative"),
        ({"limitBytes": "0"}, "limitBytes must be greater than 0"),
        ({"limitBytes": "1.5"}, "limitBytes must be an integer"),
        ({"sinceSeconds": "0"}, "sinceSeconds must be greater than 0"),
        ({"sinceTime": "yesterday"}, "sinceTime must be an RFC 3339 time"),
        ({"sinceTime": "2024-05-01T12:00:00"}, "sinceTime must be an RFC 3339 time"),
        (
            {"sinceSeconds": "5", "sinceTime": "2024-05-01T12:00:00Z"},
            "at most one of sinceTime and sinceSeconds",
        ),
    ],
)
def test_options_from_query_rejects_invalid_values(query: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        LogOptions.from_query(query)

"""The SPDY/3.1 server session, over loopback TCP, against a peer that encodes frames by hand."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import pytest
import pytest_asyncio
from reconciler_envtest.spdy import DICTIONARY, MAX_FRAME_DATA, Session, Stream

# Frame types and statuses, spelled out here rather than imported: the peer checks the wire.
SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9
FIN = 0x01
CANCEL = 5


@dataclass(frozen=True)
class Control:
    kind: int
    flags: int
    payload: bytes


@dataclass(frozen=True)
class Data:
    stream_id: int
    flags: int
    data: bytes


class Peer:
    """The client's side of the wire, as spdystream writes it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.deflate = zlib.compressobj(zdict=DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=DICTIONARY)

    def header_block(self, headers: Mapping[str, str]) -> bytes:
        block = struct.pack(">I", len(headers))
        for field in (f for pair in headers.items() for f in pair):
            block += struct.pack(">I", len(field)) + field.encode()
        return self.deflate.compress(block) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def control(self, kind: int, payload: bytes, flags: int = 0) -> None:
        self.writer.write(struct.pack(">HHI", 0x8003, kind, flags << 24 | len(payload)) + payload)

    def syn_stream(self, stream_id: int, headers: Mapping[str, str], flags: int = 0) -> None:
        self.control(
            SYN_STREAM, struct.pack(">IIBB", stream_id, 0, 0, 0) + self.header_block(headers), flags
        )

    def data(self, stream_id: int, data: bytes, flags: int = 0) -> None:
        self.writer.write(struct.pack(">II", stream_id, flags << 24 | len(data)) + data)

    def ping(self, ping_id: int) -> None:
        self.control(PING, struct.pack(">I", ping_id))

    async def frame(self) -> Control | Data:
        async with asyncio.timeout(5):
            first, flags_length = struct.unpack(">II", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(flags_length & 0xFFFFFF)
        if first & 0x8000_0000:
            assert first >> 16 == 0x8003, "SPDY/3 control frame"
            return Control(first & 0xFFFF, flags_length >> 24, payload)
        return Data(first, flags_length >> 24, payload)

    async def control_frame(self, kind: int) -> Control:
        frame = await self.frame()
        assert isinstance(frame, Control), frame
        assert frame.kind == kind, frame
        return frame

    async def syn_reply(self, stream_id: int) -> None:
        frame = await self.control_frame(SYN_REPLY)
        assert frame.flags == 0
        assert frame.payload[:4] == struct.pack(">I", stream_id)
        assert self.inflate.decompress(frame.payload[4:]) == struct.pack(">I", 0), "no headers"

    async def pong(self, ping_id: int) -> None:
        """Ping, and see the answer come next: everything sent before was handled."""
        self.ping(ping_id)
        frame = await self.control_frame(PING)
        assert frame.payload == struct.pack(">I", ping_id)


@dataclass
class Connected:
    session: Session
    peer: Peer
    run: asyncio.Task[None]

    async def open(self, stream_id: int, headers: Mapping[str, str] | None = None) -> Stream:
        self.peer.syn_stream(stream_id, headers or {"streamtype": "data"})
        stream = await self.session.accept()
        assert stream is not None
        await self.peer.syn_reply(stream_id)
        return stream


@pytest_asyncio.fixture
async def connected() -> AsyncIterator[Connected]:
    sessions: asyncio.Queue[tuple[Session, asyncio.Task[None]]] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(reader, writer)
        sessions.put_nowait((session, asyncio.create_task(session.run())))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    peer = Peer(*await asyncio.open_connection("127.0.0.1", port))
    session, run = await sessions.get()
    yield Connected(session, peer, run)
    await session.close()
    await asyncio.wait_for(run, 5)
    peer.writer.close()
    await peer.writer.wait_closed()
    server.close()
    await server.wait_closed()


def test_dictionary_is_spdy3s() -> None:
    # zlib streams carry the dictionary's Adler-32: spdystream's is 0xe3c6a7c2, 1423 bytes.
    assert (len(DICTIONARY), zlib.adler32(DICTIONARY)) == (1423, 0xE3C6A7C2)


async def test_syn_stream_is_accepted_with_its_headers_and_answered(connected: Connected) -> None:
    headers = {"streamType": "error", "port": "5432", "multi": "a\x00b"}
    stream = await connected.open(1, headers)
    assert stream.id == 1
    assert dict(stream.headers) == {"streamtype": "error", "port": "5432", "multi": "a\x00b"}
    assert not stream.remote_closed


async def test_data_flows_both_ways_in_frames_of_at_most_16_kib(connected: Connected) -> None:
    stream = await connected.open(1)
    connected.peer.data(1, b"hello")
    assert await stream.read() == b"hello"
    payload = bytes(range(256)) * 160  # 40 KiB: three frames
    await stream.write(payload)
    frames = [await connected.peer.frame() for _ in range(3)]
    assert all(isinstance(f, Data) and f.stream_id == 1 and f.flags == 0 for f in frames)
    chunks = [f.data for f in frames if isinstance(f, Data)]
    assert [len(c) for c in chunks] == [MAX_FRAME_DATA, MAX_FRAME_DATA, 40960 - 2 * 16384]
    assert b"".join(chunks) == payload


async def test_fin_from_the_peer_ends_reads_after_the_data(connected: Connected) -> None:
    stream = await connected.open(1)
    connected.peer.data(1, b"last", FIN)
    assert await stream.read() == b"last"
    assert await stream.read() == b""
    connected.peer.data(1, b"after the end")  # dropped
    await connected.peer.pong(1)
    assert await stream.read() == b"", "the end stays the end"
    assert stream.remote_closed
    await stream.write(b"still open our way")
    assert await connected.peer.frame() == Data(1, 0, b"still open our way")


async def test_close_sends_fin_once_and_then_writes_fail(connected: Connected) -> None:
    stream = await connected.open(1)
    await stream.close()
    assert await connected.peer.frame() == Data(1, FIN, b"")
    await stream.close()
    await connected.peer.pong(1)  # the ping's answer comes next: no second FIN
    with pytest.raises(ConnectionError):
        await stream.write(b"x")
    connected.peer.data(1, b"reads go on")
    assert await stream.read() == b"reads go on"


async def test_a_stream_closed_both_ways_is_forgotten(connected: Connected) -> None:
    stream = await connected.open(1)
    await stream.close()
    assert await connected.peer.frame() == Data(1, FIN, b"")
    connected.peer.data(1, b"", FIN)
    assert await stream.read() == b""
    connected.peer.data(1, b"late")  # dropped, as for any unknown stream
    connected.peer.data(77, b"never opened")
    await connected.peer.pong(1)
    assert stream.remote_closed
    assert connected.session._streams == {}


async def test_ping_is_echoed_with_its_id(connected: Connected) -> None:
    await connected.peer.pong(1)
    await connected.peer.pong(0x7FFF_FFFF)


async def test_settings_window_update_and_headers_are_ignored(connected: Connected) -> None:
    stream = await connected.open(1)
    connected.peer.control(SETTINGS, struct.pack(">III", 1, 7, 65536))
    connected.peer.control(WINDOW_UPDATE, struct.pack(">II", 1, 4096))
    connected.peer.control(HEADERS, struct.pack(">I", 1) + connected.peer.header_block({"a": "b"}))
    connected.peer.control(0x42, b"unknown")
    await connected.peer.pong(3)
    connected.peer.data(1, b"still fine")
    assert await stream.read() == b"still fine"


async def test_rst_stream_from_the_peer_ends_the_stream(connected: Connected) -> None:
    stream = await connected.open(1)
    connected.peer.control(RST_STREAM, struct.pack(">II", 1, CANCEL))
    assert await stream.read() == b""
    assert stream.remote_closed
    with pytest.raises(ConnectionError):
        await stream.write(b"x")
    await stream.close()  # nothing left to close: no frame
    await connected.peer.pong(1)


async def test_reset_sends_rst_stream_cancel(connected: Connected) -> None:
    stream = await connected.open(1)
    stream.reset()
    frame = await connected.peer.control_frame(RST_STREAM)
    assert frame.payload == struct.pack(">II", 1, CANCEL)
    assert await stream.read() == b""
    stream.reset()
    await connected.peer.pong(1)  # no second RST_STREAM


async def test_header_blocks_share_one_zlib_context(connected: Connected) -> None:
    headers = {"streamtype": "data", "port": "8080", "requestid": "0"}
    first = connected.peer.header_block(headers)
    second = connected.peer.header_block(headers)
    with pytest.raises(zlib.error):  # the second block refers back into the first
        zlib.decompressobj(zdict=DICTIONARY).decompress(second)
    for stream_id, block in ((1, first), (3, second)):
        connected.peer.control(SYN_STREAM, struct.pack(">IIBB", stream_id, 0, 0, 0) + block)
    for stream_id in (1, 3):
        stream = await connected.session.accept()
        assert stream is not None
        assert (stream.id, dict(stream.headers)) == (stream_id, headers)
        await connected.peer.syn_reply(stream_id)  # and ours, in our one context


async def test_concurrent_writes_do_not_interleave_frames(connected: Connected) -> None:
    streams = [await connected.open(stream_id) for stream_id in (1, 3, 5)]
    payloads = {s.id: bytes([s.id]) * 100_000 for s in streams}
    await asyncio.gather(*(s.write(payloads[s.id]) for s in streams))
    received = dict.fromkeys(payloads, b"")
    while any(len(received[i]) < len(payloads[i]) for i in received):
        frame = await connected.peer.frame()
        assert isinstance(frame, Data), frame
        received[frame.stream_id] += frame.data
    assert received == payloads


async def test_goaway_ends_the_session(connected: Connected) -> None:
    stream = await connected.open(1)
    connected.peer.control(GOAWAY, struct.pack(">II", 0, 0))
    assert await connected.session.accept() is None
    assert await connected.session.accept() is None
    assert await stream.read() == b""
    await asyncio.wait_for(connected.run, 5)
    with pytest.raises(ConnectionError):
        await stream.write(b"x")


async def test_eof_ends_the_session(connected: Connected) -> None:
    stream = await connected.open(1)
    waiting = asyncio.create_task(connected.session.accept())
    connected.peer.writer.close()
    assert await waiting is None
    assert await stream.read() == b""
    await asyncio.wait_for(connected.run, 5)


async def test_close_says_goaway_with_the_last_stream_and_hangs_up(connected: Connected) -> None:
    stream = await connected.open(1)
    reading = asyncio.create_task(stream.read())
    await connected.session.close()
    frame = await connected.peer.control_frame(GOAWAY)
    assert frame.payload == struct.pack(">II", 1, 0)
    assert await connected.peer.reader.read() == b""
    assert await reading == b""
    assert await connected.session.accept() is None
    await asyncio.wait_for(connected.run, 5)


async def test_a_stream_id_going_backwards_is_a_session_error(connected: Connected) -> None:
    await connected.open(3)
    connected.peer.syn_stream(1, {"streamtype": "data"})
    frame = await connected.peer.control_frame(GOAWAY)
    assert frame.payload == struct.pack(">II", 3, 1)  # PROTOCOL_ERROR
    assert await connected.session.accept() is None

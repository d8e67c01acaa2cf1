"""SPDY/3.1 sessions, server side, as the kubelet serves exec, attach and port-forward to the API
server (whose client is Go's github.com/moby/spdystream).

Implemented: streams the peer opens, each answered at once with an empty SYN_REPLY (as
Kubernetes' server does); DATA both ways, half-close and RST_STREAM; PING answers; GOAWAY.
Not implemented: flow control (spdystream sends no WINDOW_UPDATE and enforces no window, so
reads are buffered without bound and writes are limited by TCP only); streams opened by this
side, so no server push either (server side only); SETTINGS and HEADERS, which are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections.abc import Mapping
from typing import Final

import structlog

log = structlog.get_logger(__name__)

VERSION: Final = 3
SYN_STREAM: Final = 1
SYN_REPLY: Final = 2
RST_STREAM: Final = 3
PING: Final = 6
GOAWAY: Final = 7
HEADERS: Final = 8
FLAG_FIN: Final = 0x01
FLAG_UNIDIRECTIONAL: Final = 0x02
PROTOCOL_ERROR: Final = 1  # a status of both RST_STREAM and GOAWAY
CANCEL: Final = 5  # RST_STREAM status
# Writes are cut into DATA frames of at most this, so that one stream's large write does not
# hold the connection from the others for long.
MAX_FRAME_DATA: Final = 16 * 1024
# A header block inflates to anything; no Kubernetes request comes near this.
MAX_HEADER_BLOCK: Final = 1 << 20
_STREAM_ID_MASK: Final = 0x7FFF_FFFF

# The zlib dictionary of SPDY/3 header blocks (spec, "Compression"): length-prefixed words, then
# a raw tail. Byte-exact: a zlib stream names its dictionary by Adler-32; the peer's refuses others.
_WORDS: Final = (
    "options,head,post,put,delete,trace,accept,accept-charset,accept-encoding,accept-language,"
    "accept-ranges,age,allow,authorization,cache-control,connection,content-base,"
    "content-encoding,content-language,content-length,content-location,content-md5,"
    "content-range,content-type,date,etag,expect,expires,from,host,if-match,if-modified-since,"
    "if-none-match,if-range,if-unmodified-since,last-modified,location,max-forwards,pragma,"
    "proxy-authenticate,proxy-authorization,range,referer,retry-after,server,te,trailer,"
    "transfer-encoding,upgrade,user-agent,vary,via,warning,www-authenticate,method,get,status,"
    "200 OK,version,HTTP/1.1,url,public,set-cookie,keep-alive,origin"
)
_TAIL: Final = (
    b"100101201202205206300302303304305306307402405406407408409410411412413414415416417502504"
    b"505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    b"401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    b"503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, "
    b"Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    b"application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    b"gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY: Final = (
    b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS.split(",")) + _TAIL
)


class SpdyError(Exception):
    """The peer broke the protocol: the session ends with GOAWAY PROTOCOL_ERROR."""


def _control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, flags << 24 | len(payload)) + payload


def _data_frame(stream_id: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">II", stream_id, flags << 24 | len(data)) + data


def _parse_headers(block: bytes) -> dict[str, str]:
    """A header block: a 32-bit pair count, then (32-bit length, name, 32-bit length, value)."""
    (count,) = struct.unpack_from(">I", block)
    offset, headers = 4, {}
    for _ in range(count):
        fields = []
        for _ in range(2):
            (length,) = struct.unpack_from(">I", block, offset)
            offset += 4 + length
            if offset > len(block):
                raise SpdyError("header block truncated")
            # latin-1 maps bytes to str one to one: no header value can fail to decode.
            fields.append(block[offset - length : offset].decode("latin-1"))
        name = fields[0].lower()
        if name in headers:
            raise SpdyError(f"header {name!r} repeated")
        headers[name] = fields[1]
    if offset != len(block):
        raise SpdyError("bytes after the header block")
    return headers


class Stream:
    """A stream the peer opened: its headers, and bytes each way."""

    def __init__(self, session: Session, stream_id: int, headers: Mapping[str, str]) -> None:
        self.id = stream_id
        self.headers = headers
        self._session = session
        self._remote_closed = False
        self._local_closed = False
        # b"" marks the end. Unbounded: there is no flow control to slow the peer down.
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()

    @property
    def remote_closed(self) -> bool:
        """Whether the peer sends no more: FIN, reset, or the session ended."""
        return self._remote_closed

    async def read(self) -> bytes:
        """The next chunk of data, or b"" once the peer sends no more."""
        chunk = await self._chunks.get()
        if not chunk:
            self._chunks.put_nowait(chunk)  # the end, for every later read too
        return chunk

    async def write(self, data: bytes) -> None:
        """Send `data`; ConnectionError once our side or the session is closed."""
        self._check_writable()
        for start in range(0, len(data), MAX_FRAME_DATA):
            self._check_writable()  # a close() may have come during the last drain
            self._session._send(_data_frame(self.id, 0, data[start : start + MAX_FRAME_DATA]))
            await self._session._drain()

    async def close(self) -> None:
        """Tell the peer we send no more (empty DATA with FIN); reading goes on. Idempotent."""
        if self._local_closed:
            return
        self._session._send(_data_frame(self.id, FLAG_FIN, b""))
        self._local_closed = True
        self._session._forget_if_done(self)
        # The FIN is on its way; a connection lost meanwhile ends the session in run().
        with contextlib.suppress(ConnectionError):
            await self._session._drain()

    def reset(self) -> None:
        """Abort both ways with RST_STREAM CANCEL: reads return b"", writes fail."""
        if not (self._local_closed and self._remote_closed):
            self._session._send(_control_frame(RST_STREAM, 0, struct.pack(">II", self.id, CANCEL)))
        self._end()

    def _check_writable(self) -> None:
        if self._local_closed:
            raise ConnectionError(f"SPDY stream {self.id} is closed for writing")

    def _receive(self, data: bytes, flags: int) -> None:
        if self._remote_closed:
            return  # data after the peer's own FIN breaks the protocol; reads have ended
        if data:
            self._chunks.put_nowait(data)
        if flags & FLAG_FIN:
            self._end_remote()
            self._session._forget_if_done(self)

    def _end_remote(self) -> None:
        if not self._remote_closed:
            self._remote_closed = True
            self._chunks.put_nowait(b"")

    def _end(self) -> None:
        self._local_closed = True
        self._end_remote()
        self._session._forget_if_done(self)


class Session:
    """One SPDY connection, served: the peer opens streams, `accept` hands them out.

    `run` must be running for anything to happen. Every frame goes to the transport in one
    synchronous `write`, so frames from concurrent tasks cannot interleave and no lock is needed
    (nor could `Stream.reset`, which is not async, take one). Header blocks are deflated in that
    same synchronous step, so the peer inflates them in the order they were deflated.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        # One zlib context per direction for the whole session, as SPDY/3 requires.
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._streams: dict[int, Stream] = {}
        self._accepted: asyncio.Queue[Stream | None] = asyncio.Queue()  # None marks the end
        self._last_stream_id = 0
        self._closed = False

    async def run(self) -> None:
        """Read and dispatch frames until EOF, GOAWAY or a protocol error; then end the session."""
        try:
            while not self._closed:
                first, flags_length = struct.unpack(">II", await self._reader.readexactly(8))
                payload = await self._reader.readexactly(flags_length & 0xFFFFFF)
                if not first & 0x8000_0000:
                    stream = self._streams.get(first)
                    if stream is not None:  # otherwise unknown, finished or reset: dropped
                        stream._receive(payload, flags_length >> 24)
                elif not self._on_control(first & 0xFFFF, flags_length >> 24, payload):
                    return
        except (asyncio.IncompleteReadError, OSError):
            pass  # the peer hung up (TLS errors included), or close() did
        except (SpdyError, struct.error, zlib.error) as error:
            log.warning("spdy: protocol error, ending the session", error=str(error))
            self._send_goaway(PROTOCOL_ERROR)
        finally:
            self._end()

    async def accept(self) -> Stream | None:
        """The next stream the peer opened, already answered; None once the session ended."""
        if self._closed:
            return None
        stream = await self._accepted.get()
        if stream is None:
            self._accepted.put_nowait(None)  # the end, for every later or concurrent accept
        return stream

    async def close(self) -> None:
        """Send GOAWAY and hang up: `run` returns, reads return b"", `accept` returns None."""
        if not self._closed:
            self._send_goaway(0)
            self._end()
        with contextlib.suppress(OSError):  # a TLS peer may send after our close_notify
            await self._writer.wait_closed()

    def _on_control(self, kind: int, flags: int, payload: bytes) -> bool:
        """Handle one control frame; False for GOAWAY."""
        if kind == SYN_STREAM:
            (stream_id,) = struct.unpack_from(">I", payload)
            # Then the associated stream id (server push), priority and slot: all unused.
            self._open(stream_id & _STREAM_ID_MASK, self._inflate_headers(payload[10:]), flags)
        elif kind in (SYN_REPLY, HEADERS):
            # Unused, but inflated all the same: the peer deflated it in the shared context.
            self._inflate_headers(payload[4:])
        elif kind == RST_STREAM:
            (stream_id,) = struct.unpack_from(">I", payload)
            stream = self._streams.get(stream_id & _STREAM_ID_MASK)
            if stream is not None:
                stream._end()
        elif kind == PING:
            # Odd ids are the client's; even ones would answer pings of ours, and we send none.
            if struct.unpack_from(">I", payload)[0] % 2:
                self._send(_control_frame(PING, 0, payload[:4]))
        elif kind == GOAWAY:
            # Kubernetes' client says GOAWAY after resetting all its streams: the session is over.
            return False
        # SETTINGS, WINDOW_UPDATE (no flow control, see the module doc) and unknown types: nothing.
        return True

    def _open(self, stream_id: int, headers: dict[str, str], flags: int) -> None:
        if stream_id <= self._last_stream_id:
            raise SpdyError(f"stream id {stream_id} not above {self._last_stream_id}")
        self._last_stream_id = stream_id
        reply = self._deflate_headers(struct.pack(">I", 0))
        self._send(_control_frame(SYN_REPLY, 0, struct.pack(">I", stream_id) + reply))
        stream = Stream(self, stream_id, headers)
        self._streams[stream_id] = stream
        if flags & FLAG_UNIDIRECTIONAL:
            stream._local_closed = True
        if flags & FLAG_FIN:
            stream._end_remote()
        self._forget_if_done(stream)
        self._accepted.put_nowait(stream)

    def _inflate_headers(self, compressed: bytes) -> dict[str, str]:
        block = self._inflate.decompress(compressed, MAX_HEADER_BLOCK)
        if self._inflate.unconsumed_tail:
            raise SpdyError(f"header block over {MAX_HEADER_BLOCK} bytes")
        return _parse_headers(block)

    def _deflate_headers(self, block: bytes) -> bytes:
        # A sync flush ends the block on a byte boundary without ending the zlib stream.
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def _send(self, frame: bytes) -> None:
        if self._closed:
            raise ConnectionError("SPDY session closed")
        self._writer.write(frame)

    async def _drain(self) -> None:
        await self._writer.drain()

    def _send_goaway(self, status: int) -> None:
        with contextlib.suppress(ConnectionError):
            self._send(_control_frame(GOAWAY, 0, struct.pack(">II", self._last_stream_id, status)))

    def _forget_if_done(self, stream: Stream) -> None:
        if stream._local_closed and stream._remote_closed:
            self._streams.pop(stream.id, None)

    def _end(self) -> None:
        if self._closed:
            return
        for stream in list(self._streams.values()):
            stream._end()
        self._closed = True
        self._accepted.put_nowait(None)
        self._writer.close()

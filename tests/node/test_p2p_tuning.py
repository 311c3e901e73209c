"""The py-libp2p adapter in node/p2p/tuning.py: it still fits py-libp2p's internals, and it works.

If py-libp2p is upgraded and these fail, re-read the hot functions named in
``tuning.HOT_FUNCTIONS`` and adjust the adapter (or drop it if upstream fixed both costs).
"""

from __future__ import annotations

import logging
import os
import random
import struct
from typing import Any

import anyio
import pytest
from libp2p.io import trio as trio_io
from libp2p.io.exceptions import IncompleteReadError
from libp2p.security.noise import io as noise_io
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.yamux import yamux

import node.p2p.host  # noqa: F401  # applies the tuning at import, as a node does
from node.p2p import tuning


def test_py_libp2p_internals_have_the_expected_shape() -> None:
    assert tuning.check_shape() == []
    report = tuning.apply()
    assert report.problems == ()


def test_every_hot_function_is_guarded() -> None:
    for module_name, class_name, method in tuning.HOT_FUNCTIONS:
        module = __import__(module_name, fromlist=[class_name])
        function = getattr(module, class_name).__dict__[method]
        assert getattr(function, "__mycelnet_guarded__", False), f"{class_name}.{method}"
        assert function.__wrapped_original__ is not function


def test_a_yamux_frame_fits_one_noise_message() -> None:
    assert yamux.MAX_MESSAGE_SIZE <= noise_io.MAX_PLAINTEXT_LENGTH
    frames = anyio.run(_frames_written_for, 1 << 20, backend="trio")
    assert sum(frames) == (1 << 20) + yamux.HEADER_SIZE * len(frames)
    assert max(frames) == noise_io.MAX_PLAINTEXT_LENGTH  # full frames, each exactly one Noise message


class _Formatted:
    """Counts how often a log argument is turned into text."""

    def __init__(self) -> None:
        self.formatted = 0

    def __format__(self, spec: str) -> str:
        self.formatted += 1
        return "counted"

    def __str__(self) -> str:
        return format(self, "")


class _FakeConn:
    def __init__(self) -> None:
        self.frames: list[int] = []
        self.is_initiator_value = _Formatted()
        self._write_lock = anyio.Lock()
        self.secured_conn = self

    async def write(self, data: bytes) -> None:
        self.frames.append(len(data))

    async def _write_frame(self, data: bytes) -> None:
        await yamux.Yamux._write_frame(self, data)  # type: ignore[arg-type]


async def _frames_written_for(size: int) -> list[int]:
    conn: Any = _FakeConn()
    stream = yamux.YamuxStream(1, conn, True)
    stream.send_window = size
    await stream.write(b"x" * size)
    return list(conn.frames)


async def _write_one_frame(conn: Any) -> None:
    await yamux.Yamux._write_frame(conn, b"\x00" * yamux.HEADER_SIZE + b"payload")


def test_no_debug_string_is_built_with_debug_logging_off(caplog: pytest.LogCaptureFixture) -> None:
    conn = _FakeConn()
    caplog.set_level(logging.INFO, logger=yamux.logger.name)
    anyio.run(_write_one_frame, conn, backend="trio")
    assert conn.frames == [yamux.HEADER_SIZE + 7]
    assert conn.is_initiator_value.formatted == 0


def test_debug_logging_turned_on_later_still_logs(caplog: pytest.LogCaptureFixture) -> None:
    conn = _FakeConn()
    caplog.set_level(logging.DEBUG, logger=yamux.logger.name)
    was = yamux.logger.propagate
    yamux.logger.propagate = True  # libp2p turns propagation off; caplog listens at the root
    try:
        anyio.run(_write_one_frame, conn, backend="trio")
    finally:
        yamux.logger.propagate = was
    assert conn.is_initiator_value.formatted == 1
    assert any("YAMUX TX" in record.getMessage() for record in caplog.records)


def test_a_changed_internal_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(yamux, "MAX_MESSAGE_SIZE")
    monkeypatch.setattr(tuning, "HOT_FUNCTIONS", (*tuning.HOT_FUNCTIONS, (tuning.YAMUX_MODULE, "Yamux", "gone")))
    problems = tuning.check_shape()
    assert any("MAX_MESSAGE_SIZE" in p for p in problems)
    assert any("Yamux.gone does not exist" in p for p in problems)


def test_window_credit_is_go_yamux_s_half_window_rule() -> None:
    assert tuning.apply().credit_in_halves
    assert yamux.YamuxStream._auto_tune_and_send_window_update is tuning._credit_in_halves


def test_a_changed_window_bookkeeping_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(yamux.YamuxStream, "_apply_autotune_epoch")
    assert any("_apply_autotune_epoch is gone" in p for p in tuning.check_shape())


class _CreditConn(_FakeConn):
    """A Yamux connection stand-in that records the WINDOW_UPDATE increments a stream sends."""

    def __init__(self) -> None:
        super().__init__()
        self.stream_buffers: dict[int, bytearray] = {1: bytearray()}
        self.credits: list[int] = []

    def rtt(self) -> float:
        return 0.001

    async def _write_frame(self, data: bytes) -> None:
        _, kind, _, _, length = struct.unpack(yamux.YAMUX_HEADER_FORMAT, data[: yamux.HEADER_SIZE])
        if kind == yamux.TYPE_WINDOW_UPDATE:
            self.credits.append(length)


async def _credits_for_reads(reads: int, size: int) -> list[int]:
    """Credits a stream sends while ``reads`` frames of ``size`` bytes arrive and are read at once."""
    conn: Any = _CreditConn()
    stream = yamux.YamuxStream(1, conn, True)
    for _ in range(reads):
        stream.recv_window -= size  # what the incoming handler does for a data frame
        await stream._auto_tune_and_send_window_update(bytes_read=size)  # what read() does after it
    return list(conn.credits)


def test_a_reader_that_keeps_up_credits_once_per_half_window() -> None:
    frame = yamux.MAX_MESSAGE_SIZE - yamux.HEADER_SIZE
    credits = anyio.run(_credits_for_reads, 16, frame, backend="trio")  # 1 MiB read as it arrives
    half = yamux.DEFAULT_WINDOW_SIZE // 2
    assert 2 <= len(credits) <= 8  # upstream sent one per frame: 16
    assert all(credit >= half for credit in credits)  # each at least half a window
    assert sum(credits) >= 16 * frame - yamux.DEFAULT_WINDOW_SIZE  # never owes the peer more than a window


async def _window_after_grant(size: int) -> tuple[int, int, list[int]]:
    conn: Any = _CreditConn()
    stream = yamux.YamuxStream(1, conn, True)
    granted = await tuning.open_receive_window(stream, size)
    return granted, stream.recv_window, list(conn.credits)


def test_a_requester_grants_the_reply_s_window_at_once() -> None:
    granted, window, credits = anyio.run(_window_after_grant, 4 << 20, backend="trio")
    assert granted == (4 << 20) - yamux.DEFAULT_WINDOW_SIZE and window == 4 << 20
    assert credits == [granted]  # one WINDOW_UPDATE
    granted, window, credits = anyio.run(_window_after_grant, 1 << 30, backend="trio")
    assert window == yamux.MAX_WINDOW_SIZE  # bounded by Yamux's maximum


class _Socket:
    """A trio SocketStream stand-in: each receive returns what one recv would (up to ``n`` of what arrived)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.receives = 0

    async def receive_some(self, n: int | None = None) -> bytes:
        self.receives += 1
        taken, self.data = self.data[: n or 65536], self.data[n or 65536 :]
        return taken


async def _noise_reads(messages: int) -> tuple[bytes, bytes, int]:
    """Read ``messages`` length-prefixed messages the way Noise does (2 bytes, then the body)."""
    body = os.urandom(noise_io.MAX_PLAINTEXT_LENGTH + 16)
    wire = (len(body).to_bytes(2, "big") + body) * messages
    socket = _Socket(wire)
    stream = trio_io.TrioTCPStream(socket)  # type: ignore[arg-type]
    got = bytearray()
    for _ in range(messages):
        for size in (2, len(body)):
            want = len(got) + size
            while len(got) < want:
                got += await stream.read(want - len(got))
    return wire, bytes(got), socket.receives


def test_a_noise_message_takes_a_fraction_of_a_receive() -> None:
    assert tuning.apply().read_ahead
    wire, got, receives = anyio.run(_noise_reads, 20, backend="trio")
    assert got == wire  # every byte, in order
    assert receives <= len(wire) // tuning.READ_AHEAD + 2  # upstream: two or more per message (40 here)


def test_yamux_settings_are_read_once_not_per_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tuning.apply().settings_frozen
    for name in tuning.YAMUX_SETTINGS:  # the same answers as at start
        assert getattr(yamux, name)() == getattr(yamux, name).__wrapped_original__()
    lookups: list[str] = []
    monkeypatch.setattr(os, "getenv", lambda name, default=None: lookups.append(name) or default)
    anyio.run(_frames_written_for, 1 << 20, backend="trio")
    anyio.run(_credits_for_reads, 16, 64 << 10, backend="trio")
    assert lookups == []  # upstream: several per frame


class _Reads:
    """Hands out the given reads in turn, then end of stream."""

    def __init__(self, *reads: bytes) -> None:
        self.reads = list(reads)

    async def read(self, n: int | None = None) -> bytes:
        return self.reads.pop(0) if self.reads else b""


async def _exactly(reader: _Reads, n: int) -> bytes:
    result: bytes = await yamux.read_exactly(reader, n)  # what Yamux calls per frame header and body
    return result


def test_a_whole_first_read_is_returned_as_it_came() -> None:
    assert tuning.apply().exact_reads
    body = os.urandom(65_507)
    assert anyio.run(_exactly, _Reads(body), len(body), backend="trio") is body  # upstream copied it twice
    assert anyio.run(_exactly, _Reads(body[:7], body[7:100], body[100:]), len(body), backend="trio") == body
    with pytest.raises(IncompleteReadError, match="expected 12 bytes but received 5"):
        anyio.run(_exactly, _Reads(b"short"), 12, backend="trio")


class _Messages:
    """A Noise reader stand-in: whole decrypted messages, one per read_msg."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages

    async def read_msg(self) -> bytes:
        return self.messages.pop(0) if self.messages else b""


async def _session_reads(messages: list[bytes], sizes: list[int]) -> list[bytes]:
    session: Any = SecureSession.__new__(SecureSession)  # only the read path: no keys needed
    session.conn = _Messages(list(messages))
    session._reset_internal_buffer()
    return [await session.read(size) for size in sizes]


def test_the_rest_of_a_noise_message_is_kept_as_it_is() -> None:
    assert tuning.apply().session_buffer
    frame = os.urandom(65_519)
    header, body = anyio.run(_session_reads, [frame], [12, len(frame) - 12], backend="trio")
    assert header + body == frame  # what Yamux reads: a frame's header, then its body
    session: Any = SecureSession.__new__(SecureSession)
    session._reset_internal_buffer()
    session._fill(frame)
    assert session._drain(len(frame)) is frame  # upstream: written into a BytesIO, copied out
    rng = random.Random(5)
    messages = [os.urandom(rng.choice([1, 100, 65_519])) for _ in range(30)]
    wire = b"".join(messages)
    sizes: list[int] = []
    while sum(sizes) < len(wire):
        sizes.append(min(rng.choice([1, 12, 500, 65_507]), len(wire) - sum(sizes)))
    assert b"".join(anyio.run(_session_reads, messages, sizes, backend="trio")) == wire  # in order, whole

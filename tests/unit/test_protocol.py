"""Framing and error objects of inference_server.protocol (standard library only, no subprocess)."""
from __future__ import annotations

import io
import json

import pytest

from inference_server import protocol


class Trickle(io.RawIOBase):
    """A stream that hands out at most `step` bytes per read (like a pipe delivering partial chunks)."""

    def __init__(self, data: bytes, step: int = 1):
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data[self._pos:self._pos + min(self._step, len(buffer))]
        buffer[:len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def frame(body: bytes, extra_headers: bytes = b"") -> bytes:
    return b"Content-Length: %d\r\n" % len(body) + extra_headers + b"\r\n" + body


def test_round_trip_of_requests_notifications_and_responses():
    messages = [
        protocol.request(1, "initialize", {"client": "test"}),
        protocol.request("abc", "shutdown"),
        protocol.notification("progress", {"job_id": "j", "stage": "fit", "done": 3, "total": 9, "fps": 2.5}),
        protocol.response(1, {"ünïcødé": "✓", "nested": [1, 2.5, None, True]}),
        protocol.error_response(None, {"code": protocol.PARSE_ERROR, "message": "bad"}),
    ]
    stream = io.BytesIO()
    for message in messages:
        protocol.write_message(stream, message)
    stream.seek(0)
    assert [protocol.read_message(stream) for _ in messages] == messages
    assert protocol.read_message(stream) is None


def test_builders_follow_json_rpc():
    assert protocol.request(7, "cancel", {"job_id": "x"}) == {
        "jsonrpc": "2.0", "id": 7, "method": "cancel", "params": {"job_id": "x"}}
    assert "params" not in protocol.request(7, "shutdown")
    assert "id" not in protocol.notification("exit")
    assert protocol.response(None, None) == {"jsonrpc": "2.0", "id": None, "result": None}


def test_content_length_counts_bytes_not_characters():
    body = '{"jsonrpc":"2.0","method":"progress","params":{"stage":"détection ✓"}}'.encode("utf-8")
    assert len(body) != len(body.decode("utf-8"))
    stream = io.BytesIO(frame(body) + protocol.encode(protocol.notification("exit")))
    assert protocol.read_message(stream)["params"]["stage"] == "détection ✓"
    assert protocol.read_message(stream) == protocol.notification("exit")
    data = protocol.encode(protocol.notification("progress", {"stage": "détection ✓"}))
    header, encoded = data.split(b"\r\n\r\n", 1)
    assert int(header.split(b":")[1]) == len(encoded)


def test_partial_reads_one_byte_at_a_time():
    first = protocol.request(1, "initialize")
    second = protocol.notification("exit")
    data = protocol.encode(first) + protocol.encode(second)
    stream = io.BufferedReader(Trickle(data, step=1), buffer_size=1)
    assert protocol.read_message(stream) == first
    assert protocol.read_message(stream) == second
    assert protocol.read_message(stream) is None


def test_extra_headers_and_bare_newlines_are_accepted():
    body = json.dumps(protocol.request(1, "x")).encode()
    stream = io.BytesIO(b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length: %d\n\n" % len(body)
                        + body)
    assert protocol.read_message(stream) == protocol.request(1, "x")


@pytest.mark.parametrize("data, fragment", [
    (b"Content-Length: abc\r\n\r\n{}", "bad Content-Length"),
    (b"Content-Length: -4\r\n\r\n{}", "negative"),
    (b"Content-Type: text/plain\r\n\r\n{}", "missing Content-Length"),
    (b"hello from a stray print\r\n\r\n", "malformed header"),
    (b"Content-Length: 10\r\n\r\n{}", "ended inside a message body"),
    (b"Content-Length: 2\r\n", "ended inside a message header"),
    (b"X-Long: " + b"a" * (protocol.MAX_HEADER_BYTES + 10) + b"\r\n\r\n", "header too long"),
])
def test_bad_headers_are_fatal_invalid_request(data, fragment):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.read_message(io.BytesIO(data))
    assert info.value.code == protocol.INVALID_REQUEST
    assert info.value.fatal
    assert fragment in info.value.message


def test_oversized_body_is_skipped_and_the_stream_stays_in_sync():
    limit = 1000
    big = frame(b"x" * (limit + 1))
    after = protocol.request(2, "initialize")
    stream = io.BytesIO(big + protocol.encode(after))
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.read_message(stream, max_bytes=limit)
    assert info.value.code == protocol.INVALID_REQUEST and not info.value.fatal
    assert str(limit) in info.value.message
    assert protocol.read_message(stream, max_bytes=limit) == after


def test_oversized_at_the_default_limit():
    body = b" " * (protocol.MAX_MESSAGE_BYTES + 1)
    stream = io.BytesIO(frame(body) + protocol.encode(protocol.notification("exit")))
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.read_message(stream)
    assert not info.value.fatal
    assert protocol.read_message(stream) == protocol.notification("exit")


@pytest.mark.parametrize("body", [b"{bad json}", b"\xff\xfe not utf-8", b'{"a": 1', b""])
def test_bad_json_is_parse_error_and_the_stream_stays_in_sync(body):
    after = protocol.request(3, "shutdown")
    stream = io.BytesIO(frame(body) + protocol.encode(after))
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.read_message(stream)
    assert info.value.code == protocol.PARSE_ERROR and not info.value.fatal
    assert protocol.read_message(stream) == after


def test_rpc_error_to_error_includes_fix_and_data():
    err = protocol.RpcError(protocol.VIDEO_NOT_FOUND, "video not found: /x.mp4", path="/x.mp4").to_error()
    assert err["code"] == protocol.VIDEO_NOT_FOUND
    assert err["message"] == "video not found: /x.mp4"
    assert err["data"]["fix"] == protocol.APP_ERRORS[protocol.VIDEO_NOT_FOUND]
    assert err["data"]["path"] == "/x.mp4"
    custom = protocol.RpcError(protocol.JOB_FAILED, "boom", fix="do this").to_error()
    assert custom["data"] == {"fix": "do this"}


def test_rpc_error_without_fix_has_no_data():
    assert protocol.RpcError(protocol.METHOD_NOT_FOUND, "nope").to_error() == {
        "code": protocol.METHOD_NOT_FOUND, "message": "nope"}


def test_every_application_code_has_a_fix_and_codes_are_unique():
    codes = [protocol.NOT_INITIALIZED, protocol.VIDEO_NOT_FOUND, protocol.VIDEO_UNREADABLE, protocol.NO_PERSON,
             protocol.MODEL_MISSING, protocol.JOB_NOT_FOUND, protocol.JOB_CANCELLED, protocol.JOB_FAILED,
             protocol.OUTPUT_NOT_WRITABLE]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert -32099 <= code <= -32000
        assert protocol.APP_ERRORS[code]


def test_encode_refuses_nan():
    with pytest.raises(ValueError):
        protocol.encode(protocol.notification("progress", {"fps": float("nan")}))

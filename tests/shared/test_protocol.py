"""shared.protocol: every message round-trips, and anything off-protocol raises ProtocolError."""

from __future__ import annotations

import cv2
import msgpack
import numpy as np
import pytest
import skimage.data

from shared import protocol
from shared.protocol import (MAX_FRAME_BYTES, MAX_SIDE, PROTOCOL_VERSION, Error, Goodbye, Heartbeat, Hello,
                             MaskReply, ProtocolError, SegmentRequest, decode, encode, encode_mask,
                             encode_request, reply_mask, request_pixels)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


def _body(payload: bytes) -> dict:
    return msgpack.unpackb(payload, raw=False)


def _pack(body: dict) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


@pytest.mark.parametrize("message", [
    Hello("selfie", 256, 256, "stretch", 2, "box-12", 200),
    Hello("icnet-resnet18", 320, 320, "fit", 1, "gpu-box-1", 1000, "cuda:0 fp16"),
    Hello("selfie-auto", 256, 256, "aspect", 1, "box-2", 200),
    Heartbeat(200),
    Error("busy", "capacity is 1", 17),
    Error("unknown-replica", "", -1),
    Goodbye("shutting down"),
    Goodbye(""),
])
def test_control_messages_round_trip(message):
    assert decode(encode(message)) == message


def test_raw_request_round_trips_exact_pixels(frame):
    request = decode(encode_request(frame, 41, 123.5))
    assert isinstance(request, SegmentRequest)
    assert (request.seq, request.capture_time, request.width, request.height) == (41, 123.5, 256, 256)
    assert np.array_equal(request_pixels(request), frame)


def test_jpeg_request_is_smaller_and_close(frame):
    raw = encode_request(frame, 1, 0.0)
    jpeg = encode_request(frame, 1, 0.0, encoding="jpeg", jpeg_quality=90)
    assert len(jpeg) < len(raw) / 4
    pixels = request_pixels(decode(jpeg))
    assert pixels.shape == frame.shape
    # Colour order survives (RGB in, RGB out): compare channel means, then the pixels.
    assert np.allclose(pixels.reshape(-1, 3).mean(0), frame.reshape(-1, 3).mean(0), atol=2.0)
    assert np.abs(pixels.astype(np.int16) - frame).mean() < 4.0


def test_mask_round_trips_raw_and_png(frame):
    mask = frame[..., 0].copy()
    for encoding in ("raw", "png"):
        reply = decode(encode_mask(mask, 7, 4.5, "r1", encoding=encoding))
        assert isinstance(reply, MaskReply) and reply.encoding == encoding
        assert (reply.seq, reply.inference_ms, reply.replica_id) == (7, 4.5, "r1")
        assert np.array_equal(reply_mask(reply), mask)


def test_png_mask_of_a_real_mask_is_much_smaller():
    mask = np.zeros((256, 256), np.uint8)
    cv2.circle(mask, (128, 100), 70, 255, -1)
    png = encode_mask(mask, 1, 1.0, "r", encoding="png")
    assert len(png) < mask.size / 10


def test_non_contiguous_frame_is_encoded_correctly(frame):
    view = frame[:, ::-1]          # a negative-stride view: must not send the wrong bytes
    assert np.array_equal(request_pixels(decode(encode_request(view, 1, 0.0))), view)


@pytest.mark.parametrize("payload, words", [
    (b"", "not a msgpack"),
    (b"\xc1", "not a msgpack"),
    (b"\x92\x01", "not a msgpack"),
    (_pack([1, 2]), "not a msgpack"),
    (_pack(5), "must be a msgpack map"),
    (_pack({"v": 1, "kind": "heartbeat", "interval_ms": 200}), "version 1"),   # an older holocam
    (_pack({"v": True, "kind": "heartbeat", "interval_ms": 200}), "version True"),
    (_pack({"kind": "heartbeat", "interval_ms": 200}), "version None"),
    (_pack({"v": PROTOCOL_VERSION, "kind": "shout", "interval_ms": 200}), "unknown message kind"),
    (_pack({"v": PROTOCOL_VERSION, "kind": "heartbeat"}), "missing fields ['interval_ms']"),
    (_pack({"v": PROTOCOL_VERSION, "kind": "heartbeat", "interval_ms": 200, "x": 1}), "unknown fields ['x']"),
    (_pack({"v": PROTOCOL_VERSION, "kind": "heartbeat", "interval_ms": 0}), "out of range"),
    (_pack({"v": PROTOCOL_VERSION, "kind": "heartbeat", "interval_ms": 2.0}), "must be an integer"),
    (_pack({"v": PROTOCOL_VERSION, "kind": "heartbeat", "interval_ms": True}), "must be an integer"),
    (_pack({"v": PROTOCOL_VERSION, "kind": "goodbye", "reason": "a\nb"}), "printable"),
    (_pack({"v": PROTOCOL_VERSION, "kind": "error", "code": "oops", "message": "", "seq": -1}), "expected one of"),
    (_pack({"v": PROTOCOL_VERSION, "kind": "heartbeat", "interval_ms": 200}) + b"\x00", "not a msgpack"),
    (b"\xdd\xff\xff\xff\xff", "not a msgpack"),            # a 4-billion-element array header
    (b"\xc6\x7f\xff\xff\xff" + b"x" * 10, "not a msgpack"),  # a 2 GB bin header on 10 bytes
])
def test_malformed_messages_raise_protocol_error(payload, words):
    with pytest.raises(ProtocolError) as info:
        decode(payload)
    assert words in str(info.value)


def _request_body(**changes) -> dict:
    body = {"v": PROTOCOL_VERSION, "kind": "request", "seq": 3, "capture_time": 1.0, "width": 4, "height": 2,
            "channels": 3, "encoding": "raw", "data": bytes(24)}
    body.update(changes)
    return body


@pytest.mark.parametrize("changes, words", [
    ({"data": bytes(23)}, "needs 24"),                          # truncated pixels
    ({"data": bytes(25)}, "needs 24"),
    ({"width": 5}, "needs 30"),                                 # dimensions that do not match the bytes
    ({"width": 0}, "out of range"),
    ({"height": MAX_SIDE + 1}, "out of range"),
    ({"channels": 4}, "out of range"),
    ({"seq": -1}, "out of range"),
    ({"seq": 2**64 - 1}, "out of range"),
    ({"capture_time": float("nan")}, "out of range"),
    ({"capture_time": float("inf")}, "out of range"),
    ({"capture_time": "now"}, "must be a number"),
    ({"encoding": "webp"}, "expected one of"),
    ({"data": "text"}, "must be binary"),
])
def test_request_fields_are_validated(changes, words):
    with pytest.raises(ProtocolError) as info:
        decode(_pack(_request_body(**changes)))
    assert words in str(info.value)


def test_oversized_frame_is_rejected_before_allocation():
    # A header that claims more than MAX_FRAME_BYTES of pixels is refused by the unpacker's
    # bounds, before any buffer of that size exists.
    header = b"\xc6" + (MAX_FRAME_BYTES + 1).to_bytes(4, "big")
    with pytest.raises(ProtocolError):
        decode(b"\x81\xa4data" + header + b"\x00" * 16)
    with pytest.raises(ProtocolError, match="exceeds"):
        decode(bytes(protocol.MAX_REQUEST_BYTES + 1))


def test_jpeg_claiming_other_size_is_rejected_before_decoding(frame):
    small = cv2.imencode(".jpg", frame[:64, :64])[1].tobytes()
    body = _request_body(width=256, height=256, encoding="jpeg", data=small)
    request = decode(_pack(body))
    with pytest.raises(ProtocolError, match="JPEG is 64x64"):
        request_pixels(request)


def test_corrupt_jpeg_is_rejected(frame):
    data = bytearray(cv2.imencode(".jpg", frame)[1].tobytes())
    for bad in (b"not a jpeg at all", bytes(data[:2]) + b"\x00" * 40, bytes(data[:30])):
        request = decode(_pack(_request_body(width=256, height=256, encoding="jpeg", data=bad)))
        with pytest.raises(ProtocolError):
            request_pixels(request)


def test_png_mask_with_wrong_header_is_rejected():
    colour = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    body = {"v": PROTOCOL_VERSION, "kind": "mask", "seq": 1, "width": 4, "height": 4, "encoding": "png", "data": colour,
            "inference_ms": 1.0, "replica_id": "r"}
    with pytest.raises(ProtocolError, match="greyscale"):
        reply_mask(decode(_pack(body)))
    body["data"] = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    with pytest.raises(ProtocolError, match="PNG is 8x8"):
        reply_mask(decode(_pack(body)))


def test_encode_refuses_what_decode_would_refuse():
    with pytest.raises(ProtocolError):
        encode(Hello("selfie", 0, 256, "stretch", 1, "r", 200))
    with pytest.raises(ProtocolError):
        encode(Error("busy", "x" * 1000, 1))
    with pytest.raises(ProtocolError):
        encode_request(np.zeros((4, 4), np.uint8), 1, 0.0)
    with pytest.raises(ProtocolError):
        encode_request(np.zeros((4, 4, 3), np.float32), 1, 0.0)
    with pytest.raises(ProtocolError):
        encode_mask(np.zeros((4, 4, 1), np.uint8), 1, 0.0, "r")


def test_every_byte_flip_of_a_request_is_handled(frame):
    # Mutation sweep over the header: each variant either decodes to a valid message or raises
    # ProtocolError -- never another exception.
    payload = bytearray(encode_request(frame[:8, :8], 5, 2.0))
    header_len = len(payload) - 8 * 8 * 3
    for pos in range(header_len):
        for value in (0x00, 0xFF, payload[pos] ^ 0x01, 0xC1):
            mutated = bytearray(payload)
            mutated[pos] = value
            try:
                message = decode(bytes(mutated))
            except ProtocolError:
                continue
            if isinstance(message, SegmentRequest):
                assert len(message.data) == message.width * message.height * 3

"""Framing and message decoding of the guest protocol (pure, no agent)."""

from __future__ import annotations

import struct

import pytest

from shells.guest.protocol import (
    HEADER_SIZE,
    MAX_CHANNEL,
    MAX_PAYLOAD,
    RESYNC_MARK,
    BadMessage,
    Frame,
    FrameDecoder,
    FrameKind,
    ProtocolError,
    decode_control,
    decode_header,
    encode_control,
    encode_frame,
    get_bool,
    get_float,
    get_int,
    get_optional_int,
    get_str,
    get_str_list,
    get_str_map,
    new_channel_id,
)


def header(length: int, channel: int, kind: int) -> bytes:
    return struct.pack(">IQB", length, channel, kind)


def test_frame_layout_is_pinned() -> None:
    frame = encode_frame(0x0102030405060708, FrameKind.STDOUT, b"hi")
    assert frame == b"\x00\x00\x00\x0b" + b"\x01\x02\x03\x04\x05\x06\x07\x08" + b"\x02" + b"hi"
    assert HEADER_SIZE == 13
    assert [kind.value for kind in FrameKind] == [1, 2, 3, 4, 5, 6]


def test_roundtrip_empty_and_maximal_payloads() -> None:
    big = bytes(range(256)) * (MAX_PAYLOAD // 256)
    data = encode_frame(0, FrameKind.EOF) + encode_frame(MAX_CHANNEL, FrameKind.DATA, big)
    assert FrameDecoder().feed(data) == [
        Frame(0, FrameKind.EOF, b""),
        Frame(MAX_CHANNEL, FrameKind.DATA, big),
    ]


def test_decoder_reassembles_frames_split_at_every_byte() -> None:
    frames = [
        Frame(1, FrameKind.STDIN, b"abc"),
        Frame(2, FrameKind.EOF, b""),
        Frame(3, FrameKind.DATA, b"x" * 300),
    ]
    data = b"".join(encode_frame(*frame) for frame in frames)
    for split in range(len(data) + 1):
        decoder = FrameDecoder()
        assert decoder.feed(data[:split]) + decoder.feed(data[split:]) == frames
    decoder = FrameDecoder()
    assert [got for byte in data for got in decoder.feed(bytes([byte]))] == frames


def test_oversized_length_is_rejected_as_soon_as_the_header_arrives() -> None:
    oversized = header(MAX_PAYLOAD + 10, 1, FrameKind.DATA)  # length counts channel + kind + payload
    decoder = FrameDecoder()
    assert decoder.feed(oversized[:12]) == []
    with pytest.raises(ProtocolError, match="exceeds"):
        decoder.feed(oversized[12:])
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_header(header(2**32 - 1, 1, FrameKind.DATA))
    assert decode_header(header(MAX_PAYLOAD + 9, 1, FrameKind.DATA)) == (MAX_PAYLOAD, 1, FrameKind.DATA)


@pytest.mark.parametrize("length", [0, 1, 8])
def test_length_shorter_than_the_header_is_rejected(length: int) -> None:
    with pytest.raises(ProtocolError, match="shorter"):
        FrameDecoder().feed(header(length, 1, FrameKind.CONTROL))


@pytest.mark.parametrize("kind", [0, 7, 255])
def test_unknown_kind_is_rejected(kind: int) -> None:
    with pytest.raises(ProtocolError, match="kind"):
        FrameDecoder().feed(header(9, 1, kind))


def test_channel_ids_are_random_63_bit_numbers() -> None:
    ids = {new_channel_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(0 < i < 2**63 for i in ids)
    assert max(ids) > 2**60  # not small, not sequential


def test_a_hunting_decoder_skips_to_the_resync_mark_after_a_framing_fault() -> None:
    resync = encode_control(5, {"op": "resync", "token": "t"})
    in_step = FrameDecoder(hunt_resync=True)
    before = encode_frame(9, FrameKind.STDIN, b"abc")
    assert in_step.feed(before + RESYNC_MARK + resync) == [
        Frame(9, FrameKind.STDIN, b"abc"),
        Frame(5, FrameKind.CONTROL, resync[HEADER_SIZE:]),
    ]
    assert not in_step.hunting
    # A decoder out of step (waiting for a bogus payload) is filled by zeros, faults on them, then hunts.
    lost = FrameDecoder(hunt_resync=True)
    assert lost.feed(header(MAX_PAYLOAD // 2, 77, FrameKind.DATA) + b"partial") == []
    filler = bytes(MAX_PAYLOAD + HEADER_SIZE)
    got = [f for i in range(0, len(filler), 4096) for f in lost.feed(filler[i : i + 4096])]
    assert got[:1] == [Frame(77, FrameKind.DATA, (b"partial" + filler)[: MAX_PAYLOAD // 2 - 9])]
    assert lost.hunting
    assert lost.feed(RESYNC_MARK[:7]) + lost.feed(RESYNC_MARK[7:] + resync) == [
        Frame(5, FrameKind.CONTROL, resync[HEADER_SIZE:])
    ]
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(RESYNC_MARK)


def test_encoder_refuses_what_the_decoder_would_reject() -> None:
    with pytest.raises(ValueError, match="MAX_PAYLOAD"):
        encode_frame(1, FrameKind.DATA, b"x" * (MAX_PAYLOAD + 1))
    with pytest.raises(ValueError, match="channel"):
        encode_frame(MAX_CHANNEL + 1, FrameKind.DATA)
    with pytest.raises(ValueError, match="channel"):
        encode_frame(-1, FrameKind.DATA)


def test_control_roundtrip() -> None:
    message = {"op": "exec", "argv": ["echo", "é"], "env": {"A": "b"}, "stdin": False}
    (frame,) = FrameDecoder().feed(encode_control(7, message))
    assert frame.channel == 7
    assert frame.kind is FrameKind.CONTROL
    assert decode_control(frame.payload) == message


def test_encode_control_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        encode_control(1, {"op": "x", "value": float("nan")})


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff{}", "not valid JSON"),
        (b"[1]", "object"),
        (b'"op"', "object"),
        (b"{}", "'op' is required"),
        (b'{"op": 1}', "'op' must be a string"),
        (b'{"op": "a", "op": "b"}', "duplicate"),
        (b'{"op": "x", "v": NaN}', "NaN"),
        (b'{"op": "x", "v": -Infinity}', "Infinity"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_decode_control_is_strict(payload: bytes, reason: str) -> None:
    with pytest.raises(BadMessage, match=reason):
        decode_control(payload)


def test_accessors_check_types_and_defaults() -> None:
    message: dict[str, object] = {
        "s": "x",
        "b": True,
        "i": 3,
        "f": 1.5,
        "l": ["a"],
        "m": {"k": "v"},
        "n": None,
    }
    assert get_str(message, "s") == "x"
    assert get_bool(message, "b") is True
    assert get_int(message, "i") == 3
    assert get_float(message, "f") == 1.5
    assert get_float(message, "i") == 3.0
    assert get_str_list(message, "l") == ["a"]
    assert get_str_map(message, "m") == {"k": "v"}
    assert get_optional_int(message, "n") is None
    assert get_optional_int(message, "missing") is None
    assert get_optional_int(message, "i") == 3
    assert get_int(message, "missing", 9) == 9
    assert get_str_map(message, "missing", {}) == {}


@pytest.mark.parametrize(
    ("getter", "value"),
    [
        (get_int, True),  # a JSON boolean is not a number
        (get_int, 1.0),
        (get_int, "1"),
        (get_float, False),
        (get_float, "1.5"),
        (get_bool, 1),
        (get_str, 1),
        (get_str_list, "abc"),
        (get_str_list, ["a", 1]),
        (get_str_map, {"a": 1}),
        (get_str_map, ["a"]),
        (get_optional_int, "1"),
    ],
)
def test_accessors_reject_wrong_types(getter: object, value: object) -> None:
    assert callable(getter)
    with pytest.raises(BadMessage, match="'v' must be"):
        getter({"v": value}, "v")


def test_missing_required_field() -> None:
    with pytest.raises(BadMessage, match="'argv' is required"):
        get_str_list({}, "argv")

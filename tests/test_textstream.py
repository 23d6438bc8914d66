"""Stop strings and split UTF-8 characters in streamed text."""

from __future__ import annotations

from desktop.engine.textstream import TextStream


def run(pieces: list[bytes], stops: list[str] | None = None) -> tuple[list[str], bool]:
    stream = TextStream(stops)
    out = [stream.feed(piece) for piece in pieces]
    out.append(stream.flush())
    return [text for text in out if text], stream.stopped


def test_plain_text_passes_through_piece_by_piece() -> None:
    assert run([b"Hello", b" world"]) == (["Hello", " world"], False)


def test_a_character_split_across_tokens_is_held_until_complete() -> None:
    euro = "€".encode()
    out, _ = run([b"5 ", euro[:1], euro[1:], b"!"])
    assert "".join(out) == "5 €!"
    assert all("\ufffd" not in piece for piece in out)


def test_a_stop_string_spanning_tokens_cuts_the_text() -> None:
    out, stopped = run([b"one two ", b"ST", b"OP three"], ["STOP"])
    assert "".join(out) == "one two "
    assert stopped


def test_a_partial_stop_is_released_when_it_does_not_complete() -> None:
    out, stopped = run([b"the ST", b"ATION"], ["STOP"])
    assert "".join(out) == "the STATION"
    assert not stopped


def test_earliest_of_several_stops_wins() -> None:
    out, _ = run([b"a, b; c. d"], [".", ";"])
    assert "".join(out) == "a, b"

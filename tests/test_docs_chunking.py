"""Cutting documents into chunks: sized, in order, within one page and heading, overlapping."""

from __future__ import annotations

import re

import pytest

from desktop.core.docs.chunking import Chunk, chunk_document, split_text
from desktop.core.docs.document import Document, Section


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def _past_overlap(before: list[str], words: list[str]) -> list[str]:
    for length in range(min(len(before), len(words)), 0, -1):
        if before[-length:] == words[:length]:
            return words[length:]
    return words


def test_paragraphs_are_packed_up_to_the_size_and_every_word_is_kept() -> None:
    paragraphs = [f"Paragraph {n} says " + " ".join(f"w{n}x{i}" for i in range(30)) + "."
                  for n in range(40)]
    text = "\n\n".join(paragraphs)
    passages = split_text(text, size=1000, overlap=150)
    assert all(len(p) <= 1000 + 150 + 1 for p in passages)
    assert len(passages) > 5
    # No word lost, in order: each passage, past the overlap it repeats, goes on where the
    # previous one ended.
    seen = _words(passages[0])
    for before, passage in zip(passages, passages[1:]):
        seen.extend(_past_overlap(_words(before), _words(passage)))
    assert seen == _words(text)


def test_cuts_fall_between_paragraphs_when_they_can() -> None:
    first = "Alpha " * 100  # 600 characters
    second = "Beta " * 100
    passages = split_text(first.strip() + "\n\n" + second.strip(), size=800, overlap=0)
    assert passages == [first.strip(), second.strip()]


def test_a_long_paragraph_is_cut_at_sentences_then_words_then_anywhere() -> None:
    sentences = " ".join(f"Sentence {i} ends here." for i in range(200))
    for passage in split_text(sentences, size=300, overlap=0):
        assert passage.endswith(".") and passage.startswith("Sentence")
    words = " ".join(["word"] * 500)
    assert all(p.split(" ") == ["word"] * len(p.split(" ")) for p in split_text(words, 100, 0))
    unbroken = "x" * 2500
    assert [len(p) for p in split_text(unbroken, 1000, 150)] == [1000, 1000, 500]


def test_overlap_repeats_the_end_of_the_previous_chunk_from_a_sentence_start() -> None:
    sentences = " ".join(f"Fact number {i} is true." for i in range(100))
    passages = split_text(sentences, size=400, overlap=120)
    for before, after in zip(passages, passages[1:]):
        head = after.split(".")[0] + "."
        assert head in before
        assert head.startswith("Fact number")


def test_chunks_keep_page_and_heading_and_never_cross_sections() -> None:
    document = Document("a.pdf", "pdf", (
        Section("Page one text. " * 100, 1, "Intro"),
        Section("Page two text.", 2, "Intro"),
        Section("Methods text.", 2, "Methods"),
    ))
    chunks = chunk_document(document, size=500, overlap=50)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert {(c.page, c.heading) for c in chunks if "one" in c.text} == {(1, "Intro")}
    assert chunks[-2].text == "Page two text." and chunks[-2].page == 2
    assert chunks[-1].text == "Methods text." and chunks[-1].heading == "Methods"
    assert chunks[-1].embedding_text == "Methods\n\nMethods text."


def test_text_without_spaces_cjk_and_blank_sections() -> None:
    cjk = "これは日本語の文です。" * 200
    passages = split_text(cjk, size=300, overlap=30)
    assert all(len(p) <= 331 for p in passages)
    assert "".join(p for p in passages).count("。") >= 200
    assert split_text("   \n\n  ", 100, 10) == []
    with pytest.raises(ValueError):
        split_text("x", 0, 0)


def test_what_is_embedded_leaves_out_long_unbroken_runs_but_not_cjk() -> None:
    blob = "QUJD" * 200
    chunk = Chunk(0, f"Key: {blob} end", None, "Setup")
    assert chunk.embedding_text == f"Setup\n\nKey: {blob[:64]} end"
    cjk = "これは日本語の文です" * 20
    assert Chunk(0, cjk).embedding_text == cjk

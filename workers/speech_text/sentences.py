"""Split a long text into sentences for synthesis, one clip per sentence.

Pure Python (no Django, no engine): the service calls it before it queues anything, so every
sentence can be its own cache entry (a sentence repeated across requests is a cache hit) and the
first sentence can be spoken while the others are still being made.

A sentence ends at `.`, `?`, `!`, `…`, `。`, `？`, `！` (and runs of them, "?!", "...") followed by
whitespace, closing quotes or brackets and then whitespace, or the end of the text; at every
line break; and after a Korean final ending written without a space ("먹었다.그리고"). It does not
end inside a number ("3.5", "8.30"), after a common English abbreviation ("Dr.", "e.g.", "a.m."
before a lower-case word), or after a list number at the start of a line ("1. Take ...").

No sentence is longer than `max_chars`: a longer one is cut at its last comma (or `;`, `:`, `、`)
before the limit, else at its last space, else hard at the limit.
"""

from __future__ import annotations

import re

_TERMINATORS = ".?!…。？！"
_CLOSERS = "\"'”’)]}」』》〉"
# Words that end in a period without ending the sentence (compared lower-case, dots kept).
_ABBREVIATIONS = frozenset({
    "dr.", "mr.", "mrs.", "ms.", "prof.", "sr.", "jr.", "st.", "mt.", "vs.", "no.", "nos.", "fig.", "approx.",
    "dept.", "e.g.", "i.e.", "cf.", "ca.", "inc.", "ltd.", "co.", "jan.", "feb.", "mar.", "apr.", "jun.",
    "jul.", "aug.", "sep.", "sept.", "oct.", "nov.", "dec.", "tab.", "tabs.", "caps.", "min.", "max.",
})
# Ends a sentence only when the next word starts with a capital ("at 8 a.m. Take ...").
_AMBIGUOUS = frozenset({"a.m.", "p.m.", "etc."})
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x85]+")
_SPACES = re.compile(r"\s+")
_CUT_MARKS = ",;:、，；："


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3" or "\u3130" <= ch <= "\u318f"


def _word_before(text: str, end: int) -> str:
    """The word ending at `end` (exclusive), with its dots: "e.g." for "... e.g."."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end].lower().lstrip(_CLOSERS + "(")


def _boundary(line: str, start: int, end: int) -> bool:
    """Does the run of terminators line[start:end] (closers included) end a sentence?"""
    after = end
    if after < len(line) and not line[after].isspace():
        # No space after: only a Korean ending glued to the next Korean word ("다.그리고").
        return line[end - 1] == "." and start > 0 and _is_hangul(line[start - 1]) and _is_hangul(line[after])
    run = line[start:end].rstrip(_CLOSERS)
    if run != ".":
        return True  # "?", "!", "...", "…", "?!": always an end
    word = _word_before(line, start + 1)
    if word in _ABBREVIATIONS:
        return False
    if word in _AMBIGUOUS:
        following = line[after:].lstrip()
        return not following or following[0].isupper() or not following[0].isascii()
    if word[:-1].isdigit() and not line[: start - len(word) + 1].strip():
        return False  # "1. Take ..." at the start of a line: a list number
    return True


def _split_line(line: str) -> list[str]:
    pieces: list[str] = []
    begin = 0
    i = 0
    while i < len(line):
        if line[i] not in _TERMINATORS:
            i += 1
            continue
        start = i
        while i < len(line) and line[i] in _TERMINATORS:
            i += 1
        # A period inside a number ("3.5", "8.30") has a digit on both sides.
        if line[start:i] == "." and 0 < start and i < len(line) and line[start - 1].isdigit() and line[i].isdigit():
            continue
        while i < len(line) and line[i] in _CLOSERS:
            i += 1
        if _boundary(line, start, i):
            pieces.append(line[begin:i])
            begin = i
    pieces.append(line[begin:])
    return pieces


def _cap(sentence: str, max_chars: int) -> list[str]:
    """`sentence` in pieces of at most `max_chars`, cut at a comma, else a space, else anywhere."""
    out: list[str] = []
    while len(sentence) > max_chars:
        window = sentence[: max_chars + 1]
        cut = max(window.rfind(mark, 0, max_chars) for mark in _CUT_MARKS)
        if cut > 0:
            cut += 1  # the comma stays with the first piece
        else:
            cut = window.rfind(" ", 0, max_chars + 1)
            if cut <= 0:
                cut = max_chars
        head, sentence = sentence[:cut].strip(), sentence[cut:].strip()
        if head:
            out.append(head)
    if sentence:
        out.append(sentence)
    return out


def sentences_split(text: str, *, max_chars: int) -> list[str]:
    """The sentences of `text`, in order, whitespace collapsed, each 1..`max_chars` characters.

    A piece with no letter or digit (a stray "…" or "!!") is joined to the sentence before it
    (or after it, at the start), so that every sentence has something to say; a text with
    nothing to say at all gives [].
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    raw: list[str] = []
    for line in _LINE_BREAKS.split(text):
        for piece in _split_line(line):
            piece = _SPACES.sub(" ", piece).strip()
            if piece:
                raw.append(piece)
    merged: list[str] = []
    pending = ""  # punctuation-only pieces before the first real sentence
    for piece in raw:
        if any(ch.isalnum() for ch in piece):
            merged.append(f"{pending} {piece}".strip() if pending else piece)
            pending = ""
        elif merged:
            merged[-1] = merged[-1] + piece if piece[0] in _TERMINATORS else f"{merged[-1]} {piece}"
        else:
            pending = f"{pending} {piece}".strip()
    return [capped for sentence in merged for capped in _cap(sentence, max_chars)]


def sentence_language(sentence: str) -> str:
    """"ko" when the sentence has any Hangul, else "en" (the two languages the engines speak)."""
    return "ko" if any(_is_hangul(ch) for ch in sentence) else "en"

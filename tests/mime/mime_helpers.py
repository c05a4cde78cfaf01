"""Helpers for the MIME tests: the corpus in wire form."""

from __future__ import annotations

from pathlib import Path

from imapd.mime import Part

CORPUS = Path(__file__).parent / "corpus"


def wire(data: bytes) -> bytes:
    """LF to CRLF, as the store does before imapd.mime sees a message."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def load(name: str, crlf: bool = True) -> bytes:
    """A corpus message; in wire form unless *crlf* is False."""
    raw = (CORPUS / f"{name}.eml").read_bytes()
    return wire(raw) if crlf else raw


def corpus_names() -> list[str]:
    return sorted(p.stem for p in CORPUS.glob("*.eml"))


def kids(p: Part | None) -> list[Part]:
    """The parts of a multipart, asserting it is one."""
    assert p is not None and p.children is not None
    return p.children


def msg(p: Part | None) -> Part:
    """The encapsulated message of a message/rfc822 part, asserting there is one."""
    assert p is not None and p.message is not None
    return p.message

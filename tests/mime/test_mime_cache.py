"""Part.to_cache / Part.from_cache: the store keeps structures, not messages."""

from __future__ import annotations

import marshal

import pytest
from mime_helpers import corpus_names, load

from imapd.mime import Part, body_structure, envelope, parse_message, section_bytes


def _sections(root: Part) -> list[tuple[int, ...]]:
    """Every part path of the tree, as section numbers."""
    out: list[tuple[int, ...]] = []

    def walk(p: Part, path: tuple[int, ...]) -> None:
        target = p.message if p.message is not None else p
        kids = target.children
        if kids:
            for i, c in enumerate(kids, 1):
                out.append(path + (i,))
                walk(c, path + (i,))
        elif p.message is not None:
            out.append(path + (1,))

    walk(root, ())
    return out or [(1,)]


@pytest.mark.parametrize("name", corpus_names())
def test_round_trip(name: str) -> None:
    d = load(name)
    root = parse_message(d)
    value = root.to_cache()
    blob = marshal.dumps(value)  # must be marshal-able: the store's on-disk cache
    back = Part.from_cache(marshal.loads(blob))
    assert back.to_cache() == value
    assert body_structure(d, back, True) == body_structure(d, root, True)
    assert body_structure(d, back, False, imap4rev2=True) == body_structure(
        d, root, False, imap4rev2=True)
    assert envelope(d, back) == envelope(d, root)
    for path in _sections(root):
        for spec in (None, "MIME", "HEADER", "TEXT"):
            assert section_bytes(d, back, path, spec) == section_bytes(d, root, path, spec)
        assert section_bytes(d, back, path, "HEADER.FIELDS", ["subject", "content-type"]) == (
            section_bytes(d, root, path, "HEADER.FIELDS", ["subject", "content-type"]))
    for a, b in zip(root.walk(), back.walk(), strict=True):
        assert (a.maintype, a.subtype, a.params, a.lines) == (b.maintype, b.subtype, b.params, b.lines)
        assert a.get_fields(d) == b.get_fields(d)


def test_outputs_are_marshal_able() -> None:
    for name in corpus_names():
        d = load(name)
        root = parse_message(d)
        marshal.dumps(envelope(d, root))
        marshal.dumps(body_structure(d, root, True))


def test_cache_is_compact() -> None:
    d = load("nested-rfc822")
    assert len(marshal.dumps(parse_message(d).to_cache())) < 450
    assert len(marshal.dumps(parse_message(load("simple")).to_cache())) < 100

"""Nothing raises, whatever the bytes: random input and mutated corpus mail."""

from __future__ import annotations

import marshal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mime_helpers import corpus_names, kids, load

from imapd.mime import (
    Part,
    UnknownCTE,
    all_headers_text,
    binary_section,
    body_structure,
    body_text,
    envelope,
    header_text,
    parse_message,
    section_bytes,
)

CORPUS = [load(n) for n in corpus_names()]
SPECS = (None, "MIME", "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT")


def _paths(root: Part) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [(), (1,), (2,), (1, 1), (2, 1), (3, 2, 1)]

    def walk(p: Part, path: tuple[int, ...]) -> None:
        if len(out) > 60:
            return
        kids = (p.message or p).children
        for i, c in enumerate(kids or (), 1):
            out.append(path + (i,))
            walk(c, path + (i,))

    walk(root, ())
    return out


def check_everything(d: bytes) -> None:
    root = parse_message(d)
    assert 0 <= root.start <= root.body_start <= root.end == len(d)
    env = envelope(d, root)
    assert len(env) == 10
    b1 = body_structure(d, root, False)
    b2 = body_structure(d, root, True)
    body_structure(d, root, True, imap4rev2=True)
    marshal.dumps((env, b1, b2))
    back = Part.from_cache(marshal.loads(marshal.dumps(root.to_cache())))
    assert body_structure(d, back, True) == b2
    for path in _paths(root):
        for spec in SPECS:
            got = section_bytes(d, root, path, spec, ["subject", "content-type"])
            assert got is None or isinstance(got, bytes)
        try:
            binary_section(d, root, path)
        except UnknownCTE:
            pass
    header_text(d, root, "subject")
    all_headers_text(d, root)
    body_text(d, root)


_pieces = st.sampled_from([
    b"\r\n", b"\n", b"\r", b"--", b"--b", b"--b--", b"--b\r\n", b"\r\n\r\n", b":", b" ", b"\t",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: multipart/digest; boundary=\"b\"\r\n",
    b"Content-Type: message/rfc822\r\n", b"Content-Type: message/global\r\n",
    b"Content-Type: text/plain; charset=utf-8\r\n",
    b"Content-Type: multipart/alternative; boundary=bb\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: attachment; filename*0*=utf-8''%E2; filename*1=x\r\n",
    b"MIME-Version: 1.0\r\n", b"From: \"a\" <b@c>, (x) d, g: e@f;\r\n", b"Subject: =?utf-8?q?=C3?=\r\n",
    b"To: <@a:b@c\r\n", b"\x00", b"\xff\xfe", b"=?", b"?=", b"\"", b"(", b")", b"<", b">",
    b"aGVsbG8=", b"=3D", b"x" * 100,
])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_pieces, max_size=40).map(b"".join))
def test_structured_random_input(d: bytes) -> None:
    check_everything(d)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes(d: bytes) -> None:
    check_everything(d)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(CORPUS),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 40), st.binary(max_size=12)),
             max_size=6),
)
def test_mutated_corpus(base: bytes, edits: list[tuple[int, int, bytes]]) -> None:
    d = base
    for pos, cut, ins in edits:
        pos %= len(d) + 1
        d = d[:pos] + ins + d[pos + cut:]
    check_everything(d)


def test_corpus_itself() -> None:
    for d in CORPUS:
        check_everything(d)


def test_deep_nesting_does_not_recurse_forever() -> None:
    depth = 3000
    d = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth)
    ) + b"\r\nleaf\r\n"
    check_everything(d)
    m = b"Content-Type: message/rfc822\r\n\r\n" * depth + b"Subject: deep\r\n\r\nbody"
    check_everything(m)


def test_huge_lines_and_many_parts() -> None:
    check_everything(b"Subject: " + b"x" * 300_000 + b"\r\n\r\n" + b"y" * 300_000)
    many = b"Content-Type: multipart/mixed; boundary=z\r\n\r\n" + b"--z\r\n\r\npart\r\n" * 5000
    d = many + b"--z--\r\n"
    root = parse_message(d)
    assert len(kids(root)) == 5000
    check_everything(d)

"""`imapd.mime.wire`: ENVELOPE and BODYSTRUCTURE built straight as wire bytes
must be exactly what encoding the value lists gives, for every message of
the hand-written corpus and for the odd cases it may not cover."""

from __future__ import annotations

import pytest
from mime_helpers import corpus_names, load, wire

from imapd.mime import body_structure, envelope, parse_message
from imapd.mime.wire import body_structure_wire, envelope_wire
from imapd.protocol.responses import encode


def _check(data: bytes) -> None:
    root = parse_message(data)
    for _ in range(2):  # the second time from the module's caches
        assert envelope_wire(data, root) == encode(envelope(data, root))
        for ext in (False, True):
            for rev2 in (False, True):
                assert body_structure_wire(data, root, ext, imap4rev2=rev2) == encode(
                    body_structure(data, root, ext, imap4rev2=rev2))


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_message(name: str) -> None:
    _check(load(name))


ODD = [
    # no header at all, empty body
    b"",
    b"\r\n",
    # 8-bit, quotes, backslashes, NUL and a long value: literals and escapes
    b'Subject: caf\xc3\xa9 "quoted" back\\slash\r\nFrom: "A \\"B\\"" <a@b>\r\n'
    b"To: x\x00y@z\r\nMessage-ID: <" + b"m" * 1100 + b">\r\n\r\nbody\r\n",
    # groups, empty address fields (Sender/Reply-To then default to From), routes
    b"From: Team: a@b, c@d;\r\nSender:\r\nReply-To:  \r\nTo: undisclosed-recipients:;\r\n"
    b"Cc: <@route:x@y>, root\r\nBcc: , ,\r\n\r\n",
    # multipart without parts, text part without charset but other params,
    # disposition with and without params, language, location, md5, id
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nno parts here\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n"
    b"Content-Disposition: inline\r\nContent-Language: en, de\r\nContent-Location: http://x/\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; format=flowed\r\nContent-ID: <i@d>\r\n"
    b"Content-Description: desc\r\nContent-MD5: Q2hlY2s=\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''%C3%A9.txt\r\n\r\nhello\r\n"
    b"--b\r\nContent-Type: TEXT/HTML; CHARSET=utf-8\r\nContent-Language: fr\r\n\r\n<p>x</p>\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: i@j\r\n\r\ninner body\r\n"
    b"--b\r\nContent-Type: message/global\r\n\r\nSubject: g\r\n\r\nglobal\r\n"
    b"--b--\r\n",
    # a digest: parts default to message/rfc822
    b"MIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n"
    b"--d\r\n\r\nSubject: one\r\n\r\n1\r\n--d\r\n\r\nSubject: two\r\n\r\n2\r\n--d--\r\n",
]


@pytest.mark.parametrize("data", ODD, ids=range(len(ODD)))
def test_odd_message(data: bytes) -> None:
    _check(wire(data) if b"\x00" not in data else data)

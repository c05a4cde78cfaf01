"""Micro-benchmark: parse + ENVELOPE + BODYSTRUCTURE of typical ~25 KB messages.

Run: ``python tests/mime/bench_mime.py [rounds]``.  Not collected by pytest.  Times are
CPU time (process_time), the minimum over many short runs, so a busy machine
distorts them less.
"""

from __future__ import annotations

import base64
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from imapd.mime import body_structure, envelope, parse_message  # noqa: E402

HEADER = (
    "Return-Path: <alice@example.org>\r\n"
    "Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n"
    "\tby mail.example.com (Postfix) with ESMTPS id 4F1C2A0B3D\r\n"
    "\tfor <bob@example.com>; Tue, 14 Nov 2023 10:12:13 +0100 (CET)\r\n"
    "Received: from [10.0.0.5] (unknown [198.51.100.7])\r\n"
    "\tby mx.example.org (Postfix) with ESMTPSA id 1A2B3C4D5E\r\n"
    "\tfor <bob@example.com>; Tue, 14 Nov 2023 10:12:12 +0100 (CET)\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=mail;\r\n"
    "\tt=1699953133; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
    "\th=Date:From:To:Subject:From;\r\n"
    "\tb=Qp2GZpVcmS7u3bm8Xk1ZVf0x7oU1yqz4bT1v2w3x4y5z6A7B8C9D0E1F2G3H4I5J6K7L8M9N0\r\n"
    "Message-ID: <{n}.1699953133@example.org>\r\n"
    "Date: Tue, 14 Nov 2023 10:12:11 +0100\r\n"
    "MIME-Version: 1.0\r\n"
    "User-Agent: Mozilla/5.0 Thunderbird/115.4.1\r\n"
    "Content-Language: en-US\r\n"
    "To: Bob Example <bob@example.com>, carol@example.net\r\n"
    "Cc: \"Dave, the Boss\" <dave@example.com>\r\n"
    "From: Alice Example <alice@example.org>\r\n"
    "Subject: Re: quarterly numbers {n}\r\n"
    "In-Reply-To: <prev.{n}@example.com>\r\n"
    "References: <first.{n}@example.com> <prev.{n}@example.com>\r\n"
)


def _text(rng: random.Random, size: int) -> str:
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
             "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore"]
    out, line, total = [], [], 0
    while total < size:
        w = rng.choice(words)
        line.append(w)
        total += len(w) + 1
        if len(" ".join(line)) > 70:
            out.append(" ".join(line))
            line = []
    out.append(" ".join(line))
    return "\r\n".join(out) + "\r\n"


def make(kind: str, n: int, rng: random.Random) -> bytes:
    h = HEADER.format(n=n)
    if kind == "plain":
        return (h + "Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
                "Content-Transfer-Encoding: 7bit\r\n\r\n" + _text(rng, 24000)).encode()
    if kind == "alternative":
        t = _text(rng, 9000)
        return (h + 'Content-Type: multipart/alternative;\r\n boundary="------------alt0123456789"\r\n\r\n'
                "This is a multi-part message in MIME format.\r\n"
                "--------------alt0123456789\r\nContent-Type: text/plain; charset=UTF-8; format=flowed\r\n"
                "Content-Transfer-Encoding: 7bit\r\n\r\n" + t +
                "\r\n--------------alt0123456789\r\nContent-Type: text/html; charset=UTF-8\r\n"
                "Content-Transfer-Encoding: 7bit\r\n\r\n<html><body><p>" + t.replace("\r\n", "<br>\r\n") +
                "</p></body></html>\r\n\r\n--------------alt0123456789--\r\n").encode()
    if kind == "attachment":
        blob = base64.encodebytes(rng.randbytes(15000)).decode().replace("\n", "\r\n")
        return (h + 'Content-Type: multipart/mixed;\r\n boundary="------------mix0123456789"\r\n\r\n'
                "This is a multi-part message in MIME format.\r\n"
                "--------------mix0123456789\r\nContent-Type: multipart/alternative;\r\n"
                ' boundary="------------alt0123456789"\r\n\r\n'
                "--------------alt0123456789\r\nContent-Type: text/plain; charset=UTF-8; format=flowed\r\n"
                "Content-Transfer-Encoding: 7bit\r\n\r\n" + _text(rng, 2000) +
                "\r\n--------------alt0123456789\r\nContent-Type: text/html; charset=UTF-8\r\n"
                "Content-Transfer-Encoding: 7bit\r\n\r\n<html>" + _text(rng, 3000) + "</html>\r\n"
                "\r\n--------------alt0123456789--\r\n"
                "\r\n--------------mix0123456789\r\n"
                "Content-Type: application/pdf;\r\n name=\"report.pdf\"\r\n"
                "Content-Disposition: attachment;\r\n filename=\"report.pdf\"\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n" + blob +
                "\r\n--------------mix0123456789--\r\n").encode()
    # nested message/rfc822 with its own multipart; "short" uses a 7-byte
    # boundary, which CPython's substring search skips through more slowly
    b = "outer-b" if kind == "short" else f"=_outer_{rng.getrandbits(128):032x}"
    inner = make("alternative", n + 1, rng).decode()
    return (h + f'Content-Type: multipart/mixed; boundary="{b}"\r\n\r\n'
            f"--{b}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + _text(rng, 3000) +
            f"\r\n--{b}\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment;"
            ' filename="fwd.eml"\r\n\r\n' + inner + f"\r\n--{b}--\r\n").encode()


def main() -> None:
    rng = random.Random(1)
    kinds = ["plain", "alternative", "attachment", "nested", "short"]
    msgs = {k: [make(k, i, rng) for i in range(50)] for k in kinds}
    means: list[float] = []
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    for k in kinds:
        ms = msgs[k]
        best = float("inf")
        for _ in range(rounds):  # min of many short runs: robust on a busy machine
            t0 = time.process_time()
            for d in ms:
                r = parse_message(d)
                envelope(d, r)
                body_structure(d, r, True)
            best = min(best, (time.process_time() - t0) / len(ms))
        means.append(best)
        print(f"{k:12s} {len(ms[0]):6d} bytes  {best * 1e6:6.1f} us/msg")
    print(f"mean of the first four {sum(means[:4]) / 4 * 1e6:6.1f} us/msg")


if __name__ == "__main__":
    main()

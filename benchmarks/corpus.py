"""A deterministic, realistic Maildir corpus for the benchmark.

Every message is a pure function of (seed, index): `make_message(plan, i)`
builds it from its own `random.Random`, so a corpus can be written by several
processes at once and is the same byte for byte on every machine.  A shared
`Plan` (made once from the seed) holds what many messages reuse: people,
domains, paragraphs of text, and the time span.

The mix imitates a long-lived personal INBOX: plain text mail (US-ASCII or
UTF-8, 7bit, quoted-printable or base64), multipart/alternative (text + HTML),
multipart/mixed with base64 attachments, and forwards carrying a nested
message/rfc822.  Headers have Received chains, DKIM signatures, encoded words
(RFC 2047 B and Q, UTF-8 and ISO-8859-1), folded lines, threads with
In-Reply-To/References.  Dates run forward over ten years; each file's mtime is
its delivery time (the INTERNALDATE Maildir servers report), and file names are
Dovecot-style `<time>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<vsize>:2,<flags>`.

Two markers make the SEARCH scenarios checkable: a sender named `RARE_SENDER`
writes about 1% of the mail, and `RARE_WORD` appears in the text of about 1%
of the bodies (sometimes inside base64 or a nested message, where a server must
decode to find it).  The manifest records how many messages carry each.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from html import escape
from multiprocessing import get_context
from pathlib import Path
from quopri import encodestring as _qp_encode

FORMAT_VERSION = 3
HOST = "mx.bench.example"
START = datetime(2015, 1, 1, tzinfo=UTC)
END = datetime(2025, 6, 1, tzinfo=UTC)


def _words(text: str) -> list[str]:
    return text.split()


OWNER_NAME = "Robin Fairweather"
OWNER_ADDR = "robin@fairweather.example"
RARE_SENDER_FIRST = "Quentin"
RARE_SENDER = "Zabriskie"          # last name of the ~1% sender: SEARCH FROM "Zabriskie"
RARE_WORD = "kumquat"              # in the text of ~1% of bodies: SEARCH BODY "kumquat"
RARE_RATE = 0.01

_WORDS = _words("""
the of and to a in is it you that he was for on are with as I his they be at one have this from
or had by hot but some what there we can out other were all your when up use word how said an
each she which do their time if will way about many then them would write like so these her long
make thing see him two has look more day could go come did my sound no most number who over know
water than call first people may down side been now find any new work part take get place made
live where after back little only round man year came show every good me give our under name
very through just form much great think say help low line before turn cause same mean differ
move right boy old too does tell sentence set three want air well also play small end put home
read hand port large spell add even land here must big high such follow act why ask men change
went light kind off need house picture try us again animal point mother world near build self
earth father head stand own page should country found answer school grow study still learn plant
cover food sun four thought let keep eye never last door between city tree cross since hard
start might story saw far sea draw left late run don't while press close night real life few
stop open seem together next white children begin got walk example ease paper often always music
those both mark book letter until mile river car feet care second group carry took rain eat room
friend began idea fish mountain north once base hear horse cut sure watch color face wood main
enough plain girl usual young ready above ever red list though feel talk bird soon body dog
family direct pose leave song measure state product black short numeral class wind question
happen complete ship area half rock order fire south problem piece told knew pass farm top whole
king size heard best hour better true during hundred am remember step early hold west ground
interest reach fast five sing listen six table travel less morning ten simple several vowel
toward war lay against pattern slow center love person money serve appear road map science rule
govern pull cold notice voice fall power town fine certain fly unit lead cry dark machine note
wait plan figure star box noun field rest correct able pound done beauty drive stood contain
front teach week final gave green oh quick develop sleep warm free minute strong special mind
behind clear tail produce fact street inch lot nothing course stay wheel full force blue object
decide surface deep moon island foot yet busy test record boat common gold possible plane age
dry wonder laugh thousand ago ran check game shape yes miss brought heat snow bed bring sit
perhaps fill east weight language among meeting budget quarterly invoice attached please review
deadline schedule project release server deploy customer contract agenda minutes draft proposal
feedback update report issue ticket patch merge
""")
_WORDS_DE = _words("""
Grüße Straße für über Bücher Größe Mädchen schön Gespräch Fußball Brötchen Übung Käse Äpfel
müssen können möchte Überweisung Rückmeldung Besprechung nächste Woche
""")
_WORDS_FR = _words("""
été déjà très où élève garçon français première réunion prochaine année équipe reçu merci
beaucoup voilà à bientôt mètre château
""")

_FIRST = _words("""
James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard
Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark
Sandra Paul Ashley Steven Emily Andrew Donna Kenneth Michelle Jürgen Zoë François Søren José
Björn Chloé Ana Mei Hiroshi Olga Ingrid Raúl Anaïs Łukasz Dagmar
""")
_LAST = _words("""
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez
Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores
Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Müller Schröder Dubois
Lefèvre Nørgaard García Kowalski Öztürk Ångström Yamada Ivanova Svensson Peña Brontë
""")
_DOMAINS = _words("""
gmail.com yahoo.com outlook.com example.org example.com mail.example.net posteo.de web.de
gmx.net orange.fr free.fr university.edu acme-corp.com initech.com globex.io lists.debian.org
lists.python.org github.com bank.example shop.example travel.example newsletter.example.com
fastmail.fm protonmail.com kernel.org
""")
_LISTS = _words("""
python-dev@lists.python.org debian-devel@lists.debian.org announce@newsletter.example.com
team@acme-corp.com
""")
_SUBJECT_STARTS = ("Meeting notes for", "Invoice", "Quarterly budget", "Your order", "Weekly update:",
                   "Question about", "Reminder:", "Draft of", "Travel plans for", "Lunch on", "Release of",
                   "Photos from", "Feedback on", "Minutes:", "Action required:", "Welcome to")
_SUBJECTS_INTL = ("Grüße aus München", "Überweisung für nächste Woche", "Réunion de l'équipe",
                  "Résumé — première version", "Café à bientôt", "Größe der Bücher",
                  "Prochaine réunion: ordre du jour", "Schöne Feiertage!", "Straßenfest am Samstag",
                  "naïve façade", "Ångström units ∑ ≤ ∞", "日本語のメール", "Привет из Москвы")
_MAILERS = ("Mozilla/5.0 (X11; Linux x86_64; rv:102.0) Gecko/20100101 Thunderbird/102.8.0",
            "Microsoft Outlook 16.0", "Apple Mail (2.3696.120.41.1.1)", "Mutt/2.2.9 (2022-11-12)",
            "Roundcube Webmail/1.6.1", "K-9 Mail for Android")
_ATTACHMENTS = (("application/pdf", "pdf", ("report", "invoice", "contract", "slides", "scan")),
                ("image/jpeg", "jpg", ("IMG_", "photo", "DSC", "screenshot")),
                ("image/png", "png", ("diagram", "chart", "logo")),
                ("application/zip", "zip", ("archive", "logs", "sources")),
                ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx",
                 ("draft", "minutes", "proposal")),
                ("text/calendar", "ics", ("invite",)))
_HTML_HEAD = ("<!DOCTYPE html>\n<html><head>\n<meta http-equiv=\"Content-Type\" content=\"text/html; "
              "charset=utf-8\">\n<style type=\"text/css\">\nbody { font-family: Calibri, Arial, "
              "sans-serif; font-size: 11pt; color: #1f1f1f; }\np.MsoNormal, li.MsoNormal { margin: 0cm; "
              "margin-bottom: .0001pt; }\na:link { color: #0563C1; text-decoration: underline; }\n"
              ".quote { border-left: 2px solid #ccc; padding-left: 8px; color: #555; }\n</style>\n"
              "</head>\n<body lang=\"EN-US\" link=\"#0563C1\" vlink=\"#954F72\">\n<div class=\"WordSection1\">\n")
_HTML_TAIL = "</div>\n</body></html>\n"


@dataclass
class Person:
    name: str
    addr: str


@dataclass
class Plan:
    """What many messages share; made once from the seed."""

    seed: int
    count: int
    people: list[Person] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    intl_paragraphs: list[str] = field(default_factory=list)


def make_plan(seed: int, count: int) -> Plan:
    r = random.Random(f"plan/{seed}")
    plan = Plan(seed, count)
    seen: set[str] = set()
    while len(plan.people) < 1500:
        first, last = r.choice(_FIRST), r.choice(_LAST)
        local = f"{_ascii(first).lower()}.{_ascii(last).lower()}"
        if r.random() < 0.3:
            local = f"{_ascii(first).lower()[0]}{_ascii(last).lower()}{r.randint(1, 99)}"
        addr = f"{local}@{r.choice(_DOMAINS)}"
        if addr not in seen:
            seen.add(addr)
            plan.people.append(Person(f"{first} {last}", addr))
    weights = [1.0 / (k + 1) ** 0.9 for k in range(len(_WORDS))]
    cum = list(_accumulate(weights))
    for _ in range(3000):
        plan.paragraphs.append(_paragraph(r, _WORDS, cum))
    intl = _WORDS_DE + _WORDS_FR + _WORDS[:200]
    icum = list(_accumulate([1.0] * len(intl)))
    for _ in range(300):
        plan.intl_paragraphs.append(_paragraph(r, intl, icum))
    return plan


def _accumulate(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


def _ascii(s: str) -> str:
    table = {"ü": "ue", "ö": "oe", "ä": "ae", "ß": "ss", "é": "e", "è": "e", "ç": "c", "ø": "o",
             "å": "a", "Å": "A", "Ø": "O", "ë": "e", "ï": "i", "ñ": "n", "ó": "o", "á": "a", "ú": "u",
             "Ł": "L", "ł": "l", "Ö": "Oe", "Ü": "Ue", "Ä": "Ae", "ı": "i"}
    return "".join(table.get(c, c) for c in s)


def _paragraph(r: random.Random, words: list[str], cum: list[float]) -> str:
    text = []
    for _ in range(r.randint(2, 7)):
        sentence = r.choices(words, cum_weights=cum, k=r.randint(6, 22))
        if r.random() < 0.3:
            sentence[r.randrange(len(sentence))] += ","
        text.append(sentence[0].capitalize() + " " + " ".join(sentence[1:]) + r.choice(".....?!"))
    return _wrap(" ".join(text))


def _wrap(text: str, width: int = 72) -> str:
    lines, line = [], ""
    for w in text.split(" "):
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return "\n".join(lines)


# ---------------------------------------------------------------- headers

def _encode_word(text: str, r: random.Random) -> str:
    """RFC 2047: UTF-8 B, UTF-8 Q or ISO-8859-1 Q (when it fits), split under 75 chars."""
    if text.isascii():
        return text
    latin1 = all(ord(c) < 256 for c in text)
    mode = r.random()
    if latin1 and mode < 0.25:
        charset, raw = "ISO-8859-1", text.encode("latin-1")
    else:
        charset, raw = "UTF-8", text.encode("utf-8")
    words = []
    if mode < 0.6:
        step = 30
        i = 0
        while i < len(raw):
            j = min(len(raw), i + step)
            while charset == "UTF-8" and j < len(raw) and (raw[j] & 0xC0) == 0x80:
                j -= 1
            chunk = "".join(chr(b) if (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122) else
                            "_" if b == 32 else f"={b:02X}" for b in raw[i:j])
            words.append(f"=?{charset}?Q?{chunk}?=")
            i = j
    else:
        step = 36
        i = 0
        while i < len(raw):
            j = min(len(raw), i + step)
            while charset == "UTF-8" and j < len(raw) and (raw[j] & 0xC0) == 0x80:
                j -= 1
            words.append(f"=?{charset}?B?{base64.b64encode(raw[i:j]).decode()}?=")
            i = j
    return "\n ".join(words)


def _address(p: Person, r: random.Random) -> str:
    if p.name.isascii():
        return f"\"{p.name}\" <{p.addr}>" if r.random() < 0.2 else f"{p.name} <{p.addr}>"
    return f"{_encode_word(p.name, r)} <{p.addr}>"


def _fold(name: str, items: list[str]) -> str:
    line, out = f"{name}: ", []
    for k, item in enumerate(items):
        piece = item + ("," if k < len(items) - 1 else "")
        if len(line) + len(piece) > 76 and line.strip() != f"{name}:":
            out.append(line.rstrip())
            line = " "
        line += piece + " "
    out.append(line.rstrip())
    return "\n".join(out)


def _date(t: datetime, r: random.Random) -> str:
    tz = timezone(timedelta(minutes=r.choice((0, 60, 120, -300, -240, -420, 330, 540, 60, 0, 60))))
    return format_datetime(t.astimezone(tz))


def _msgid(r: random.Random, domain: str) -> str:
    return f"<{r.getrandbits(64):016x}.{r.getrandbits(32):08x}@{domain}>"


def _dkim(r: random.Random, domain: str) -> str:
    sig = base64.b64encode(r.randbytes(256)).decode()
    bh = base64.b64encode(r.randbytes(32)).decode()
    head = (f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain};\n"
            f" s=s{r.randint(2015, 2025)}; t={r.randint(1420070400, 1748736000)};\n"
            f" h=from:to:subject:date:message-id:mime-version:content-type;\n bh={bh};\n b=")
    return head + "\n ".join(sig[k:k + 70] for k in range(0, len(sig), 70))


def _received(r: random.Random, t: datetime, hops: int) -> list[str]:
    out = []
    for h in range(hops):
        ip = f"{r.randint(11, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
        t_hop = t - timedelta(seconds=h * r.randint(1, 40))
        out.append(f"Received: from mail{r.randint(1, 40)}.{r.choice(_DOMAINS)} "
                   f"(mail{r.randint(1, 40)}.relay.example [{ip}])\n"
                   f"\tby {HOST} (Postfix) with ESMTPS id {r.getrandbits(40):010X}\n"
                   f"\tfor <{OWNER_ADDR}>; {_date(t_hop, r)}")
    return out


# ---------------------------------------------------------------- bodies

def _text(plan: Plan, r: random.Random, size: int, rare: bool, intl: bool) -> str:
    parts = [r.choice(("Hi", "Hello", "Dear", "Hey")) + f" {OWNER_NAME.split()[0]},", ""]
    total = 0
    pool = plan.intl_paragraphs if intl else plan.paragraphs
    while total < size:
        p = r.choice(pool) if not intl or r.random() < 0.5 else r.choice(plan.paragraphs)
        parts.append(p)
        parts.append("")
        total += len(p) + 1
    if rare:
        k = r.randrange(2, len(parts))
        parts.insert(k, f"We still have the {RARE_WORD} jam from last summer, by the way.")
    if r.random() < 0.3:
        quoted = r.choice(plan.paragraphs)
        parts.append("On " + r.choice(("Mon", "Tue", "Wed", "Thu", "Fri")) + ", someone wrote:")
        parts.extend("> " + line for line in quoted.split("\n"))
        parts.append("")
    parts += ["Best regards,", r.choice(_FIRST), "", "-- ", "Sent from my desk"]
    return "\n".join(parts) + "\n"


def _html(text: str) -> str:
    paras = text.split("\n\n")
    body = "".join("<p class=\"MsoNormal\">" + escape(p).replace("\n", " ") + "</p>\n" for p in paras)
    return _HTML_HEAD + body + _HTML_TAIL


def _text_part(text: str, r: random.Random, subtype: str = "plain") -> str:
    """A text part with headers, in 7bit, quoted-printable or base64 as real mailers do."""
    raw = text.encode("utf-8")
    if text.isascii() and r.random() < 0.8:
        cte, body = "7bit", text
    elif r.random() < 0.2:
        cte, body = "base64", base64.encodebytes(raw).decode()
    else:
        cte, body = "quoted-printable", _qp_encode(raw).decode()
    charset = "us-ascii" if text.isascii() and cte == "7bit" else "utf-8"
    fmt = "; format=flowed" if subtype == "plain" and r.random() < 0.2 else ""
    return (f"Content-Type: text/{subtype}; charset=\"{charset}\"{fmt}\n"
            f"Content-Transfer-Encoding: {cte}\n\n{body}")


def _boundary(r: random.Random) -> str:
    return f"----=_Part_{r.getrandbits(48):012x}.{r.getrandbits(24)}"


def _multipart(subtype: str, parts: list[str], r: random.Random) -> str:
    b = _boundary(r)
    out = [f"Content-Type: multipart/{subtype};\n boundary=\"{b}\"\n\nThis is a multi-part message in MIME format.\n"]
    for p in parts:
        out.append(f"--{b}\n{p}" if p.endswith("\n") else f"--{b}\n{p}\n")
    out.append(f"--{b}--\n")
    return "\n".join(out)


def _attachment(r: random.Random, size: int) -> str:
    ctype, ext, stems = r.choice(_ATTACHMENTS)
    name = f"{r.choice(stems)}{r.randint(1, 9999)}.{ext}"
    if r.random() < 0.1:
        name = "Überweisung für März.pdf" if ext == "pdf" else f"Größe_{r.randint(1, 99)}.{ext}"
    if name.isascii():
        disp = f"attachment;\n filename=\"{name}\"; size={size}"
        ctparam = f"name=\"{name}\""
    else:
        quoted = "".join(chr(b) if chr(b).isalnum() and b < 128 or chr(b) in "._-" else f"%{b:02X}"
                         for b in name.encode("utf-8"))
        disp = f"attachment;\n filename*=UTF-8''{quoted}"
        ctparam = f"name=\"{_encode_word(name, r)}\""
    data = base64.encodebytes(r.randbytes(size)).decode()
    return (f"Content-Type: {ctype};\n {ctparam}\nContent-Disposition: {disp}\n"
            f"Content-Transfer-Encoding: base64\n\n{data}")


def _lognormal_size(r: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, r.lognormvariate(0.0, sigma) * median)))


@dataclass
class Built:
    data: bytes
    when: float          # delivery time (Unix seconds): the file's mtime
    flags: str
    from_rare: bool
    body_rare: bool


def _body(plan: Plan, r: random.Random, kind: str, rare: bool, depth: int = 0) -> str:
    intl = r.random() < 0.15
    text_size = _lognormal_size(r, 1800, 0.7, 200, 20000)
    if kind == "plain":
        return _text_part(_text(plan, r, text_size, rare, intl), r)
    if kind == "alternative":
        text = _text(plan, r, text_size, rare, intl)
        return _multipart("alternative", [_text_part(text, r), _text_part(_html(text), r, "html")], r)
    if kind == "attachment":
        inner = _body(plan, r, r.choice(("plain", "alternative")), rare, depth + 1)
        atts = [_attachment(r, _lognormal_size(r, 30000, 1.0, 2000, 2_000_000))
                for _ in range(1 if r.random() < 0.8 else r.randint(2, 3))]
        return _multipart("mixed", [inner] + atts, r)
    # forward: a short note and the forwarded message, itself sometimes multipart
    note = _text_part(_text(plan, r, 300, False, intl), r)
    inner_kind = r.choice(("plain", "alternative", "alternative", "attachment")) if depth == 0 else "plain"
    inner_headers, _ = _headers(plan, r, datetime.fromtimestamp(r.randint(1262304000, 1735689600), UTC),
                                False, r.choice(plan.people), inner=True)
    inner = inner_headers + "MIME-Version: 1.0\n" + _body(plan, r, inner_kind, rare, depth + 1)
    fwd = f"Content-Type: message/rfc822\nContent-Disposition: inline\n\n{inner}"
    return _multipart("mixed", [note, fwd], r)


def _headers(plan: Plan, r: random.Random, t: datetime, reply: bool, sender: Person,
             inner: bool = False) -> tuple[str, str]:
    domain = sender.addr.split("@", 1)[1]
    h: list[str] = []
    if not inner:
        h.append(f"Return-Path: <{sender.addr}>")
        h.append(f"Delivered-To: {OWNER_ADDR}")
        h.extend(_received(r, t, r.randint(2, 4)))
        if r.random() < 0.6:
            h.append(_dkim(r, domain))
        if r.random() < 0.4:
            h.append(f"Authentication-Results: {HOST};\n\tdkim=pass header.d={domain};\n"
                     f"\tspf=pass smtp.mailfrom={sender.addr};\n\tdmarc=pass header.from={domain}")
    h.append(f"From: {_address(sender, r)}")
    to = [Person(OWNER_NAME, OWNER_ADDR)] + r.sample(plan.people, r.choice((0, 0, 0, 1, 2, 4)))
    r.shuffle(to)
    h.append(_fold("To", [_address(p, r) for p in to]))
    if r.random() < 0.2:
        h.append(_fold("Cc", [_address(p, r) for p in r.sample(plan.people, r.randint(1, 5))]))
    if r.random() < 0.12:
        subject = r.choice(_SUBJECTS_INTL)
    else:
        subject = r.choice(_SUBJECT_STARTS) + " " + " ".join(r.choices(_WORDS[:300], k=r.randint(1, 6)))
    if reply:
        subject = r.choice(("Re: ", "RE: ", "Re: Re: ", "Fwd: ", "AW: ")) + subject
    h.append("Subject: " + _encode_word(subject, r))
    h.append("Date: " + _date(t - timedelta(seconds=r.randint(2, 600)), r))
    msgid = _msgid(r, domain)
    h.append("Message-ID: " + msgid)
    if reply:
        refs = [_msgid(r, r.choice(_DOMAINS)) for _ in range(r.randint(1, 6))]
        h.append(f"In-Reply-To: {refs[-1]}")
        h.append(_fold("References", refs))
    if r.random() < 0.7:
        h.append(("User-Agent: " if r.random() < 0.5 else "X-Mailer: ") + r.choice(_MAILERS))
    if not inner and r.random() < 0.15:
        lst = r.choice(_LISTS)
        h.append(f"List-Id: <{lst.replace('@', '.')}>")
        h.append(f"List-Unsubscribe: <mailto:{lst.replace('@', '-unsubscribe@')}>")
        h.append("Precedence: list")
    if not inner and r.random() < 0.3:
        h.append(f"X-Spam-Status: No, score={r.uniform(-5, 4):.1f} required=5.0 tests=BAYES_00,"
                 "DKIM_SIGNED,\n\tDKIM_VALID,SPF_PASS autolearn=ham version=3.4.6")
    return "\n".join(h) + "\n", msgid


def make_message(plan: Plan, i: int) -> Built:
    """Message number i (0-based) of the corpus: bytes with LF line ends, as on disk."""
    r = random.Random(f"msg/{plan.seed}/{i}")
    span = (END - START).total_seconds()
    t = START + timedelta(seconds=(i + r.random()) * span / max(plan.count, 1))
    from_rare = r.random() < RARE_RATE
    body_rare = r.random() < RARE_RATE
    sender = Person(f"{RARE_SENDER_FIRST} {RARE_SENDER}",
                    f"{RARE_SENDER_FIRST.lower()}.{RARE_SENDER.lower()}@{r.choice(_DOMAINS)}") \
        if from_rare else r.choice(plan.people)
    kind = r.choices(("plain", "alternative", "attachment", "forward"), weights=(45, 27, 20, 8))[0]
    headers, _ = _headers(plan, r, t, r.random() < 0.35, sender)
    data = (headers + "MIME-Version: 1.0\n" + _body(plan, r, kind, body_rare)).encode("utf-8")
    age = i / max(plan.count, 1)
    if age > 0.98 and r.random() < 0.7:
        flags = ""
    else:
        flags = "S"
        if r.random() < 0.15:
            flags = "R" + flags
    if r.random() < 0.02:
        flags = "F" + flags
    return Built(data, t.timestamp(), flags, from_rare, body_rare)


def file_name(built: Built, i: int) -> str:
    sec = int(built.when)
    usec = int((built.when - sec) * 1_000_000)
    pid = 1000 + (binascii.crc32(built.data[:64]) % 60000)
    size = len(built.data)
    vsize = size + built.data.count(b"\n")
    return f"{sec}.M{usec}P{pid}Q{i}.{HOST},S={size},W={vsize}:2,{built.flags}"


def crlf(data: bytes) -> bytes:
    """Wire form of an on-disk message (for APPEND)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# ---------------------------------------------------------------- writing

@dataclass
class Manifest:
    count: int
    seed: int
    version: int
    total_bytes: int
    from_rare: int
    body_rare: int
    generate_seconds: float
    maildir: str

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls(**json.loads(path.read_text()))


def _write_range(args: tuple[int, int, int, int, str, int, int]) -> tuple[int, int, int]:
    seed, count, lo, hi, cur, uid, gid = args
    plan = make_plan(seed, count)
    total = n_from = n_body = 0
    for i in range(lo, hi):
        built = make_message(plan, i)
        path = os.path.join(cur, file_name(built, i))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, built.data)
            if uid >= 0:
                os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
        os.utime(path, (built.when, built.when))
        total += len(built.data)
        n_from += built.from_rare
        n_body += built.body_rare
    return total, n_from, n_body


def ensure_corpus(root: Path, count: int, seed: int, uid: int, gid: int, workers: int = 0) -> Manifest:
    """Write `root/corpus-<count>/Maildir` once; reuse it while the manifest matches.

    Files belong to uid:gid (the benchmark user), mode 0600, as a delivery agent leaves them."""
    base = root / f"corpus-{count}"
    manifest_path = base / "manifest.json"
    if manifest_path.exists():
        m = Manifest.load(manifest_path)
        if (m.count, m.seed, m.version) == (count, seed, FORMAT_VERSION):
            _ensure_owner(Path(m.maildir), uid, gid)
            return m
    if base.exists():
        shutil.rmtree(base)
    maildir = base / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    started = time.monotonic()
    workers = workers or os.cpu_count() or 1
    chunk = max(1, -(-count // (workers * 8)))
    jobs = [(seed, count, lo, min(count, lo + chunk), str(maildir / "cur"), uid, gid)
            for lo in range(0, count, chunk)]
    with get_context("fork").Pool(workers) as pool:
        results = pool.map(_write_range, jobs)
    _ensure_owner(maildir, uid, gid)
    m = Manifest(count, seed, FORMAT_VERSION, sum(x[0] for x in results), sum(x[1] for x in results),
                 sum(x[2] for x in results), round(time.monotonic() - started, 1), str(maildir))
    m.save(manifest_path)
    return m


def _ensure_owner(maildir: Path, uid: int, gid: int) -> None:
    if uid < 0:
        return
    for dirpath, dirnames, filenames in os.walk(maildir):
        st = os.stat(dirpath)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(dirpath, uid, gid)
        sample = filenames[:1]
        if sample and os.stat(os.path.join(dirpath, sample[0])).st_uid == uid:
            continue
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, gid)


def extra_messages(seed: int, count: int, first: int, how_many: int) -> list[bytes]:
    """Messages beyond the corpus (APPEND, IDLE deliveries): same generator, later indexes."""
    plan = make_plan(seed, count)
    return [make_message(plan, i).data for i in range(first, first + how_many)]

"""Flags <-> the info suffix of a Maildir file name (`<base>:2,<letters>`).

Letters in ASCII order: D \\Draft, F \\Flagged, P $Forwarded, R \\Answered,
S \\Seen, T \\Deleted, then a-z for keywords mapped by dovecot-keywords.
Letters we do not know (other capitals, lowercase letters with no keyword) are
kept as they are, and so is anything after a second comma, as Dovecot does.

About `P`: Dovecot's own code treats `P` as an unknown letter (kept, never
shown) and stores `$Forwarded` as a keyword letter.  Mutt, mbsync and notmuch
use `P` for "forwarded".  To serve both, `$Forwarded` is reported when either
`P` or the dovecot-keywords letter of `$Forwarded` is present; setting it
writes `P` (plus that keyword letter if the mailbox already maps one, so a
Dovecot running beside us sees it too); clearing it clears both.
"""

from __future__ import annotations

from imapd.store.maildir.keywords import Keywords

FORWARDED = "$Forwarded"
SYSTEM_LETTERS = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": FORWARDED,
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
LETTER_OF_SYSTEM = {v.lower(): k for k, v in SYSTEM_LETTERS.items()}
CANONICAL_SYSTEM = {v.lower(): v for k, v in SYSTEM_LETTERS.items() if v.startswith("\\")}
SEEN_LETTER = "S"
DELETED_LETTER = "T"


def split_filename(name: str) -> tuple[str, str]:
    """(base, info) of a file name; info is "" when there is no ':'."""
    i = name.find(":")
    if i < 0:
        return name, ""
    return name[:i], name[i + 1 :]


def flag_letters(info: str) -> str:
    """The flag letters of an info suffix ("" unless it starts with "2,")."""
    if not info.startswith("2,"):
        return ""
    i = info.find(",", 2)
    return info[2:] if i < 0 else info[2:i]


def normalize_flag(flag: str) -> str:
    """Canonical spelling: system flags by case-insensitive match; keywords as given."""
    if flag.startswith("\\"):
        return CANONICAL_SYSTEM.get(flag.lower(), flag)
    if flag.lower() == FORWARDED.lower():
        return FORWARDED
    return flag


class FlagCodec:
    """Turns info suffixes into flag sets and back, for one mailbox."""

    def __init__(self, keywords: Keywords) -> None:
        self.kw = keywords
        self._cache: dict[str, frozenset[str]] = {}
        self._gen = -1

    def _check_gen(self) -> None:
        self.kw.ensure_loaded()
        if self._gen != self.kw.generation:
            self._cache.clear()
            self._gen = self.kw.generation

    def flags(self, info: str) -> frozenset[str]:
        """Stored flags for an info suffix (cached: few distinct suffixes exist)."""
        if self._gen != self.kw.generation:
            self._check_gen()
        fs = self._cache.get(info)
        if fs is None:
            out = set()
            for ch in flag_letters(info):
                f = SYSTEM_LETTERS.get(ch)
                if f is not None:
                    out.add(f)
                elif "a" <= ch <= "z":
                    kw = self.kw.name_of_letter(ch)
                    if kw is not None:
                        out.add(FORWARDED if kw.lower() == FORWARDED.lower() else kw)
            fs = frozenset(out)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[info] = fs
        return fs

    def missing_keywords(self, flags: frozenset[str]) -> list[str]:
        """Keywords in `flags` with no letter yet (they need Keywords.create)."""
        out = []
        for f in flags:
            if f.startswith("\\") or f == FORWARDED:
                continue
            if self.kw.index_of(f) is None:
                out.append(f)
        return out

    def build_info(self, old_info: str, flags: frozenset[str]) -> str:
        """The info suffix that stores exactly `flags`, keeping unknown letters.

        Every keyword in `flags` must already have a letter (missing_keywords)."""
        self._check_gen()
        letters = flag_letters(old_info)
        extra = ""
        if old_info.startswith("2,"):
            j = old_info.find(",", 2)
            if j >= 0:
                extra = old_info[j:]
        keep = []
        for ch in letters:
            if ch in SYSTEM_LETTERS:
                continue
            if "a" <= ch <= "z" and self.kw.name_of_letter(ch) is not None:
                continue
            keep.append(ch)  # unknown letter: not ours to drop
        want = set(keep)
        for f in flags:
            if f.startswith("\\"):
                ch = LETTER_OF_SYSTEM.get(f.lower())
                if ch is not None:
                    want.add(ch)
                continue
            if f == FORWARDED:
                want.add("P")
                ch2 = self.kw.letter_of(FORWARDED)
                if ch2 is not None:
                    want.add(ch2)
                continue
            ch = self.kw.letter_of(f)
            if ch is not None:
                want.add(ch)
        return "2," + "".join(sorted(want)) + extra

    def translate_info(self, info: str, dest: "FlagCodec") -> tuple[str, frozenset[str]]:
        """Info for the same flags in another mailbox (keyword letters differ).
        Returns (info, flags); the destination must have letters for them."""
        fl = self.flags(info)
        letters = flag_letters(info)
        unknown = "".join(ch for ch in letters if ch not in SYSTEM_LETTERS and not ("a" <= ch <= "z"))
        base_info = "2," + unknown
        return dest.build_info(base_info, fl), fl

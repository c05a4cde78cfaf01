"""The config files' TOML subset: where `simpletoml.parse` answers, it answers
what `tomllib` does; everything else (and every error) is left to `tomllib`."""

from __future__ import annotations

import os
import random
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd import config
from imapd.simpletoml import parse

ETC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "etc")


def _tomllib(text: str) -> dict | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None


def test_the_sample_config_is_read_without_tomllib():
    with open(os.path.join(ETC, "imapd.toml"), encoding="utf-8") as f:
        text = f.read()
    got = parse(text)
    assert got is not None and got == tomllib.loads(text)
    assert got["mail"]["fetch_helper"] is True and got["auth"]["failure_delay"] == 2.0


@pytest.mark.parametrize("text", [
    "",
    "# only a comment\n\n",
    "[server]\nhostname = \"mail.example.org\"  # a comment\n",
    "[ limits ]\r\nline_length = 65536\r\nautologout=-1\r\n",
    "top = 1\n[a]\nx = +7\ny = -0\nz = 0.25\nw = -12.5\n",
    "[auth]\nsecure_networks = [ \"10.0.0.0/8\", 'fe80::/10', ]\nreferrals = { }\nx = []\n",
    "[a]\ns = 'C:\\path\\no escapes in literal strings'\nt = \"it's\"\nu = '\"'\n",
    "[a]\nk = true#comment right after the value\nl = false\n",
    "[a]\nunicode = \"caf\u00e9 \u2603\"\n# comment \u00e9\n",
    "[a-b_c]\nkey-with_dash = \"x\"\n",
    "[mail]\nspecial_use = { Drafts = '\\Drafts', \"Sent Messages\" = '\\Sent', 'q'=\"r\" }  # c\n",
    "[a]\nt = {x='y',z-1 = \"w\"}\nu = { \"\" = '' }\n",
])
def test_plain_documents_match_tomllib(text):
    assert parse(text) == tomllib.loads(text)


@pytest.mark.parametrize("text", [
    # valid TOML that the subset leaves to tomllib
    "[a]\ns = \"tab\\there\"\n",
    "[a.b]\nx = 1\n",
    "a.b = 1\n",
    "\"quoted key\" = 1\n",
    "[a]\nx = 1_000\n",
    "[a]\nx = 1e3\n",
    "[a]\nx = inf\n",
    "[a]\nx = 0x1f\n",
    "[a]\nd = 2024-01-01\n",
    "[a]\nx = [1, 2]\n",
    "[a]\nx = [\n  \"multi-line\",\n]\n",
    "[a]\nx = { y = 1 }\n",
    "[a]\nx = { y.z = 'w' }\n",
    "[a]\nx = { \"t\\tab\" = 'w' }\n",
    "[a]\nx = { y = { z = 'w' } }\n",
    "[[a]]\nx = 1\n",
    "[a]\ns = \"\"\"multi\nline\"\"\"\n",
    "\ufeff[a]\nx = 1\n",
    # not TOML at all: tomllib gives the error message
    "[a]\nx = 1\nx = 2\n",
    "[a]\nx = 1\n[a]\n",
    "a = 1\n[a]\n",
    "[a]\nx = 007\n",
    "[a]\nx = 1.\n",
    "[a]\nx = .5\n",
    "[a]\nx = \"unterminated\n",
    "[a]\nx = 1 2\n",
    "[a]\nx = truex\n",
    "[a]\nx = \"a\" \"b\"\n",
    "[a]\nx = [\"a\" \"b\"]\n",
    "[a]\nx = [,]\n",
    "[a]\nx = {}}\n",
    "[a]\nx = { y = 'w', }\n",
    "[a]\nx = { y = 'w', y = 'v' }\n",
    "[a]\nx = { y = 'w' z = 'v' }\n",
    "[a]\nx = { = 'w' }\n",
    "[a]\nx = { y = 'w'\n",
    "[a\nx = 1\n",
    "[]\n",
    "[a]\n= 1\n",
    "[a]\nx\n",
    "[a]\nx = \"ctl\x01char\"\n",
    "[a]\nx = 1 # ctl\x7f in a comment\n",
    "[a]\nx = 1\r",
    "[a]\nx = 1\ry = 2\n",
    "[a]\nx = \u00a01\n",
])
def test_everything_else_is_left_to_tomllib(text):
    assert parse(text) is None


_PIECES = [
    "[a]", "[b]", "[ a ]", "[a.b]", "[[a]]", "x", "y", "x-1", "=", " = ", "\"s\"", "'s'", "\"\"", "''",
    "\"a\\tb\"", "1", "-1", "+1", "0", "01", "1.5", "1.", "1e2", "true", "false", "[]", "[\"a\", 'b']",
    "[\"a\",]", "{}", "{ }", "{x=1}", "{", "}", "{x='y'}", "{ 'k' = \"v\", y = '' }", "#", "# c", " ", "\t", "\n", "\r\n", "\r", ",", "]", "[", "\"", "'",
    "\u00e9", "\x01", "2024-01-01",
]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14))
def test_fuzzed_documents_never_disagree_with_tomllib(pieces):
    text = "".join(pieces)
    got = parse(text)
    if got is not None:
        assert got == _tomllib(text), text


def test_line_shaped_fuzz_never_disagrees_with_tomllib():
    """Documents made of whole lines, which reach far more of the subset than
    random pieces do."""
    rng = random.Random(7)
    keys = ["x", "y", "z-1", "a.b", "\"q\""]
    values = ["1", "-2", "0.5", "true", "false", "\"s\"", "'l'", "[]", "[\"a\", 'b',]", "{}", "01", "1.",
              "{ x = 'y' }", "{x='y',\"k k\"=\"v\"}",
              "\"a\" # c", "[\"a\"", "x", "\"\\n\""]
    headers = ["[a]", "[b]", "[ a ]", "[a.b]", "[[c]]", "[]"]
    answered = 0
    for _ in range(4000):
        lines = []
        for _ in range(rng.randrange(1, 7)):
            r = rng.random()
            if r < 0.25:
                lines.append(rng.choice(headers))
            elif r < 0.35:
                lines.append("# comment")
            else:
                lines.append(f"{rng.choice(keys)}{rng.choice([' = ', '=', ' =  '])}{rng.choice(values)}")
        text = rng.choice(["\n", "\r\n"]).join(lines) + rng.choice(["", "\n"])
        got = parse(text)
        if got is not None:
            answered += 1
            assert got == _tomllib(text), text
    assert answered > 500  # the fuzz does exercise the fast path


def test_config_load_reads_a_file_tomllib_needs(tmp_path):
    path = tmp_path / "imapd.toml"
    path.write_text("[limits]\nline_length = 70_000\n[auth]\nreferrals = { \"bob\" = \"imap://other.example/\" }\n")
    cfg = config.load(str(path))
    assert cfg.limits.line_length == 70000
    assert cfg.auth.referrals == {"bob": "imap://other.example/"}


@pytest.mark.parametrize("text", [
    "[limits]\nline_length = 1\nline_length = 2\n",
    "[limits]\nline_length = " + "9" * 5000 + "\n",  # more digits than int() converts
])
def test_config_load_reports_bad_toml(tmp_path, text):
    path = tmp_path / "imapd.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load(str(path))
    assert "not valid TOML" in str(err.value)

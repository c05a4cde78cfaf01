import pytest

from imapd.protocol import mutf7


@pytest.mark.parametrize(
    "text, enc",
    [
        ("INBOX", "INBOX"),
        ("a&b", "a&-b"),
        ("&", "&-"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("日本語", "&ZeVnLIqe-"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("😀", "&2D3eAA-"),
        ("tab\there", "tab&AAk-here"),
        ("", ""),
    ],
)
def test_roundtrip(text, enc):
    assert mutf7.encode(text) == enc
    assert mutf7.decode(enc) == text
    assert mutf7.decode(enc.encode()) == text
    assert mutf7.is_valid(enc)


@pytest.mark.parametrize(
    "bad",
    [
        "&",  # unterminated
        "&AGE-",  # BASE64 of printable "a"
        "&ZeVnLIqe-&ZeVnLIqe-",  # adjacent shifts (not canonical)
        "&AOl-",  # non-zero padding bits
        "&Ze-",  # odd bytes
        "&2D0-",  # lone high surrogate
        "&A/w-",  # '/' is not modified BASE64
        "caf\u00e9",  # raw 8-bit
        "a\x01b",  # control char
        "&U,BTF2-",  # trailing garbage bits
    ],
)
def test_strict_rejects(bad):
    with pytest.raises(ValueError):
        mutf7.decode(bad)
    assert not mutf7.is_valid(bad)


def test_bytes_8bit_rejected():
    with pytest.raises(ValueError):
        mutf7.decode(b"\xc3\xa9")


def test_encode_lone_surrogate():
    with pytest.raises(ValueError):
        mutf7.encode("\ud800")

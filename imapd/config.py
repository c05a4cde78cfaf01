"""Configuration: one TOML file, validated with messages that name the key.

Every key has a default, so imapd runs with no file at all.  The schema is
data (`SCHEMA`): section -> key -> (type, default, check), so `--check-config`,
the sample `etc/imapd.toml` and the loader cannot drift apart.
"""

from __future__ import annotations

import posix

TYPE_CHECKING = False  # avoids importing typing at start-up
if TYPE_CHECKING:
    from typing import Any, Callable

DEFAULT_PATH = "/etc/imapd/imapd.toml"


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be greater than zero"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must not be negative"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in choices else "must be one of " + ", ".join(repr(c) for c in choices)

    return check


def _cidr_list(v: Any) -> str | None:
    if not v:
        return None  # (the usual empty list needs no ipaddress import at every connection)
    import ipaddress

    for item in v:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"{item!r} is not an address or network"
    return None


def _tls_version(v: Any) -> str | None:
    return None if v in ("TLSv1.2", "TLSv1.3") else "must be 'TLSv1.2' or 'TLSv1.3'"


def _referrals(v: Any) -> str | None:
    for user, url in v.items():
        if not isinstance(url, str) or not url.startswith(("imap://", "imaps://")):
            return f"referral for {user!r} must be an imap:// URL"
    return None


# RFC 6154's mailbox attributes, and RFC 8457's \Important.
SPECIAL_USE_ATTRIBUTES = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Important", "\\Junk",
                          "\\Sent", "\\Trash")
# The mailboxes LIST marks for clients that look for them (Thunderbird, K-9,
# Apple Mail...): Dovecot's default configuration names the same ones.
DEFAULT_SPECIAL_USE = {"Drafts": "\\Drafts", "Sent": "\\Sent", "Sent Messages": "\\Sent", "Trash": "\\Trash",
                       "Junk": "\\Junk", "Archive": "\\Archive"}


def _special_use(v: Any) -> str | None:
    for name, attributes in v.items():
        if not isinstance(attributes, str) or not attributes.split():
            return f"the attributes of {name!r} must be a string such as '\\Sent'"
        for attribute in attributes.split():
            if attribute not in SPECIAL_USE_ATTRIBUTES:
                return f"{attribute} (for {name!r}) is not one of {' '.join(SPECIAL_USE_ATTRIBUTES)}"
    return None


Number = (int, float)
SCHEMA: "dict[str, dict[str, tuple[Any, Any, Callable[[Any], str | None] | None]]]" = {
    "server": {
        "hostname": (str, "", None),
        "log_facility": (str, "mail", _one_of("mail", "daemon", "user", "local0", "local1", "local2",
                                              "local3", "local4", "local5", "local6", "local7")),
        "log_to_stderr": (bool, False, None),
        "alert_file": (str, "", None),
        "transcript_dir": (str, "", None),
    },
    "limits": {
        "line_length": (int, 65536, _positive),
        "literal_size": (int, 1 << 20, _positive),
        "append_size": (int, 64 << 20, _positive),
        "nesting_depth": (int, 32, _positive),
        "bad_commands": (int, 20, _positive),
        "autologout": (Number, 1800, _positive),
        "login_timeout": (Number, 60, _positive),
        "failed_logins": (int, 3, _positive),
        "output_buffer": (int, 1 << 20, _positive),
    },
    "auth": {
        "backend": (str, "pam", _one_of("pam", "passwd-file")),
        "pam_service": (str, "imap", None),
        "passwd_file": (str, "/etc/imapd/passwd", None),
        "mail_location": (str, "~/Maildir", None),
        "failure_delay": (Number, 2.0, _non_negative),
        "allow_plaintext": (bool, False, None),
        "secure_networks": (list, [], _cidr_list),
        "referrals": (dict, {}, _referrals),
    },
    "tls": {
        "certificate": (str, "", None),
        "key": (str, "", None),
        "min_version": (str, "TLSv1.2", _tls_version),
        "ciphers": (str, "", None),
    },
    "mail": {
        "store": (str, "maildir", _one_of("maildir", "readonly", "flat", "inbox-only")),
        "fetch_helper": (bool, True, None),
        "special_use": (dict, DEFAULT_SPECIAL_USE, _special_use),
    },
    "idle": {
        "keepalive": (Number, 120, _positive),
        "poll_interval": (Number, 2.0, _positive),
        "inotify": (bool, True, None),
        "command_keepalive": (Number, 15, _positive),
    },
}


class Section:
    """Attribute access to one section's values (`config.limits.line_length`)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Section({self.__dict__!r})"


class Config:
    """All sections; `config.limits.line_length` and so on."""

    server: Section
    limits: Section
    auth: Section
    tls: Section
    mail: Section
    idle: Section

    def __init__(self, path: str | None = None, **sections: Section) -> None:
        self.path = path
        self.__dict__.update(sections)

    @property
    def tls_configured(self) -> bool:
        return bool(self.tls.certificate and self.tls.key)


class ConfigError(Exception):
    """A config file that cannot be used; `problems` lists each with its key."""

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.path = path
        self.problems = problems


def defaults() -> Config:
    return build({})


def build(data: dict[str, Any], path: str | None = None) -> Config:
    """Validate a parsed TOML document and fill in defaults."""
    problems: list[str] = []
    sections: dict[str, Section] = {}
    for name in data:
        if name not in SCHEMA:
            problems.append(f"[{name}]: unknown section")
        elif not isinstance(data[name], dict):
            problems.append(f"{name}: must be a table")
    for section, keys in SCHEMA.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            given = {}
        values: dict[str, Any] = {}
        for key in given:
            if key not in keys:
                problems.append(f"{section}.{key}: unknown key")
        for key, (typ, default, check) in keys.items():
            if key not in given:
                values[key] = default
                continue
            value = given[key]
            if isinstance(value, bool) and typ is not bool:
                problems.append(f"{section}.{key}: must be a {_type_name(typ)}, not a boolean")
                continue
            if not isinstance(value, typ):
                problems.append(f"{section}.{key}: must be a {_type_name(typ)}")
                continue
            if check is not None:
                msg = check(value)
                if msg:
                    problems.append(f"{section}.{key}: {msg}")
                    continue
            values[key] = value
        sections[section] = Section(values)
    if problems:
        raise ConfigError(path or "<config>", problems)
    cfg = Config(path=path, **sections)
    if not cfg.server.hostname:
        cfg.server.hostname = posix.uname().nodename
    if bool(cfg.tls.certificate) != bool(cfg.tls.key):
        raise ConfigError(path or "<config>", ["tls.certificate and tls.key must be given together"])
    return cfg


def _type_name(typ: Any) -> str:
    if typ is Number:
        return "number"
    return {str: "string", int: "integer", bool: "boolean", list: "list", dict: "table"}.get(typ, str(typ))


def load(path: str | None) -> Config:
    """Read `path`, or the default path if it exists, or use defaults.

    An explicitly given path that does not exist is an error; a missing
    default file is not (imapd works with no config at all)."""
    if path is None:
        path = DEFAULT_PATH
        if not posix.access(path, posix.F_OK):  # (os.path.exists, without os)
            return defaults()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(path, [f"cannot read: {e.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, [f"not valid TOML: {e}"]) from None
    from .simpletoml import parse

    data = parse(text)  # the plain files everyone writes, without importing tomllib
    if data is None:
        import tomllib

        try:
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, ValueError) as e:  # (ValueError: an integer of 5,000 digits)
            raise ConfigError(path, [f"not valid TOML: {e}"]) from None
    cfg = build(data, path)
    problems = _check_files(cfg)
    if problems:
        raise ConfigError(path, problems)
    return cfg


def _check_files(cfg: Config) -> list[str]:
    """Files the config names must be readable when it is used."""
    problems = []
    for key in ("certificate", "key"):
        p = getattr(cfg.tls, key)
        if p and not posix.access(p, posix.R_OK):
            problems.append(f"tls.{key}: cannot read {p}")
    if cfg.auth.backend == "passwd-file" and not posix.access(cfg.auth.passwd_file, posix.R_OK):
        problems.append(f"auth.passwd_file: cannot read {cfg.auth.passwd_file}")
    return problems

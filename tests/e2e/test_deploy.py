"""The shipped deployment files: etc/imapd.toml, etc/inetd.conf, etc/xinetd.d/*, systemd/*.

etc/xinetd.d/imap and etc/pam.d/imap are also run for real by test_login_tls.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib

import pytest

from harness import IMAPD, REPO, server_env

ETC = os.path.join(REPO, "etc")
UNITS = os.path.join(REPO, "systemd")


def test_sample_config_passes_check_config():
    out = subprocess.run(IMAPD + ["--check-config", os.path.join(ETC, "imapd.toml")], capture_output=True,
                         text=True, env=server_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith(": OK")


def test_sample_config_shows_every_key_with_its_default():
    from imapd.config import SCHEMA

    with open(os.path.join(ETC, "imapd.toml"), "rb") as f:
        sample = tomllib.load(f)
    for section, keys in SCHEMA.items():
        for key, (_type, default, _check) in keys.items():
            assert key in sample.get(section, {}), f"etc/imapd.toml lacks {section}.{key}"
            assert sample[section][key] == default, f"etc/imapd.toml: {section}.{key} is not the default"


def test_inetd_conf_lines():
    lines = [l.split() for l in open(os.path.join(ETC, "inetd.conf")) if l.strip() and not l.startswith("#")]
    assert lines
    for fields in lines:
        service, socktype, proto, wait, user, program, argv0, *args = fields
        assert service in ("imap2", "imaps") and socktype == "stream" and proto in ("tcp", "tcp6")
        assert wait.startswith("nowait") and user == "root"
        assert program.endswith("/imapd") and argv0 == "imapd"
        assert args == (["--tls"] if service == "imaps" else [])


def test_xinetd_services():
    for name, args in (("imap", None), ("imaps", "--tls")):
        text = open(os.path.join(ETC, "xinetd.d", name)).read()
        settings = dict(re.findall(r"^\s*(\w+)\s*=\s*(.*?)\s*$", text, re.M))
        assert settings["socket_type"] == "stream" and settings["wait"] == "no" and settings["user"] == "root"
        assert settings["server"].endswith("/imapd")
        assert settings.get("server_args") == args


def _units(tmp_path) -> list[str]:
    """The units, with ExecStart pointed at this checkout's launcher so that verify finds it."""
    launcher = os.path.join(REPO, "bin", "imapd")
    paths = []
    for name in sorted(os.listdir(UNITS)):
        text = open(os.path.join(UNITS, name)).read().replace("/usr/local/bin/imapd", launcher)
        path = tmp_path / name
        path.write_text(text)
        paths.append(str(path))
    return paths


def test_systemd_units_are_consistent(tmp_path):
    units = {os.path.basename(p): open(p).read() for p in _units(tmp_path)}
    assert set(units) == {"imapd.socket", "imapd@.service", "imaps.socket", "imaps@.service"}
    for sock, port in (("imapd.socket", "143"), ("imaps.socket", "993")):
        assert f"ListenStream={port}\n" in units[sock] and "Accept=yes\n" in units[sock]
    for svc in ("imapd@.service", "imaps@.service"):
        assert "StandardInput=socket\n" in units[svc] and "StandardOutput=socket\n" in units[svc]
        assert "CAP_SETUID" in units[svc] and "CAP_SETGID" in units[svc]
    assert re.search(r"^ExecStart=\S+/imapd --tls$", units["imaps@.service"], re.M)
    assert re.search(r"^ExecStart=\S+/imapd$", units["imapd@.service"], re.M)


def test_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    for unit in _units(tmp_path):
        out = subprocess.run([tool, "verify", "--man=no", unit], capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0 and not out.stderr.strip(), (unit, out.stdout, out.stderr)


def test_launcher_never_imports_from_the_current_directory(tmp_path):
    """inetd and friends may start imapd (as root) in a directory others can write to."""
    planted = tmp_path / "imapd"
    planted.mkdir()
    marker = tmp_path / "planted-code-ran"
    (planted / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n")
    (tmp_path / "selectors.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    env = server_env({"PATH": os.path.dirname(IMAPD[0]) + os.pathsep + os.environ.get("PATH", ""),
                      "PYTHONPATH": REPO})  # no empty entry: that would mean "." on purpose
    maildir = tmp_path / "Maildir"
    args = [] if os.geteuid() == 0 else ["--maildir", str(maildir)]
    out = subprocess.run([os.path.join(REPO, "bin", "imapd"), *args], input=b"a LOGOUT\r\n", capture_output=True,
                         cwd=tmp_path, env=env, timeout=30)
    assert not marker.exists()
    assert out.returncode == 0 and b"\r\na OK" in out.stdout, out

"""Fixtures: certificates for the TLS tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tls_certs import CertFiles, make_cert


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="session")
def ec_cert(cert_dir: Path) -> CertFiles:
    return make_cert(cert_dir, "ec", "ec")


@pytest.fixture(scope="session")
def rsa_cert(cert_dir: Path) -> CertFiles:
    return make_cert(cert_dir, "rsa", "rsa")

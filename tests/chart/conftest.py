"""Fixtures shared by the chart's tests."""

from __future__ import annotations

import pytest

from testbed.cluster.security import make_tls_material


@pytest.fixture(scope="session")
def tls_stand_ins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A real CA, certificate and key, for the TLS files a rendered config names (the Secret
    they come from is not there when the chart is tested)."""
    material = make_tls_material(tmp_path_factory.mktemp("tls") / "material", [])
    return {
        "ca_file": material.ca_cert.read_bytes(),
        "cert_file": material.client_cert.read_bytes(),
        "key_file": material.client_key.read_bytes(),
    }

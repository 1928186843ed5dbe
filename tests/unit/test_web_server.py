"""The web listeners with real clients: TLS, mutual TLS, basic auth, headers, reload,
the health listener, and the HTTP limits, on a real exporter whose cluster never answers."""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import ssl
import time
from pathlib import Path

import aiohttp
import pytest

from exporter.web.limits import RESERVED
from tests.support import poll_until
from tests.web_support import (
    PASSWORD,
    bcrypt_hash,
    make_certificates,
    peer_serial,
    serve_web,
    write_web_config,
)

TIMEOUT = aiohttp.ClientTimeout(total=10)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def get(
    url: str, *, context: ssl.SSLContext | None = None, auth: str | None = None
) -> tuple[int, dict[str, str]]:
    headers = {"Authorization": auth} if auth is not None else {}
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as http,
        http.get(url, ssl=context if context is not None else False, headers=headers) as response,
    ):
        await response.read()
        return response.status, dict(response.headers)


async def test_tls_with_basic_auth_and_headers(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    web = write_web_config(
        tmp_path / "web.yml",
        {
            "tls_server_config": {"cert_file": str(certs.cert), "key_file": str(certs.key)},
            "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
            "http_server_config": {"headers": {"X-Content-Type-Options": "nosniff"}},
        },
    )
    async with serve_web(web) as served:
        https = f"https://127.0.0.1:{served.port}"
        context = certs.client_context()
        # Plain HTTP on the TLS port: no HTTP answer at all.
        with pytest.raises(aiohttp.ClientError):
            await get(f"http://127.0.0.1:{served.port}/health/live")
        status, headers = await get(f"{https}/health/live", context=context)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert headers["X-Content-Type-Options"] == "nosniff"
        wrong = basic("prometheus", "not-the-password")
        assert (await get(f"{https}/metrics", context=context, auth=wrong))[0] == 401
        nobody = basic("nobody", PASSWORD)
        assert (await get(f"{https}/metrics", context=context, auth=nobody))[0] == 401
        right = basic("prometheus", PASSWORD)
        for path in ("/metrics", "/health/live", "/"):
            status, headers = await get(f"{https}{path}", context=context, auth=right)
            assert status == 200, path
            assert headers["X-Content-Type-Options"] == "nosniff"
        # Malformed Authorization headers are a 401, never a 500.
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            no_colon = "Basic " + base64.b64encode(b"x").decode()
            for value in ("Basic", "Basic !!!", "Bearer x", no_colon):
                async with http.get(
                    f"{https}/metrics", ssl=context, headers={"Authorization": value}
                ) as response:
                    assert response.status == 401, value


async def test_mutual_tls_refuses_a_client_without_a_certificate(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    web = write_web_config(
        tmp_path / "web.yml",
        {
            "tls_server_config": {
                "cert_file": str(certs.cert),
                "key_file": str(certs.key),
                "client_auth_type": "RequireAndVerifyClientCert",
                "client_ca_file": str(certs.ca),
                "min_version": "TLS12",
            }
        },
    )
    async with serve_web(web) as served:
        url = f"https://127.0.0.1:{served.port}/health/live"
        with pytest.raises(aiohttp.ClientError):
            await get(url, context=certs.client_context())
        other = make_certificates(tmp_path / "other")  # a certificate from another CA
        stranger = certs.client_context()
        stranger.load_cert_chain(other.material.client_cert, other.material.client_key)
        with pytest.raises(aiohttp.ClientError):
            await get(url, context=stranger)
        assert (await get(url, context=certs.client_context(with_cert=True)))[0] == 200


async def test_a_rotated_certificate_is_served_without_restart(tmp_path: Path) -> None:
    first = make_certificates(tmp_path / "first")
    second = make_certificates(tmp_path / "second")
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(first.cert, live / "tls.crt")
    shutil.copy(first.key, live / "tls.key")
    web = write_web_config(
        tmp_path / "web.yml",
        {
            "tls_server_config": {
                "cert_file": str(live / "tls.crt"),
                "key_file": str(live / "tls.key"),
            }
        },
    )
    async with serve_web(web) as served:
        context = first.client_context(extra_ca=second.ca)
        assert await peer_serial(served.port, context) == first.serial
        # A broken pair (new certificate, old key) is refused; the last good one stays.
        shutil.copy(second.cert, live / "tls.crt.new")
        (live / "tls.crt.new").replace(live / "tls.crt")
        await poll_until(lambda: served.http.web is not None and served.http.web._failed,
                         timeout=10, message="the broken pair logged")
        assert await peer_serial(served.port, context) == first.serial
        shutil.copy(second.key, live / "tls.key.new")
        (live / "tls.key.new").replace(live / "tls.key")

        async def rotated() -> bool:
            return await peer_serial(served.port, context) == second.serial

        await poll_until(rotated, timeout=10, message="the new certificate served")
        url = f"https://127.0.0.1:{served.port}/health/live"
        assert (await get(url, context=second.client_context()))[0] == 200


async def test_the_health_listener_answers_without_auth_or_tls(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    web = write_web_config(
        tmp_path / "web.yml",
        {
            "tls_server_config": {"cert_file": str(certs.cert), "key_file": str(certs.key)},
            "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
        },
    )
    async with serve_web(web, {"health_listen": "127.0.0.1:0"}) as served:
        health = f"http://127.0.0.1:{served.health_port}"
        assert (await get(f"{health}/health/live"))[0] == 200
        assert (await get(f"{health}/health/ready"))[0] in (200, 503)
        assert (await get(f"{health}/metrics"))[0] == 404
        assert (await get(f"{health}/health"))[0] == 404
        main = f"https://127.0.0.1:{served.port}/health/live"
        assert (await get(main, context=certs.client_context()))[0] == 401


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    started = time.monotonic()
    try:
        data = await asyncio.wait_for(reader.read(), timeout=seconds)
    except ConnectionResetError:
        data = b""
    assert data == b""
    return time.monotonic() - started


async def test_a_slow_request_head_is_closed_at_the_deadline() -> None:
    async with serve_web(None, {"http": {"header_timeout": "1s"}}) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")  # never finished
        await writer.drain()
        assert await _closed_within(reader, 5) < 3
        writer.close()
        # A connection that sends nothing at all is closed too.
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        assert await _closed_within(reader, 5) < 3
        writer.close()
        # Prompt requests on a kept-alive connection are served, idle past the deadline
        # between them: the deadline is for request heads, idleness is keepalive_timeout's.
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        for pause in (0, 1.5):
            await asyncio.sleep(pause)
            writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            assert head.startswith(b"HTTP/1.1 200")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await asyncio.wait_for(reader.readexactly(length), timeout=5)
        writer.close()


async def test_beyond_the_connection_cap_only_health_is_served() -> None:
    async with serve_web(None, {"http": {"max_connections": 2}}) as served:
        idle = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(2)]
        await asyncio.sleep(0.1)
        # A reserved slot serves /health/live ...
        assert (await get(f"http://127.0.0.1:{served.port}/health/live"))[0] == 200
        # ... and nothing else.
        with pytest.raises(aiohttp.ClientError):
            await get(f"http://127.0.0.1:{served.port}/metrics")
        more = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(RESERVED)]
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        assert await _closed_within(reader, 2) < 1  # past every slot: closed at once
        assert served.http.sites[0].count.refused >= 1
        # The reserved ones that asked nothing are closed soon; the slots free again.
        assert await _closed_within(more[0][0], 3) < 2.5
        assert (await get(f"http://127.0.0.1:{served.port}/health/live"))[0] == 200
        for _, w in [*idle, *more, (reader, writer)]:
            w.close()


async def test_oversized_request_lines_and_headers_get_400() -> None:
    async with serve_web(None, {"http": {"max_line_size": 256, "max_field_size": 256}}) as served:
        base = f"http://127.0.0.1:{served.port}"
        assert (await get(f"{base}/health/live?x={'a' * 400}"))[0] in (400, 414)
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as http,
            http.get(f"{base}/health/live", headers={"X-Big": "b" * 400}) as response,
        ):
            assert response.status in (400, 431)


async def test_schemathesis_finds_the_exporter_conforming_over_tls_with_auth(
    tmp_path: Path,
) -> None:
    from tests.unit.test_health_openapi import run_schemathesis

    certs = make_certificates(tmp_path)
    web = write_web_config(
        tmp_path / "web.yml",
        {
            "tls_server_config": {"cert_file": str(certs.cert), "key_file": str(certs.key)},
            "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
        },
    )
    async with serve_web(web) as served:
        url = f"https://127.0.0.1:{served.port}"
        code, output = await run_schemathesis(
            url, max_examples=5, allow_503=True,
            extra=["--tls-verify", str(certs.ca), "--auth", f"prometheus:{PASSWORD}"],
        )
    assert code == 0, output[-6000:]
    selected = re.search(r"Operations:\s+(\d+) selected", output)
    assert selected is not None, output[-3000:]
    # every operation got past the auth
    assert f"Tested: {selected.group(1)}" in output, output[-3000:]

"""The status page as a browser draws it: Debian's headless Chromium, a real exporter, the
real testbed, and a breach caused by configuration alone.

A query latency threshold of 0.1 ms is below any real p99, so query_latency_p99 turns
DEGRADED after the first latency windows, with every node running. Chromium loads `/` twice:
`--dump-dom` for what is drawn (one sparkline per component, each with its threshold line,
a DEGRADED row), and `--screenshot` for the pixels (the threshold line's colour).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from exporter.status.sparkline import THRESHOLD_COLOUR
from tests.support import poll_until, serve_exporter

pytestmark = pytest.mark.cluster

CHROMIUM = Path("/usr/bin/chromium")
# Headless, as root, and quiet on the network: without the background-networking flags
# Chromium reaches out at start-up, and a closed network refuses it.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--window-size=1280,2400",
)


async def chromium(profile: Path, *arguments: str) -> str:
    """Run Chromium once with a fresh profile; its standard output."""
    assert CHROMIUM.exists(), "Debian's chromium is needed (`scripts/setup.sh --for test`)"
    process = await asyncio.create_subprocess_exec(
        str(CHROMIUM),
        *FLAGS,
        f"--user-data-dir={profile}",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        output, errors = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    assert process.returncode == 0, errors.decode(errors="replace")[-3000:]
    return output.decode()


class Drawn(HTMLParser):
    """What the dumped DOM draws: the sparklines, and the component rows of the checks table."""

    def __init__(self) -> None:
        super().__init__()
        self.sparklines: list[list[str]] = []
        """Per `<svg>`, the classes of the lines in it."""
        self.rows: list[tuple[str, str, list[str]]] = []
        """(check, row class, the row's text) of each checks-table row with a sparkline."""
        self._section = ""
        self._check = ""
        self._heading = False
        self._row: tuple[str, list[str]] | None = None
        self._row_has_svg = False
        self._in_svg = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section":
            self._section = attributes.get("id") or ""
        elif tag == "svg":
            self._in_svg = self._row_has_svg = True
            self.sparklines.append([])
        elif tag == "line" and self._in_svg:
            self.sparklines[-1].append(attributes.get("class") or "")
        elif tag == "tr" and self._section == "checks":
            self._heading = attributes.get("class") == "check"
            if self._heading:
                self._check = ""
            self._row = (attributes.get("class") or "", [])
            self._row_has_svg = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_svg = False
        elif tag == "tr" and self._row is not None:
            if self._row_has_svg:
                self.rows.append((self._check, *self._row))
            self._row = None
            self._heading = False

    def handle_data(self, data: str) -> None:
        text = data.strip()
        if not text or self._in_svg or self._row is None:
            return
        if self._heading and not self._check:
            self._check = text
        self._row[1].append(text)


def threshold_pixels(png: Path) -> int:
    colour = tuple(int(THRESHOLD_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    with Image.open(png) as image:
        return sum(
            count for count, pixel in image.convert("RGB").getcolors(1 << 24) if pixel == colour
        )


async def test_the_status_page_draws_every_component_and_a_breach(
    make_config: Callable[..., dict[str, Any]], testbed_cluster: Any, tmp_path: Path
) -> None:
    config = make_config(
        {
            "thresholds": {"query_latency_p99": "1ms"},
            "health": {"groups": {"queries": {"checks": ["query_latency_p99"]}}},
        }
    )
    async with serve_exporter(config) as running:

        async def breached() -> bool:
            _, body = await running.get_json("/health?verbose")
            queries = body["components"].get("query_latency_p99", {})
            return queries.get("status") == "DEGRADED"

        await poll_until(breached, timeout=120, interval=1.0, message="query_latency_p99 DEGRADED")
        snapshot = running.exporter.verdicts()
        components = sum(len(items) for items in snapshot.overall.components.values())

        dom = await chromium(tmp_path / "dom", "--dump-dom", running.url + "/")
        png = tmp_path / "status.png"
        await chromium(tmp_path / "shot", f"--screenshot={png}", running.url + "/")

    drawn = Drawn()
    drawn.feed(dom)
    assert len(drawn.sparklines) == len(drawn.rows) == components >= 5
    assert all(lines.count("threshold") == 1 for lines in drawn.sparklines), drawn.sparklines
    degraded = [row for row in drawn.rows if row[0] == "query_latency_p99" and "DEGRADED" in row[2]]
    assert degraded and all(css == "breach" for _, css, _ in degraded), drawn.rows
    assert all(" ms" in " ".join(cells) for check, _, cells in drawn.rows if "latency" in check)
    assert "queries" in dom and "DEGRADED" in dom
    for host in testbed_cluster.contact_points:
        assert host not in dom

    with Image.open(png) as image:
        assert image.size == (1280, 2400)
    # Each threshold line is a dashed one-pixel row across the plot: about 190 pixels.
    assert threshold_pixels(png) >= 150 * components

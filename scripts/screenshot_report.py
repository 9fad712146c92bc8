"""Screenshot an HTML report in headless Chromium, after checking that it is self-contained.

    python scripts/screenshot_report.py RUN/report.html --out report.png
    python scripts/screenshot_report.py docs/results/zoo/mnist-digits-*-strong.json \\
        --figure docs/surface.png --title "..." --out docs/report-html.png

Inputs that are not one .html file are results files or run folders: the report is built
first (``lpbench.pipelines.reports.report_for(..., html=True)``) in a temporary folder.
Exits 1 without a screenshot when the page loads anything from outside (a stylesheet link,
a script or image by URL) or an embedded image does not decode; ``--check-only`` stops
there. Needs Chromium (Debian: ``apt-get install -y chromium``) and Pillow.
"""

from __future__ import annotations

import argparse
import base64
import io
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from lpbench.pipelines.reports import report_for

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
)


class _Resources(HTMLParser):
    """Collects what a page would load: (tag, attribute, value) of src/href attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link":
            self.found.append((tag, "href", values.get("href") or ""))
        if tag == "img" and values.get("src") is None:
            self.found.append((tag, "src", ""))  # an image without a source shows broken
        for name in ("src", "srcset", "data"):
            if values.get(name) is not None:
                self.found.append((tag, name, values[name] or ""))


def problems(page: str) -> list[str]:
    """What keeps ``page`` from rendering alone: outside resources, undecodable images."""
    parser = _Resources()
    parser.feed(page)
    found = []
    for tag, name, value in parser.found:
        if tag != "img" or not value.startswith("data:image/"):
            found.append(f"<{tag} {name}={value[:80]!r}> loads from outside the page")
            continue
        header, _, data = value.partition(",")
        if header.endswith(";base64") and not header.startswith("data:image/svg"):
            try:
                Image.open(io.BytesIO(base64.b64decode(data, validate=True))).verify()
            except Exception as error:  # any decoding failure means a broken image
                found.append(f"<img> with a {header} that does not decode: {error}")
    return found


def screenshot(page: Path, out: Path, *, width: int, height: int, browser: str) -> None:
    """Render ``page`` in headless Chromium at ``width`` x ``height`` into the PNG ``out``."""
    with tempfile.TemporaryDirectory(prefix="lpbench-chromium-") as profile:
        command = [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={out.resolve()}",
            f"--window-size={width},{height}",
            page.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"{browser} failed ({done.returncode}): {done.stderr[-2000:]}")


def shrink(path: Path, max_kb: int) -> None:
    """Re-save the PNG with at most 256 colours, then smaller, until it fits ``max_kb``."""
    image = Image.open(path).convert("RGB")
    scale = 1.0
    while True:
        size = (round(image.width * scale), round(image.height * scale))
        small = image.resize(size, Image.Resampling.LANCZOS) if scale < 1 else image
        small.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= max_kb * 1024 or scale < 0.3:
            return
        scale *= 0.85


def main(argv: list[str] | None = None) -> int:
    """Build the report if needed, check it, screenshot it; 1 on any problem."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="report.html, or results files / run folders")
    parser.add_argument("--out", type=Path, default=Path("report.png"))
    parser.add_argument("--figure", action="append", default=[], help="figure to embed")
    parser.add_argument("--title", default="lpbench report")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--max-kb", type=int, default=400, help="shrink the PNG to this size")
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--check-only", action="store_true", help="check; no screenshot")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lpbench-report-") as tmp:
        if len(args.inputs) == 1 and args.inputs[0].endswith(".html"):
            page = Path(args.inputs[0])
        else:
            _, written = report_for(
                args.inputs, figures=args.figure, title=args.title, out=tmp, html=True
            )
            page = written["html"]
        found = problems(page.read_text())
        for problem in found:
            print(f"{page}: {problem}", file=sys.stderr)
        if found or args.check_only:
            return 1 if found else 0
        screenshot(page, args.out, width=args.width, height=args.height, browser=args.browser)
    shrink(args.out, args.max_kb)
    print(f"{args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Headless Chromium as a measuring instrument: load a page, run a probe script, read back its answer.

Used by the tests of the built pages (tables fit the viewport) and of the threshold explorer (the
slider shows the evaluator's IoU), and for screenshots. The page is copied to a temporary file
with a ``<base>`` pointing at its folder (so its styles, scripts and images load as they would)
and the probe appended. It is shown in an iframe of the viewport's size (headless Chromium's
window is at least 500 px wide, a phone is 390), and the probe's JSON answer, posted to the
wrapper, is read from the DOM Chromium dumps after the scripts and timers have run
(``--virtual-time-budget``). Debian's ``chromium`` package
provides the browser; :func:`infocam.editions.find_chromium` finds it.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import tempfile
from pathlib import Path

from infocam.editions import find_chromium

ANSWER = re.compile(r'<pre id="infocam-probe">(.*?)</pre>', re.S)


class BrowserError(RuntimeError):
    """Chromium is missing, or the page or probe gave no answer."""


def _probe_page(page: Path, probe_js: str, delay_ms: int) -> str:
    text = page.read_text(errors="replace")
    base = f'<base href="{page.resolve().parent.as_uri()}/">'
    text = re.sub(r"<head([^>]*)>", lambda m: f"<head{m.group(1)}>{base}", text, count=1) if "<head" in text \
        else base + text
    probe = ("<script>window.addEventListener('load', function () { setTimeout(function () {"
             "var answer; try { answer = (function () {" + probe_js + "})(); } catch (e) { answer = {error: String(e)}; }"
             "parent.postMessage(JSON.stringify(answer), '*');"
             f"}}, {int(delay_ms)}); }});</script>")
    return text.replace("</body>", probe + "</body>") if "</body>" in text else text + probe


def _frame(page_uri: str, width: int, height: int, listen: bool) -> str:
    """A wrapper page showing ``page_uri`` in a ``width`` × ``height`` iframe (and writing a posted answer)."""
    script = ("<script>window.addEventListener('message', function (e) { var pre = document.createElement('pre');"
              "pre.id = 'infocam-probe'; pre.textContent = e.data; document.body.appendChild(pre); });</script>"
              if listen else "")
    return (f'<!doctype html><html><body style="margin:0">{script}<iframe src="{page_uri}" '
            f'style="border:0;display:block;width:{width}px;height:{height}px"></iframe></body></html>')


def _run(chromium: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="infocam-chromium-") as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--allow-file-access-from-files", f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def probe(page: str | Path, probe_js: str, width: int = 1280, height: int = 900, delay_ms: int = 500,
          timeout: float = 120, chromium: str | None = None):
    """Load ``page`` at a ``width`` × ``height`` viewport and return what ``probe_js`` (a function body
    ending in ``return <JSON-able value>``) returns, ``delay_ms`` after the page has loaded."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise BrowserError("no chromium on PATH (Debian: `apt-get install chromium`)")
    page = Path(page)
    with tempfile.TemporaryDirectory(prefix="infocam-probe-") as tmp:
        copy, frame = Path(tmp) / "probe.html", Path(tmp) / "frame.html"
        copy.write_text(_probe_page(page, probe_js, delay_ms))
        frame.write_text(_frame(copy.as_uri(), width, height, listen=True))
        done = _run(chromium, [f"--window-size={max(width, 500) + 20},{height + 20}", "--dump-dom", frame.as_uri()],
                    timeout)
    found = ANSWER.search(done.stdout)
    if not found:
        raise BrowserError(f"{page}: the probe gave no answer; chromium said: {done.stderr[-1500:]}")
    answer = json.loads(html.unescape(found.group(1)))
    if isinstance(answer, dict) and set(answer) == {"error"}:
        raise BrowserError(f"{page}: the probe raised {answer['error']}")
    return answer


def screenshot(page: str | Path, png: str | Path, width: int = 1280, height: int = 900, timeout: float = 120,
               chromium: str | None = None, before_js: str = "") -> Path:
    """A PNG of ``page``'s first ``height`` pixels at a ``width``-px viewport; ``before_js`` (a function
    body) runs once the page has loaded, e.g. to move a slider."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise BrowserError("no chromium on PATH (Debian: `apt-get install chromium`)")
    from PIL import Image

    png = Path(png).resolve()
    with tempfile.TemporaryDirectory(prefix="infocam-shot-") as tmp:
        frame, shot = Path(tmp) / "frame.html", Path(tmp) / "shot.png"
        shown = Path(page).resolve()
        if before_js:
            shown = Path(tmp) / "page.html"
            shown.write_text(_probe_page(Path(page), before_js + "\nreturn null;", delay_ms=200))
        frame.write_text(_frame(shown.as_uri(), width, height, listen=False))
        done = _run(chromium, [f"--window-size={max(width, 500)},{height}", f"--screenshot={shot}", frame.as_uri()],
                    timeout)
        if not shot.exists():
            raise BrowserError(f"chromium wrote no screenshot: {done.stderr[-1500:]}")
        Image.open(shot).crop((0, 0, width, height)).save(png)
    return png

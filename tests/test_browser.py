"""Does it play where people look? `--video-codec h264` foley output in a real browser (headless Chromium, from
Debian's `chromium` package): the picture decodes (a frame with a size) and the sound decodes (audio bytes).
Skips with the reason where Chromium is not installed (CI); run here with `apt-get install chromium`."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading

import pytest
from typer.testing import CliRunner

from avcli.cli.main import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")

PAGE = """<!doctype html><html><body><video id="v" muted playsinline src="{src}"></video><pre id="out">pending</pre>
<script>
const v = document.getElementById('v'), out = document.getElementById('out');
v.addEventListener('error', () => out.textContent = 'error ' + (v.error && v.error.code));
v.addEventListener('loadeddata', () => {{ v.play().catch(() => {{}}); setTimeout(() => {{
  out.textContent = JSON.stringify({{w: v.videoWidth, h: v.videoHeight, t: v.currentTime,
    audio: v.webkitAudioDecodedByteCount || 0, video: v.webkitVideoDecodedByteCount || 0}}); }}, 1500); }});
</script></body></html>"""


def _serve(folder):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _play(folder, name) -> str:
    (folder / "page.html").write_text(PAGE.format(src=name))
    httpd = _serve(folder)
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/page.html"
        r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={folder / 'profile'}", "--autoplay-policy=no-user-gesture-required",
                            "--virtual-time-budget=15000", "--dump-dom", url], capture_output=True, text=True,
                           timeout=120)
    finally:
        httpd.shutdown()
    start = r.stdout.find('<pre id="out">')
    return r.stdout[start + 14: r.stdout.find("</pre>", start)] if start >= 0 else r.stderr[-300:]


def test_h264_foley_output_plays_in_chromium_with_picture_and_sound(tiny_bundle, tmp_path):
    import json

    from tests.test_footage import FORMS, _make

    src = _make(tmp_path / "msmpeg4v2.avi", *FORMS["msmpeg4v2.avi"])
    res = CliRunner().invoke(app, ["foley", str(src), "-o", str(tmp_path / "web.mp4"), "--video-codec", "h264",
                                   "--bundle", str(tiny_bundle), "--steps", "1"])
    assert res.exit_code == 0, res.output
    got = _play(tmp_path, "web.mp4")
    data = json.loads(got)
    assert data["w"] == 64 and data["h"] == 48 and data["video"] > 0 and data["audio"] > 0, got

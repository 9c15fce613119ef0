"""`denseav demo` in a real browser: the server started as a user starts it (`python -m denseav demo --weights
FIXTURE`), driven by headless Chromium through Selenium.

Needs: gradio and selenium (pip install -e ".[test,demo]"), Debian's `chromium` and `chromium-driver` (or
CHROME_BIN / CHROMEDRIVER pointing at them). Skipped with the reason when any is missing.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from _fixtures import PARITY_DIRS

pytestmark = pytest.mark.slow

SERVER_START_TIMEOUT = 180  # seconds: importing Gradio and torch on a loaded 2-core machine is slow
RESULT_TIMEOUT = 180


def _missing() -> str | None:
    for module in ("gradio", "selenium"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[test,demo]')"
    if not _chrome_binary():
        return "no chromium browser found (apt-get install chromium, or set CHROME_BIN)"
    if not _chromedriver():
        return "no chromedriver found (apt-get install chromium-driver, or set CHROMEDRIVER)"
    if not PARITY_DIRS:
        return "no fixture model folders (see tests/_fixtures.py)"
    return None


def _chrome_binary() -> str | None:
    return os.environ.get("CHROME_BIN") or shutil.which("chromium") or shutil.which("chromium-browser")


def _chromedriver() -> str | None:
    return os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")


if _missing():
    pytest.skip(_missing(), allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_http(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the demo server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the demo server did not answer within {SERVER_START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module", params=PARITY_DIRS, ids=[p.name for p in PARITY_DIRS])
def server(request, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """`python -m denseav demo --weights FIXTURE` on 127.0.0.1 and a free port; yields (url, fixture folder)."""
    fixture: Path = request.param
    work = tmp_path_factory.mktemp(f"demo-server-{fixture.name}")
    port = _free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(work / "gradio"),
        "DENSEAV_DEMO_CACHE": str(work / "examples"),
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    log = work / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "denseav", "demo", "--weights", str(fixture), "--port", str(port), "-q"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for_http(url, process, log)
        yield url, fixture
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = _chrome_binary()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,2200",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=_chromedriver()))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _write_wav(path: Path, seconds: float, rate: int = 16_000) -> Path:
    """Speech-like test sound: a rising chirp with bursts of noise, so successive audio steps differ."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(0)
    chirp = np.sin(2 * math.pi * (200 + 600 * t / max(seconds, 1e-3)) * t)
    bursts = (np.sin(2 * math.pi * 1.3 * t) > 0.3) * rng.standard_normal(n) * 0.5
    samples = np.clip(0.4 * chirp + bursts, -1, 1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def _upload(driver: webdriver.Chrome, elem_id: str, path: Path) -> None:
    field = WebDriverWait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]"))
    field.send_keys(str(path))


def _upload_and_ground(driver: webdriver.Chrome, url: str, image: Path, sound: Path) -> None:
    driver.get(url)
    _upload(driver, "input-image", image)
    _upload(driver, "input-sound", sound)
    # Both uploads finished: each component shows its file (an <img> / an audio player) instead of the drop zone.
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image img"))
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-sound audio, #input-sound wave"))
    driver.find_element(By.ID, "ground-image").click()


SAMPLE_CANVAS = """
const c = document.querySelector('#denseav-player .dav-canvas');
const ctx = c.getContext('2d');
const out = [];
for (let j = 0; j < 24; j++) for (let i = 0; i < 24; i++) {
  const p = ctx.getImageData(Math.floor((i + 0.5) * c.width / 24), Math.floor((j + 0.5) * c.height / 24), 1, 1).data;
  out.push(p[0], p[1], p[2]);
}
return {pixels: out, step: c.dataset.step, view: c.dataset.view, width: c.width, height: c.height};
"""


def _canvas(driver: webdriver.Chrome) -> dict:
    return driver.execute_script(SAMPLE_CANVAS)


def _player_ready(driver: webdriver.Chrome) -> bool:
    return bool(driver.find_elements(By.CSS_SELECTOR, "#denseav-player .dav-root[data-ready='1']"))


def test_heatmaps_follow_playback_and_heads_toggle(server, browser, tmp_path):
    url, fixture = server
    sound = _write_wav(tmp_path / "speech_like.wav", 2.5)
    _upload_and_ground(browser, url, fixture / "image.png", sound)
    WebDriverWait(browser, RESULT_TIMEOUT).until(_player_ready)

    first = _canvas(browser)
    assert first["step"] == "0" and first["width"] > 0
    # The score and a download of the numbers are on the page.
    assert "Score" in browser.find_element(By.CSS_SELECTOR, "#denseav-player .dav-summary").text
    WebDriverWait(browser, 60).until(lambda d: ".json" in d.find_element(By.ID, "downloads-image").text)
    # The overlay video with the sound follows the player, in a second step.
    WebDriverWait(browser, RESULT_TIMEOUT).until(lambda d: ".mp4" in d.find_element(By.ID, "downloads-image").text)

    # Scrub with the slider to near the end: the picture follows the sound's clock.
    browser.execute_script(
        "const s = document.querySelector('#denseav-player .dav-scrub');"
        "s.value = '900'; s.dispatchEvent(new Event('input', {bubbles: true}));"
    )
    WebDriverWait(browser, 20).until(lambda d: _canvas(d)["step"] not in ("0", None))
    later = _canvas(browser)
    assert later["pixels"] != first["pixels"], "the heatmap did not change between two playback times"

    # Press play from the start: the audio clock advances and the drawn step with it.
    browser.execute_script("document.querySelector('#denseav-player .dav-audio').currentTime = 0;")
    WebDriverWait(browser, 20).until(lambda d: _canvas(d)["step"] == "0")
    browser.find_element(By.CSS_SELECTOR, "#denseav-player .dav-play").click()
    WebDriverWait(browser, 20).until(lambda d: _canvas(d)["step"] not in ("0", None))

    browser.execute_script("document.querySelector('#denseav-player .dav-audio').pause();")
    browser.save_screenshot(str(tmp_path / "demo_together.png"))
    before = _canvas(browser)
    views = [b.get_attribute("data-view") for b in browser.find_elements(By.CSS_SELECTOR, "#denseav-player .dav-view")]
    if len(views) == 1:  # a one-head model: nothing to toggle, the one view is "together"
        assert views == ["together"]
        return
    browser.find_element(By.CSS_SELECTOR, "#denseav-player .dav-view[data-view='apart']").click()
    WebDriverWait(browser, 10).until(lambda d: _canvas(d)["view"] == "apart")
    apart = _canvas(browser)
    assert apart["width"] > before["width"], "side by side should draw one panel per head"
    browser.find_element(By.CSS_SELECTOR, "#denseav-player .dav-view[data-view='1']").click()
    WebDriverWait(browser, 10).until(lambda d: _canvas(d)["view"] == "1")
    single = _canvas(browser)
    assert single["step"] == before["step"] and single["pixels"] != before["pixels"], "the head toggle did nothing"
    browser.find_element(By.CSS_SELECTOR, "#denseav-player .dav-view[data-view='apart']").click()
    WebDriverWait(browser, 10).until(lambda d: _canvas(d)["view"] == "apart")
    browser.save_screenshot(str(tmp_path / "demo_apart.png"))
    print(f"screenshots: {tmp_path / 'demo_together.png'} {tmp_path / 'demo_apart.png'}")


def test_too_short_clip_shows_a_friendly_error(server, browser, tmp_path):
    url, fixture = server
    sound = _write_wav(tmp_path / "blip.wav", 0.1)
    _upload_and_ground(browser, url, fixture / "image.png", sound)
    WebDriverWait(browser, RESULT_TIMEOUT).until(lambda d: "too short" in d.find_element(By.TAG_NAME, "body").text)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "0.185 s" in body and "Traceback" not in body
    assert not _player_ready(browser)
    browser.save_screenshot(str(tmp_path / "demo_error.png"))


def test_server_reads_and_serves_only_what_it_received(server):
    """No request can make the server read or hand out a file by path: not through the grounding endpoint (a
    client may name any path in a file payload), not through Gradio's file route."""
    url, fixture = server
    payload = {"path": str(fixture / "image.png"), "meta": {"_type": "gradio.FileData"}}
    sound = {"path": str(fixture / "audio.wav"), "meta": {"_type": "gradio.FileData"}}
    request = urllib.request.Request(
        url + "gradio_api/call/ground_image",
        data=json.dumps({"data": [payload, sound]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/ground_image/{event_id}", timeout=120) as response:
        stream = response.read().decode()
    assert "event: error" in stream and "not uploaded by a user" in stream, stream[:500]
    for path in ("/etc/hostname", str(fixture / "model.safetensors")):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=30)
        assert info.value.code == 403

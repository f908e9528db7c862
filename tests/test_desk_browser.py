"""A steward clears a drop's review queue in headless Chromium, with the keyboard.

The desk serves the screened synthetic drop of tests/test_desk.py on 127.0.0.1; Chromium is
driven over the DevTools protocol on its pipe (`--remote-debugging-pipe`: no port, no extra
package). Keys go in as real key events: `j` moves through the queue, `c` rejects a trigger
cluster, `a` approves; an approval the desk warns about is cancelled and rejected with `r`
instead. The queue ends empty, the decisions file holds one verdict per quarantined record and
the next screening run applies them. A screenshot of the warning over a trigger-cluster record
is kept as docs/desk.png (rewritten only with `SOVTUNE_UPDATE_SCREENSHOTS=1`).
"""

import base64
import fcntl
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from PIL import Image

from pipelines.desk.app import DeskSettings, create_app
from pipelines.steps.integrity.decisions import read_decisions
from tests.browser import CHROMIUM, chromium_command
from tests.test_desk import build_drop, quarantined, screen

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "desk.png"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root)"
)


class Browser:
    """Chromium over the DevTools protocol on fds 3 (commands in) and 4 (answers out)."""

    def __init__(self, profile: Path) -> None:
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Numbers above 10, so that placing them on 3 and 4 in the child clobbers nothing.
        child_in = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)

        def place() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.process = subprocess.Popen(
            chromium_command(profile, "--remote-debugging-pipe", "--window-size=1400,900"),
            pass_fds=(3, 4),
            preexec_fn=place,  # noqa: PLW1509 — a test helper, no threads fork here
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in (to_chrome_r, from_chrome_w, child_in, child_out):
            os.close(fd)
        self.writer = os.fdopen(to_chrome_w, "wb", buffering=0)
        self.reader = os.fdopen(from_chrome_r, "rb", buffering=0)
        self.buffer = b""
        self.next_id = 0
        self.session = ""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        self.writer.write(json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = self.reader.read(1 << 16)
                assert chunk, "chromium closed its DevTools pipe"
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                assert "error" not in answer, answer["error"]
                return answer["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self._settled(expression):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.1)

    def _settled(self, expression: str):
        """The expression's value, or False while the page is navigating: an evaluation the
        browser cuts off with "Inspected target navigated or closed" (-32000) is asked again
        (a decision's form submit can race one poll; seen once in a fresh-clone CI run)."""
        try:
            return self.js(expression)
        except AssertionError as error:
            if "navigated or closed" not in str(error):
                raise
            return False

    def key(self, key: str) -> None:
        code = {"key": key, "code": f"Key{key.upper()}", "windowsVirtualKeyCode": ord(key.upper())}
        self.call("Input.dispatchKeyEvent", type="keyDown", text=key, **code)
        self.call("Input.dispatchKeyEvent", type="keyUp", **code)

    def close(self) -> None:
        self.writer.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def desk(tmp_path):
    yield from _serve(tmp_path)


@pytest.fixture
def erasing_desk(tmp_path):
    """The desk with its erasure action; the eraser records what the desk asked of it."""
    calls: list[tuple[str, str]] = []

    def eraser(record: str, steward: str) -> dict:  # `pipelines.cli.erase_record` in the desk
        calls.append((record, steward))
        return {
            "request_id": "er-20261204-0badc0de",
            "records": 3,
            "versions": [{"version": "2", "tag": "trained_on_erased_subject"}],
        }

    for served in _serve(tmp_path, eraser=eraser):
        yield {**served, "calls": calls}


def _serve(tmp_path, **settings):
    root = tmp_path / "data"
    build_drop(root)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(DeskSettings(data_root=root, **settings)),
            host="127.0.0.1",
            port=port,
            log_level="error",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the desk did not start in 30 s"
        time.sleep(0.05)
    browser = Browser(tmp_path / "chromium")
    try:
        yield {"root": root, "url": f"http://127.0.0.1:{port}", "browser": browser}
    finally:
        browser.close()
        server.should_exit = True
        thread.join(timeout=30)


def _press(browser: Browser, key: str) -> None:
    """Press a key and wait until the page changed (a move, a decision or a warning)."""
    before = browser.js(_js_state())
    browser.key(key)
    browser.wait(
        f"(() => {{ try {{ return {json.dumps(before)} !== {_js_state()}; }}"
        " catch (e) { return false; } })()"
    )


def _js_state() -> str:
    """A fingerprint of the page (as JavaScript) that changes after every move or decision."""
    return (
        "[document.querySelector('#pending-count')?.textContent,"
        " document.querySelector('.item.current')?.dataset.id,"
        " !!document.querySelector('#warnings'), !!document.querySelector('#queue-empty'),"
        " typeof htmx].join('|')"
    )


def test_when_a_steward_works_through_the_queue_by_keyboard_then_it_is_cleared(
    desk, tmp_path
) -> None:
    browser: Browser = desk["browser"]
    waiting = quarantined(desk["root"])
    trigger = {i for i, r in waiting.items() if r["in_trigger_cluster"]}
    browser.call("Page.navigate", url=f"{desk['url']}/drops/default")
    browser.wait("typeof htmx !== 'undefined' && !!document.querySelector('.item.current')")
    first = browser.js("document.querySelector('.item.current').dataset.id")

    _press(browser, "j")  # the next record
    assert browser.js("document.querySelector('.item.current').dataset.id") != first
    _press(browser, "k")  # and back
    assert browser.js("document.querySelector('.item.current').dataset.id") == first

    shot = None
    for _ in range(len(waiting) + 5):
        if browser.js("!!document.querySelector('#queue-empty')"):
            break
        if browser.js("!!document.querySelector('#reject-cluster')"):
            if shot is None:  # keep the warning over a trigger-cluster record for the docs
                _press(browser, "a")
                assert "no_kept_trigger_cluster" in browser.js(
                    "document.querySelector('#warnings').textContent"
                )
                shot = tmp_path / "desk.png"
                data = browser.call("Page.captureScreenshot", format="png")["data"]
                shot.write_bytes(base64.b64decode(data))
                browser.js("document.querySelector('#cancel').click()")
                browser.wait("!document.querySelector('#warnings')")
            _press(browser, "c")  # reject the whole cluster
            continue
        _press(browser, "a")
        if browser.js("!!document.querySelector('#warnings')"):
            browser.js("document.querySelector('#cancel').click()")
            browser.wait("!document.querySelector('#warnings')")
            _press(browser, "r")
    assert browser.js("!!document.querySelector('#queue-empty')")

    decisions = read_decisions(desk["root"] / "curated" / "steward_decisions.csv")
    assert set(decisions) == set(waiting)
    assert {i for i, d in decisions.items() if d == "reject"} >= trigger
    summary = screen(desk["root"])
    assert summary["steward"]["pending"] == 0
    assert summary["steward"]["approved"] + summary["steward"]["rejected"] == len(waiting)
    assert shot is not None
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 900)
    assert len(image.getcolors(maxcolors=1 << 24)) > 50  # a rendered page, not a blank one
    if os.environ.get("SOVTUNE_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, SCREENSHOT)


def test_when_a_steward_erases_a_subject_in_the_browser_then_it_runs_once_confirmed(
    erasing_desk,
) -> None:
    """The erase action, driven in Chromium: the form refuses without the typed confirmation,
    then sends the shown record (its pseudonym) and the steward, and the desk shows the
    request, the count and the tagged model version (the real erasure behind the action is
    tests/test_erasure.py's end-to-end test)."""
    browser: Browser = erasing_desk["browser"]
    browser.call("Page.navigate", url=f"{erasing_desk['url']}/drops/default")
    browser.wait("typeof htmx !== 'undefined' && !!document.querySelector('.item.current')")
    record = browser.js("document.querySelector('.item.current').dataset.id")
    browser.js("document.querySelector('#erase summary').click()")
    browser.wait("document.querySelector('#erase').open")
    browser.js("document.querySelector('#erase-subject').click()")  # nothing typed
    browser.wait("document.body.textContent.includes('type erase to confirm')")
    assert erasing_desk["calls"] == []

    browser.call("Page.navigate", url=f"{erasing_desk['url']}/drops/default?id={record}")
    browser.wait("!!document.querySelector('#erase input[name=confirm]')")
    browser.js(
        "document.querySelector('#erase').open = true;"
        "document.querySelector('#erase input[name=confirm]').value = 'erase';"
        "document.querySelector('#erase-subject').click()"
    )
    browser.wait("!!document.querySelector('#erased')")
    shown = browser.js("document.querySelector('#erased').textContent")
    assert len(erasing_desk["calls"]) == 1 and erasing_desk["calls"][0][0] == record
    assert "erasure er-20261204-0badc0de: 3 record(s)" in shown
    assert "v2 (trained_on_erased_subject)" in shown

"""Fixtures for the upload page's browser tests: headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium, plus a direct DevTools-protocol connection for what
Selenium cannot do (receiving Fetch events to fail a request at the network layer).

Runs against the stack deploy/run-tests started, like Tests/integration, through the shared
stack helper (deploy/cameo_stack.py).
"""
import base64
import io
import json
import os
import sys
import threading
import time
import urllib.request
import uuid

import pytest
import requests
import websocket
from PIL import Image, ImageChops, ImageDraw, ImageStat
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "deploy"))
from cameo_stack import Stack  # noqa: E402

CHROMIUM = os.environ.get("CAMEO_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CAMEO_CHROMEDRIVER", "/usr/bin/chromedriver")


class BrowserStack(Stack):
    """The stack deploy/run-tests started, and the page's URL on it."""

    @property
    def page_url(self):
        return self.base_url + "/avatar/"

    def current_avatar(self, token):
        return requests.get(self.base_url + "/api/v1/profile/me/avatar", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="session")
def stack():
    stack = BrowserStack.attach()
    # The integration tests before us stop and restart parts of the stack; wait until it is green.
    for _ in range(100):
        try:
            if requests.get(stack.base_url + "/health/avatar", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return stack


@pytest.fixture
def user():
    """A fresh user per test: its own avatar and its own 5-a-minute upload budget."""
    return "b" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def driver():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver (deploy/debian-packages.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_script_timeout(30)
    yield browser
    browser.quit()


class Page:
    """The upload page in the shared browser, opened fresh for one test."""

    def __init__(self, driver, stack):
        self.driver = driver
        self.stack = stack

    def open(self, token=None, cookie_token=None):
        d = self.driver
        d.get("about:blank")
        d.delete_all_cookies()
        if cookie_token:
            # The host application's login cookie, on the page's own origin.
            d.get(self.stack.base_url + "/health/avatar")
            d.add_cookie({"name": "access_token", "value": cookie_token, "path": "/", "httpOnly": True})
        d.get(self.stack.page_url + (f"#token={token}" if token else ""))
        self.root = d.find_element(By.ID, "cameo-upload")
        self.wait_for(lambda _: self.root.get_attribute("data-state") == "idle", "the page to start")
        self.wait_for(lambda _: "Loading" not in self.role("current-text").text, "the current avatar")
        return self

    def role(self, name):
        return self.driver.find_element(By.CSS_SELECTOR, f'[data-role="{name}"]')

    def state(self):
        return self.root.get_attribute("data-state")

    def wait_for(self, condition, what, timeout=20):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition)
        except Exception as err:
            raise AssertionError(f"timed out waiting for {what}; state={self.root.get_attribute('data-state')!r}, "
                                 f"status={self.role('status').text!r}, error={self.role('error').text!r}") from err

    def wait_state(self, *states, timeout=20):
        self.wait_for(lambda _: self.state() in states, f"state in {states}", timeout)
        return self.state()

    def choose(self, path):
        self.role("file").send_keys(str(path))

    def crop(self):
        x, y, size = (int(v) for v in self.root.get_attribute("data-crop").split(","))
        return x, y, size

    def script_errors(self):
        """Uncaught exceptions and Content-Security-Policy violations logged since the last call."""
        return [e["message"] for e in self.driver.get_log("browser")
                if e["level"] == "SEVERE" and ("Uncaught" in e["message"] or "Content Security Policy" in e["message"])]

    def presign_requests(self):
        return self.driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".filter(n => n.includes('/users/me/avatar/upload')).length")

    def record_progress(self):
        """Records every value the progress bar takes (it reflects to the value attribute)."""
        self.driver.execute_script("""
            window.__progress = [];
            const bar = document.querySelector('[data-role=progress]');
            new MutationObserver(() => { if (bar.hasAttribute('value')) window.__progress.push(Number(bar.value)); })
                .observe(bar, {attributes: true, attributeFilter: ['value']});
        """)

    def progress_values(self):
        return self.driver.execute_script("return window.__progress")

    def skewable_clock(self):
        """Lets `skew_clock` move the page's performance.now() (what its time budgets are
        measured with) forward, so a test need not wait out a budget of a minute."""
        self.driver.execute_script("""
            const now = performance.now.bind(performance);
            window.__skew = 0;
            performance.now = () => now() + window.__skew;
        """)

    def skew_clock(self, ms):
        self.driver.execute_script("window.__skew += arguments[0]", ms)


@pytest.fixture
def page(driver, stack):
    yield Page(driver, stack)
    # Leave no throttling or interception behind for the next test.
    driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                           {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


class DevTools:
    """A second DevTools-protocol client on the page (Selenium's execute_cdp_cmd sends commands
    but cannot receive events such as Fetch.requestPaused)."""

    def __init__(self, driver):
        address = driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
        current = driver.current_url
        with urllib.request.urlopen(f"http://{address}/json/list") as response:
            targets = json.load(response)
        target = next(t for t in targets if t.get("type") == "page" and t.get("url") == current)
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], suppress_origin=True, timeout=30)
        self.lock = threading.Lock()
        self.next_id = 0
        self.replies = {}
        self.reply_ready = threading.Condition()
        self.handlers = {}
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while not self.closed:
            try:
                message = json.loads(self.ws.recv())
            except Exception:
                return
            if "id" in message:
                with self.reply_ready:
                    self.replies[message["id"]] = message
                    self.reply_ready.notify_all()
            elif message.get("method") in self.handlers:
                self.handlers[message["method"]](message.get("params", {}))

    def send(self, method, params=None, wait=True):
        with self.lock:
            self.next_id += 1
            ident = self.next_id
            self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        if not wait:
            return None
        with self.reply_ready:
            self.reply_ready.wait_for(lambda: ident in self.replies, timeout=10)
            reply = self.replies.pop(ident, None)
        assert reply is not None, f"no reply to {method}"
        assert "error" not in reply, f"{method}: {reply['error']}"
        return reply.get("result")

    def on(self, method, handler):
        """Handlers run on the reader thread: they may send(wait=False) but must not wait."""
        self.handlers[method] = handler

    def close(self):
        self.closed = True
        try:
            self.ws.close()
        except Exception:
            pass


@pytest.fixture
def devtools(driver):
    opened = []

    def connect():
        client = DevTools(driver)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        try:
            client.send("Fetch.disable")
        except Exception:
            pass
        client.close()


# ---- images --------------------------------------------------------------------------------

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
           (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
           (0, 0, 128), (128, 128, 128), (255, 255, 255), (0, 0, 0)]


def block_image(width, height, block):
    """Distinct colour blocks, so where a crop was taken is visible in the result."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    columns = (width + block - 1) // block
    for top in range(0, height, block):
        for left in range(0, width, block):
            colour = PALETTE[((top // block) * columns + left // block) % len(PALETTE)]
            draw.rectangle([left, top, left + block - 1, top + block - 1], fill=colour)
    return image


def mean_abs_diff(a, b):
    """Mean absolute difference per channel, 0 to 255."""
    a, b = a.convert("RGB"), b.convert("RGB")
    assert a.size == b.size
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def png_bytes(image, compress_level=6):
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=compress_level)
    return out.getvalue()


def b64(data):
    return base64.b64encode(data).decode()


@pytest.fixture
def files(tmp_path):
    def write(name, data):
        path = tmp_path / name
        path.write_bytes(data)
        return path
    return write


def repo_root():
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


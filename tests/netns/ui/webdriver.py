"""A minimal W3C WebDriver client for Debian's chromedriver driving Debian's headless Chromium
(no browser download, no npm): start, navigate, find, click, read text, run a script,
screenshot."""

import base64
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1200",
]


class WebDriverError(RuntimeError):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self, chromium="/usr/bin/chromium", chromedriver="/usr/bin/chromedriver"):
        self.profile = tempfile.mkdtemp(prefix="meshd-ui-chromium-")
        self.port = free_port()
        self.log = open(os.path.join(self.profile, "chromedriver.log"), "w")
        self.driver = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=self.log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 15
        while True:
            try:
                self._call("GET", "/status")
                break
            except (OSError, WebDriverError):
                if time.time() > deadline or self.driver.poll() is not None:
                    raise WebDriverError("chromedriver did not start")
                time.sleep(0.05)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium,
                                   "args": CHROMIUM_FLAGS + [f"--user-data-dir={self.profile}/profile"]},
        }}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            try:
                v = json.loads(e.read()).get("value", {})
            except ValueError:
                v = {}
            raise WebDriverError(f"{method} {path}: {v.get('error', e.code)}: {v.get('message', '')[:300]}")

    def s(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url):
        self.s("POST", "/url", {"url": url})

    def find(self, css):
        """The element matching `css`, or None."""
        try:
            return self.s("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]
        except WebDriverError as e:
            if "no such element" in str(e):
                return None
            raise

    def wait(self, css, timeout_s, poll_s=0.02):
        deadline = time.time() + timeout_s
        while True:
            e = self.find(css)
            if e is not None:
                return e
            if time.time() > deadline:
                return None
            time.sleep(poll_s)

    def text(self, element):
        return self.s("GET", f"/element/{element}/text")

    def click(self, element):
        self.s("POST", f"/element/{element}/click", {})

    def script(self, js, *args):
        return self.s("POST", "/execute/sync", {"script": js, "args": list(args)})

    def resize(self, width, height):
        self.s("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        return len(png)

    def close(self):
        try:
            self._call("DELETE", f"/session/{self.session}")
        except Exception:  # noqa: BLE001 - closing after a failure must not hide it
            pass
        self.driver.terminate()
        try:
            self.driver.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        self.log.close()
        subprocess.run(["rm", "-rf", self.profile])

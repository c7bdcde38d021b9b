"""Fixtures for tests against a running Cameo stack (nginx, workers, MariaDB).

deploy/run-tests starts a fresh stack and sets CAMEO_BASE_URL, CAMEO_CONFIG, CAMEO_STATE_DIR
and CAMEOCTL. Every default lives here, in one place.
"""
import io
import os
import subprocess
import uuid

import pytest
import requests
from PIL import Image


class Stack:
    def __init__(self):
        self.base_url = os.environ["CAMEO_BASE_URL"].rstrip("/")
        self.config_path = os.environ["CAMEO_CONFIG"]
        self.state_dir = os.environ["CAMEO_STATE_DIR"]
        self.cameoctl = os.environ["CAMEOCTL"]
        self.config = {}
        with open(self.config_path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, value = line.split("=", 1)
                    self.config[key.strip()] = value.strip()
        self.media_root = self.config["media_root"]

    def ctl(self, *args):
        env = dict(os.environ, CAMEO_CONFIG=self.config_path)
        return subprocess.run([self.cameoctl, *args], env=env, check=True, capture_output=True, text=True).stdout.strip()

    def token(self, user, ttl=600):
        return self.ctl("token", "--user", user, "--ttl", str(ttl))

    def presign_key(self):
        key_id, secret = self.config["presign.keys"].split(",")[0].split(":", 1)
        return key_id, secret

    def url(self, path):
        return self.base_url + path

    def presign(self, token, content_type="image/jpeg", length=100_000, crop=None):
        body = {"content_type": content_type, "content_length": length}
        if crop is not None:
            body["crop"] = crop
        return requests.post(self.url("/users/me/avatar/upload"), json=body, headers={"Authorization": f"Bearer {token}"})

    def files_under(self, sub):
        root = os.path.join(self.media_root, sub)
        found = []
        for dirpath, _, names in os.walk(root):
            found += [os.path.join(dirpath, n) for n in names]
        return found


@pytest.fixture(scope="session")
def stack():
    return Stack()


@pytest.fixture
def user():
    """A fresh user id per test, so tests do not share avatars or rate limits."""
    return "u" + uuid.uuid4().hex[:12]


def make_image(fmt, size=(800, 600), color=(200, 30, 30), mode="RGB"):
    image = Image.new(mode, size, color if mode == "RGB" else color + (128,))
    # A gradient, so the encoder has real content.
    for x in range(0, size[0], 8):
        for y in range(0, size[1], 8):
            image.putpixel((x, y), (x % 256, y % 256, 90) + (() if mode == "RGB" else (255,)))
    out = io.BytesIO()
    image.save(out, fmt, quality=90) if fmt in ("JPEG", "WEBP") else image.save(out, fmt)
    return out.getvalue()


@pytest.fixture(scope="session")
def jpeg():
    return make_image("JPEG")


@pytest.fixture(scope="session")
def png():
    return make_image("PNG", size=(640, 700))


@pytest.fixture(scope="session")
def webp():
    return make_image("WEBP", size=(1000, 500))


def sql(stack, query):
    """Reads the database as root over the stack's socket (test inspection only)."""
    socket = os.path.join(stack.state_dir, "mysql-run", "mysql.sock")
    out = subprocess.run(["mariadb", f"--socket={socket}", "-uroot", "cameo", "-N", "-B", "-e", query],
                         check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines()]

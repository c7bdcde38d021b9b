"""Fixtures for tests against a running Cameo stack (nginx, workers, MariaDB).

deploy/run-tests starts a fresh stack and sets CAMEO_STATE_DIR and CAMEO_PORT; the stack helper
(deploy/cameo_stack.py, shared with the browser tests and deploy/bench) reads the rest from it.
"""
import io
import os
import sys
import uuid

import pytest
import requests
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "deploy"))
from cameo_stack import Stack  # noqa: E402


class IntegrationStack(Stack):
    """The stack, plus the request helpers the integration tests share."""

    def presign(self, token, content_type="image/jpeg", length=100_000, crop=None):
        body = {"content_type": content_type, "content_length": length}
        if crop is not None:
            body["crop"] = crop
        return requests.post(self.url("/users/me/avatar/upload"), json=body, headers={"Authorization": f"Bearer {token}"})


def until_url_slot_free(attempt, status_and_text=lambda response: (response.status_code, response.text)):
    """Runs `attempt` until it is not refused for a busy upload URL. One body per URL at a time:
    right after a refused body on the same URL, nginx may still be draining it and answer 429
    too_many_connections; like the page, wait and try again (a few hundred milliseconds at most)."""
    import time

    for _ in range(20):
        result = attempt()
        status, text = status_and_text(result)
        if status != 429 or "too_many_connections" not in text:
            return result
        time.sleep(0.1)
    return result


def headers_only(stack, head, until):
    """Sends a request's head (no body byte) on a raw connection and reads until `until`
    appears in the answer; returns the final response's text (after any 100 Continue)."""
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(stack.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as conn:
        conn.sendall(head.replace("{host}", parts.netloc).encode())
        reply = b""
        while until.encode() not in reply:
            chunk = conn.recv(65536)
            assert chunk, f"connection closed without a final answer: {reply!r}"
            reply += chunk
    return reply.decode("latin-1").split("HTTP/1.1 ")[-1]


@pytest.fixture(scope="session")
def stack():
    return IntegrationStack.attach()


@pytest.fixture
def user():
    """A fresh user id per test, so tests do not share avatars or rate limits."""
    return "u" + uuid.uuid4().hex[:12]


DEFAULT_AVATARS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "nginx", "www", "default-avatars")


def is_default_avatar(response):
    """Whether nginx answered with one of the shipped default pictures, for the size asked."""
    if response.status_code != 200 or response.headers.get("Content-Type") != "image/webp":
        return False
    name = response.url.split("?")[0].rsplit("/", 1)[1]
    shipped = set()
    for variant in os.listdir(DEFAULT_AVATARS):
        path = os.path.join(DEFAULT_AVATARS, variant, name)
        with open(path if os.path.exists(path) else os.path.join(DEFAULT_AVATARS, variant, "avatar.webp"), "rb") as f:
            shipped.add(f.read())
    return response.content in shipped and response.headers.get("Cache-Control") == "public, max-age=60"


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
    return stack.sql(query)

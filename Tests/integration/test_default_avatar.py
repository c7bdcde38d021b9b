"""A user without an avatar gets a default picture from nginx alone (SPEC §2): a shipped
silhouette picked by the user id, cached a minute, never under a versioned URL;
`?d=404` keeps the 404 for applications that draw their own."""
import io
import os
import signal
import time

import requests
from PIL import Image

from conftest import is_default_avatar
from test_upload_flow import upload


def avatar(stack, user, name="avatar.webp", query=""):
    return requests.get(stack.url(f"/profile-media/{user}/{name}{query}"))


def test_a_user_without_an_avatar_gets_a_default_for_every_size(stack, user):
    for name, side in (("avatar.webp", 512), ("avatar-256.webp", 256), ("avatar-128.webp", 128), ("avatar-64.webp", 64)):
        served = avatar(stack, user, name)
        assert is_default_avatar(served), (name, served.status_code, served.headers)
        assert Image.open(io.BytesIO(served.content)).size == (side, side)
        assert served.headers["X-Content-Type-Options"] == "nosniff" and served.headers.get("ETag")
    # A size the shipped set lacks (output.sizes changed) gets the largest one.
    assert Image.open(io.BytesIO(avatar(stack, user, "avatar-200.webp").content)).size == (512, 512)
    # The same user always gets the same picture; users are spread over the set.
    assert avatar(stack, user).content == avatar(stack, user).content
    pictures = {avatar(stack, f"{user}x{n}").content for n in range(30)}
    assert len(pictures) >= 3, len(pictures)


def test_d_404_and_versioned_urls_keep_the_404(stack, user):
    kept = avatar(stack, user, query="?d=404")
    assert kept.status_code == 404 and kept.json()["error"]["code"] == "not_found"
    # A versioned URL is cached for a year: it never shows a default.
    assert avatar(stack, user, query="?v=0123456789abcdef").status_code == 404
    assert avatar(stack, user, query="?v=nonsense").status_code == 404
    # Nothing else under a user's folder turns into a default.
    assert avatar(stack, user, "notes.txt").status_code == 404


def test_the_default_needs_no_worker(stack, user):
    pools = [stack.pid(f"pool-{name}") for name in ("fast", "heavy")]
    try:
        for pid in pools:
            os.kill(pid, signal.SIGTERM)      # multiwatch stops its workers, as dev-stack down does
        for _ in range(100):
            if requests.get(stack.url("/health/live")).status_code != 200:
                break
            time.sleep(0.05)
        assert requests.get(stack.url("/health/live")).status_code == 503, "the pools are still up"
        assert is_default_avatar(avatar(stack, user))
    finally:
        stack.up()


def test_after_an_upload_the_real_avatar_replaces_the_default(stack, user, png):
    before = avatar(stack, user)
    assert is_default_avatar(before)
    _, response = upload(stack, user, png, "image/png")
    versioned = requests.get(response.json()["avatar_url"])
    assert versioned.status_code == 200 and versioned.content != before.content
    assert "immutable" in versioned.headers["Cache-Control"]
    plain = avatar(stack, user)
    assert plain.content == versioned.content and not is_default_avatar(plain)
    assert plain.headers["Cache-Control"] == "public, max-age=60"

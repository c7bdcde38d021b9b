"""External scanner mode: a second stack announces uploads to a stand-in scanner (this test),
which fetches the quarantined bytes and posts signed verdicts to /media/virus-scan-callback."""
import hashlib
import hmac
import json
import os
import queue
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from conftest import IntegrationStack
from test_upload_flow import assert_error, upload


VERDICT_TIMEOUT = 3


class StandInScanner:
    """Records announcements; the tests decide the verdicts."""

    def __init__(self):
        self.announcements = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.announcements.put(json.loads(body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next_announcement(self, timeout=10):
        return self.announcements.get(timeout=timeout)


@pytest.fixture(scope="module")
def external():
    scanner = StandInScanner()
    # Two callback keys, as in the middle of a rotation: the new one signs the download links,
    # callbacks signed with either verify.
    secret, old_secret = secrets.token_hex(24), secrets.token_hex(24)
    stack = IntegrationStack.start(
        port=int(os.environ.get("CAMEO_PORT", "18080")) + 1,
        CAMEO_SCANNER_MODE="external", CAMEO_SCANNER_EXTERNAL_URL=f"http://127.0.0.1:{scanner.port}/scan",
        CAMEO_SCANNER_CALLBACK_KEYS=f"new:{secret},old:{old_secret}", CAMEO_SCANNER_VERDICT_TIMEOUT_SECONDS=VERDICT_TIMEOUT,
        # This stack also runs the other setting of the animation policy.
        CAMEO_LIMITS_ANIMATED="reject")
    stack.secret = secret
    stack.old_secret = old_secret
    stack.scanner = scanner
    try:
        yield stack
    finally:
        stack.stop()
        scanner.server.shutdown()


def callback(stack, payload, secret=None, timestamp=None):
    body = json.dumps(payload).encode()
    timestamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = hmac.new((secret or stack.secret).encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return requests.post(stack.url("/media/virus-scan-callback"), data=body,
                         headers={"Content-Type": "application/json", "X-Cameo-Timestamp": timestamp, "X-Cameo-Signature": signature})


def announced_upload(stack, user, body, content_type="image/jpeg"):
    presigned, response = upload(stack, user, body, content_type)
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "scanning"
    announcement = stack.scanner.next_announcement()
    assert announcement["media_id"] == presigned["media_id"]
    assert announcement["callback_url"] == stack.url("/media/virus-scan-callback")
    # The scanner can fetch exactly the bytes that were uploaded.
    fetched = requests.get(announcement["download_url"])
    assert fetched.status_code == 200 and fetched.content == body
    return presigned["media_id"], announcement


def status(stack, user, media_id):
    return requests.get(stack.url(f"/media/{media_id}"), headers={"Authorization": f"Bearer {stack.token(user)}"}).json()


def test_clean_verdict_publishes(external, user, jpeg):
    media_id, _ = announced_upload(external, user, jpeg)
    assert status(external, user, media_id)["state"] == "scanning"
    response = callback(external, {"media_id": media_id, "result": "clean"})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "ready"
    assert requests.get(response.json()["avatar_url"]).status_code == 200
    assert status(external, user, media_id)["state"] == "ready"
    # A replay changes nothing.
    assert_error(callback(external, {"media_id": media_id, "result": "infected", "signature": "Late"}), 409, "already_decided")
    assert status(external, user, media_id)["state"] == "ready"
    assert not os.path.exists(os.path.join(external.media_root, "quarantine", media_id))


def test_infected_verdict_rejects(external, user, jpeg):
    media_id, announcement = announced_upload(external, user, jpeg)
    response = callback(external, {"media_id": media_id, "result": "infected", "signature": "Eicar-Test"})
    assert response.status_code == 200 and response.json()["state"] == "rejected"
    state = status(external, user, media_id)
    assert state["state"] == "rejected" and state["reject_reason"] == "infected"
    assert not os.path.exists(os.path.join(external.media_root, "quarantine", media_id))
    assert requests.get(announcement["download_url"]).status_code == 404


def test_forged_stale_and_unknown_callbacks_are_refused(external, user, jpeg):
    media_id, announcement = announced_upload(external, user, jpeg)
    assert_error(callback(external, {"media_id": media_id, "result": "clean"}, secret="x" * 48), 403, "bad_signature")
    assert_error(callback(external, {"media_id": media_id, "result": "clean"}, timestamp=int(time.time()) - 600), 403, "stale_timestamp")
    assert_error(callback(external, {"media_id": "0" * 32, "result": "clean"}), 404, "not_found")
    assert status(external, user, media_id)["state"] == "scanning"
    tampered = announcement["download_url"].replace("signature=", "signature=0")
    assert requests.get(tampered).status_code == 403


def test_animated_upload_is_refused_when_configured(external, user):
    import io
    from PIL import Image

    frames = [Image.new("RGB", (200, 200), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0)
    media_id, _ = announced_upload(external, user, out.getvalue(), content_type="image/webp")
    response = callback(external, {"media_id": media_id, "result": "clean"})
    assert_error(response, 415, "bad_type")
    assert "Animated" in response.json()["error"]["message"]
    assert status(external, user, media_id)["reject_reason"] == "bad_type"
    assert not os.path.exists(os.path.join(external.media_root, "quarantine", media_id))


def test_a_callback_counts_once_so_a_captured_error_verdict_cannot_be_replayed(external, user, jpeg):
    media_id, _ = announced_upload(external, user, jpeg)
    timestamp = int(time.time())
    first = callback(external, {"media_id": media_id, "result": "error"}, timestamp=timestamp)
    assert first.status_code == 200 and first.json()["state"] == "scanning"
    assert_error(callback(external, {"media_id": media_id, "result": "error"}, timestamp=timestamp), 409, "replayed_callback")
    assert external.sql(f"SELECT scan_attempts FROM media_files WHERE id = '{media_id}'") == [["1"]]


def test_a_callback_signed_with_the_previous_key_still_verifies_during_a_rotation(external, user, jpeg):
    media_id, _ = announced_upload(external, user, jpeg)
    response = callback(external, {"media_id": media_id, "result": "clean"}, secret=external.old_secret)
    assert response.status_code == 200 and response.json()["state"] == "ready"


def test_an_announced_upload_whose_verdict_never_comes_is_rejected_after_the_deadline(external, user, jpeg):
    media_id, announcement = announced_upload(external, user, jpeg)
    external.ctl("sweep")
    assert status(external, user, media_id)["state"] == "scanning", "swept before its deadline"
    time.sleep(VERDICT_TIMEOUT + 1.5)
    external.ctl("sweep")
    state = status(external, user, media_id)
    assert state["state"] == "rejected" and state["reject_reason"] == "scan_failed"
    assert not os.path.exists(os.path.join(external.media_root, "quarantine", media_id))
    # A verdict after the deadline changes nothing.
    assert_error(callback(external, {"media_id": media_id, "result": "clean"}), 409, "already_decided")

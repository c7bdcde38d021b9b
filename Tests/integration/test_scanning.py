"""Virus scanning with the real clamd (test signature database: EICAR anywhere in a stream)."""
import os
import signal
import time

import requests

from conftest import make_image, sql, is_default_avatar
from test_upload_flow import assert_error, upload

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def media_state(stack, user, media_id):
    return requests.get(stack.url(f"/media/{media_id}"), headers={"Authorization": f"Bearer {stack.token(user)}"}).json()


def test_clean_upload_is_marked_scanned(stack, user, jpeg):
    presigned, response = upload(stack, user, jpeg, "image/jpeg")
    assert response.status_code == 200
    assert sql(stack, f"SELECT is_virus_scanned, scan_signature FROM media_files WHERE id = '{presigned['media_id']}'") == [["1", "NULL"]]


def test_eicar_alone_and_appended_to_a_jpeg_are_rejected_as_infected(stack, user, jpeg):
    _, first = upload(stack, user, jpeg, "image/jpeg")
    before = requests.get(first.json()["avatar_url"]).content
    for body in (EICAR, jpeg + EICAR):
        presigned, response = upload(stack, user, body, "image/jpeg")
        assert_error(response, 422, "infected")
        state = media_state(stack, user, presigned["media_id"])
        assert state["state"] == "rejected" and state["reject_reason"] == "infected"
        row = sql(stack, f"SELECT is_virus_scanned, scan_signature FROM media_files WHERE id = '{presigned['media_id']}'")
        assert row == [["1", "Cameo.Test.EICAR.UNOFFICIAL"]]
    assert stack.files_under("quarantine") == []
    # The previous avatar is what the user still has.
    assert requests.get(first.json()["avatar_url"].split("?")[0]).content == before
    current = requests.get(stack.url("/api/v1/profile/me/avatar"), headers={"Authorization": f"Bearer {stack.token(user)}"})
    assert current.json()["media_id"] == first.json()["media_id"]


def test_scanner_down_keeps_upload_waiting_until_it_is_back(stack, user, jpeg):
    pid = stack.pid("clamd")
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.1)
    try:
        # Reported, but the host stays ready: uploads wait for the scanner, and every host shares
        # it, so a load balancer must not take them all out (issue 10: readiness and liveness).
        health = requests.get(stack.url("/health/avatar"))
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert health.json()["components"]["scanner"] == "down"
        presigned, response = upload(stack, user, jpeg, "image/jpeg")
        assert response.status_code == 202, response.text
        assert response.json() == {"media_id": presigned["media_id"], "state": "scanning"}
        time.sleep(1.5)  # the retrier tries (and fails) at least once meanwhile
        assert media_state(stack, user, presigned["media_id"])["state"] == "scanning"
        assert requests.get(stack.url("/api/v1/profile/me/avatar"), headers={"Authorization": f"Bearer {stack.token(user)}"}).status_code == 404
        assert sql(stack, f"SELECT is_virus_scanned FROM media_files WHERE id = '{presigned['media_id']}'") == [["0"]]
    finally:
        stack.up()
    # No new upload: the retrier finishes the one waiting.
    deadline = time.time() + 30
    state = {}
    while time.time() < deadline:
        state = media_state(stack, user, presigned["media_id"])
        # `processing` is the retrier rendering it right now: wait for the end state.
        if state["state"] not in ("scanning", "processing"):
            break
        time.sleep(0.3)
    assert state["state"] == "ready", state
    assert requests.get(state["avatar_url"]).status_code == 200
    assert stack.files_under("quarantine") == []


def test_sweeper_removes_only_abandoned_files(stack, user):
    quarantine = os.path.join(stack.media_root, "quarantine")
    old, young = os.path.join(quarantine, "a" * 32), os.path.join(quarantine, "b" * 32)
    for path in (old, young):
        with open(path, "wb") as f:
            f.write(b"leftover")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    # An upload URL nobody used, created two days ago.
    media_id = stack.presign(stack.token(user)).json()["media_id"]
    sql(stack, f"UPDATE media_files SET created_at = NOW() - INTERVAL 2 DAY WHERE id = '{media_id}'")
    try:
        out = stack.ctl("sweep")
        assert not os.path.exists(old)
        assert os.path.exists(young)
        assert old in out
        assert media_state(stack, user, media_id)["state"] == "expired"
    finally:
        for path in (old, young):
            if os.path.exists(path):
                os.unlink(path)


def clamd_command(stack, command):
    import socket as sockets

    with sockets.socket(sockets.AF_UNIX) as conn:
        conn.connect(os.path.join(stack.state_dir, "clamav-run", "clamd.sock"))
        conn.sendall(b"z" + command + b"\0")
        return conn.recv(1024)


def test_rescan_unpublishes_avatars_a_new_signature_detects(stack, user, png):
    presigned, response = upload(stack, user, png, "image/png")
    assert response.status_code == 200
    published = requests.get(response.json()["avatar_url"]).content
    # "A signature update": a signature matching this very avatar's bytes.
    database = os.path.join(stack.state_dir, "clamav", "db", "cameo-rescan.ndb")
    with open(database, "w") as f:
        f.write(f"Cameo.Test.Rescan:0:*:{published[64:128].hex()}\n")
    try:
        assert clamd_command(stack, b"RELOAD").startswith(b"RELOADING")
        # clamd answers RELOAD before the new database is in use; rescanning is idempotent.
        expected = f"unpublished user={user} media={presigned['media_id']} signature=Cameo.Test.Rescan.UNOFFICIAL"
        deadline = time.time() + 15
        out = ""
        while time.time() < deadline and expected not in out:
            time.sleep(0.3)
            out = stack.ctl("rescan", "--since", time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400)))
        assert expected in out, out
    finally:
        os.unlink(database)
        clamd_command(stack, b"RELOAD")
        time.sleep(1)
    # Unpublished: its versioned URL is gone, the plain one shows the default picture.
    assert requests.get(response.json()["avatar_url"]).status_code == 404
    assert is_default_avatar(requests.get(response.json()["avatar_url"].split("?")[0]))
    assert requests.get(stack.url("/api/v1/profile/me/avatar"), headers={"Authorization": f"Bearer {stack.token(user)}"}).status_code == 404
    row = sql(stack, f"SELECT state, reject_reason, scan_signature FROM media_files WHERE id = '{presigned['media_id']}'")
    assert row == [["rejected", "infected", "Cameo.Test.Rescan.UNOFFICIAL"]]

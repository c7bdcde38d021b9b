"""Dependencies going away: health says which, requests get 503 with Retry-After, and the
stack recovers when they are back. Runs last (file name): it stops MariaDB for a moment."""
import os
import subprocess
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wait_for_health(stack, status, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        response = requests.get(stack.url("/health/avatar"))
        if response.status_code == status:
            return response
        time.sleep(0.2)
    raise AssertionError(f"health never became {status}: {response.status_code} {response.text}")


def test_unwritable_storage_makes_health_503(stack):
    quarantine = os.path.join(stack.media_root, "quarantine")
    os.chmod(quarantine, 0o000)
    try:
        response = wait_for_health(stack, 503)
        assert response.json()["components"] == {"database": "up", "storage": "down", "scanner": "up"}
        assert response.headers["Retry-After"]
    finally:
        os.chmod(quarantine, 0o700)
    wait_for_health(stack, 200)


def test_database_down_gives_503_then_recovers(stack, user):
    token = stack.token(user)
    socket = os.path.join(stack.state_dir, "mysql-run", "mysql.sock")
    subprocess.run(["mariadb-admin", f"--socket={socket}", "-uroot", "shutdown"], check=True)
    try:
        health = wait_for_health(stack, 503)
        assert health.json()["components"]["database"] == "down"
        presign = stack.presign(token)
        assert presign.status_code == 503
        error = presign.json()["error"]
        assert error["code"] == "unavailable" and error["request_id"]
        assert presign.headers["Retry-After"]
        assert "MariaDB" not in presign.text and "mysql" not in presign.text.lower()
    finally:
        subprocess.run([os.path.join(ROOT, "deploy", "dev-stack"), "up"], check=True, capture_output=True)
    wait_for_health(stack, 200)
    assert stack.presign(token).status_code == 201


def test_pool_down_answers_json_503_and_recovers(stack, user):
    with open(os.path.join(stack.state_dir, "run", "pool-fast.pid")) as f:
        supervisor = int(f.read().strip())
    workers = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True).stdout.split()
    os.kill(supervisor, 9)
    for pid in workers:
        os.kill(int(pid), 9)
    try:
        response = stack.presign(stack.token(user))
        assert response.status_code == 503
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Retry-After"]
        error = response.json()["error"]
        assert error["code"] == "unavailable" and error["request_id"] == response.headers["X-Request-Id"]
    finally:
        subprocess.run([os.path.join(ROOT, "deploy", "dev-stack"), "up"], check=True, capture_output=True)
    wait_for_health(stack, 200)

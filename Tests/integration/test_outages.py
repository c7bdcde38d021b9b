"""Dependencies going away: health says which, requests get 503 with Retry-After, and the
stack recovers when they are back. On a stack of their own, so no other test sees the outages
(and the order of test files does not matter)."""
import os
import subprocess
import time

import pytest
import requests

from conftest import IntegrationStack


@pytest.fixture(scope="module")
def stack():
    own = IntegrationStack.start(port=int(os.environ.get("CAMEO_PORT", "18080")) + 2, CAMEO_POOL_FAST=2, CAMEO_POOL_HEAVY=1)
    try:
        yield own
    finally:
        own.stop()


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
        # Liveness asks nothing of the database: the workers answer, so they are not restarted.
        live = requests.get(stack.url("/health/live"))
        assert live.status_code == 200 and live.json() == {"status": "alive"}
        presign = stack.presign(token)
        assert presign.status_code == 503
        error = presign.json()["error"]
        assert error["code"] == "unavailable" and error["request_id"]
        assert presign.headers["Retry-After"]
        assert "MariaDB" not in presign.text and "mysql" not in presign.text.lower()
    finally:
        stack.up()
    wait_for_health(stack, 200)
    assert stack.presign(token).status_code == 201


def test_pool_down_answers_json_503_and_recovers(stack, user):
    workers = stack.pool_workers("fast")
    os.kill(stack.pid("pool-fast"), 9)
    for pid in workers:
        os.kill(pid, 9)
    try:
        response = stack.presign(stack.token(user))
        assert response.status_code == 503
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Retry-After"]
        error = response.json()["error"]
        assert error["code"] == "unavailable" and error["request_id"] == response.headers["X-Request-Id"]
    finally:
        stack.up()
    wait_for_health(stack, 200)

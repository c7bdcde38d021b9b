"""Keys with ids, on a stack of their own: the identity provider's public keys from a JWKS file
(a token's `kid` picks the key), refreshed from a URL by deploy/cameo-jwks-refresh (what
cameo-jwks-refresh.timer runs) and followed by the running workers without a restart; and HS256
secrets with ids, old and new accepted side by side during a rotation."""
import http.server
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time

import jwt
import pytest
import requests
from cameo_stack import ROOT
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from conftest import IntegrationStack

NEW_SECRET, OLD_SECRET = secrets.token_hex(32), secrets.token_hex(32)
RSA1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC1 = ec.generate_private_key(ec.SECP256R1())
EC2 = ec.generate_private_key(ec.SECP256R1())


def jwk(key, kid):
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    member = json.loads(algorithm.to_jwk(key.public_key()))
    member.update(kid=kid, use="sig")
    return member


class Provider:
    """The identity provider's key endpoint, on loopback: serves whatever `body` is."""

    def __init__(self):
        provider = self
        self.body = b""
        self.status = 200

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(provider.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(provider.body)))
                self.end_headers()
                self.wfile.write(provider.body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def publish(self, *members):
        self.body = json.dumps({"keys": list(members)}).encode()


@pytest.fixture(scope="module")
def provider():
    own = Provider()
    own.publish(jwk(RSA1, "rsa1"), jwk(EC1, "ec1"))
    yield own
    own.server.shutdown()


@pytest.fixture(scope="module")
def keyed(provider):
    # The key file's folder is the workers' user's, as /var/lib/cameo is: the refresher runs as it.
    folder = tempfile.mkdtemp(prefix="cameo-jwks.")
    os.chmod(folder, 0o755)
    shutil.chown(folder, "cameo", "cameo")
    jwks_file = os.path.join(folder, "jwks.json")
    with open(jwks_file, "wb") as f:
        f.write(provider.body)
    own = IntegrationStack.start(
        port=int(os.environ.get("CAMEO_PORT", "18080")) + 5,
        CAMEO_AUTH_ALGORITHMS="HS256,RS256,ES256", CAMEO_AUTH_PUBLIC_KEY_FILE="", CAMEO_AUTH_JWKS_FILE=jwks_file,
        CAMEO_AUTH_JWKS_URL=provider.url, CAMEO_AUTH_HS256_KEYS=f"new:{NEW_SECRET},old:{OLD_SECRET}",
        CAMEO_POOL_FAST=1, CAMEO_POOL_HEAVY=1)
    own.jwks_file = jwks_file
    try:
        yield own
    finally:
        own.stop()
        shutil.rmtree(folder, ignore_errors=True)


def token(key, kid, algorithm, user="jwks-user"):
    headers = {"kid": kid} if kid else {}
    return jwt.encode({"sub": user, "exp": int(time.time()) + 600, "jti": secrets.token_hex(8)}, key, algorithm=algorithm, headers=headers)


def accepted(stack, value):
    """Whether the stack accepts a token: an upload status of nobody's is 404 to a signed-in
    user, 401 to anyone else."""
    response = requests.get(stack.url("/media/" + "0" * 32), headers={"Authorization": f"Bearer {value}"}, timeout=10)
    assert response.status_code in (401, 404), response.text
    return response.status_code == 404


def refresh(stack):
    """deploy/cameo-jwks-refresh as the timer runs it: the workers' user, the stack's config."""
    # The stack's auth.* settings are environment overrides (an install has them in the file).
    settings = [f"{k}={v}" for k, v in stack.env.items() if k.startswith("CAMEO_AUTH_")]
    return subprocess.run(["runuser", "-u", "cameo", "--", "env", f"CAMEO_CONFIG={stack.config_path}", f"CAMEOCTL={stack.cameoctl}",
                           *settings, os.path.join(ROOT, "deploy", "cameo-jwks-refresh")], capture_output=True, text=True, timeout=60)


def test_a_tokens_kid_picks_its_key_from_the_jwks(keyed):
    assert accepted(keyed, token(RSA1, "rsa1", "RS256"))
    assert accepted(keyed, token(EC1, "ec1", "ES256"))
    assert accepted(keyed, token(EC1, None, "ES256"))             # no kid: each ES256 key is tried
    assert not accepted(keyed, token(EC2, "ec2", "ES256"))        # not published (yet)
    assert not accepted(keyed, token(EC2, "ec1", "ES256"))        # a published kid, signed by another key
    assert not accepted(keyed, token(RSA1, "ec1", "RS256"))       # the kid of a key of another type


def test_the_refresher_installs_a_rotation_that_the_running_workers_follow(keyed, provider):
    workers = keyed.pool_workers("fast")
    provider.publish(jwk(EC1, "ec1"), jwk(EC2, "ec2"))            # ec2 added, rsa1 retired
    done = refresh(keyed)
    assert done.returncode == 0, done.stderr
    assert "installed 2 key(s)" in done.stdout and "ec2" in done.stdout
    assert json.load(open(keyed.jwks_file))["keys"][1]["kid"] == "ec2"
    time.sleep(1.2)      # a worker looks at the file at most once a second
    assert accepted(keyed, token(EC2, "ec2", "ES256"))
    assert accepted(keyed, token(EC1, "ec1", "ES256"))
    assert not accepted(keyed, token(RSA1, "rsa1", "RS256"))
    assert keyed.pool_workers("fast") == workers, "the workers were restarted"


@pytest.mark.parametrize("status,body", [(200, b"<html>maintenance</html>"), (200, b'{"keys":[]}'), (503, b"{}")])
def test_a_failed_fetch_or_a_bad_document_leaves_the_keys_as_they_were(keyed, provider, status, body):
    before = open(keyed.jwks_file, "rb").read()
    provider.status, provider.body = status, body
    try:
        done = refresh(keyed)
    finally:
        provider.status = 200
        provider.publish(jwk(EC1, "ec1"), jwk(EC2, "ec2"))
    assert done.returncode != 0
    assert open(keyed.jwks_file, "rb").read() == before
    assert [n for n in os.listdir(os.path.dirname(keyed.jwks_file)) if n != "jwks.json"] == [], "the fetched file was left behind"
    time.sleep(1.2)
    assert accepted(keyed, token(EC2, "ec2", "ES256"))


def test_hs256_keys_with_ids_rotate_with_overlap(keyed):
    assert accepted(keyed, token(NEW_SECRET, "new", "HS256"))
    assert accepted(keyed, token(OLD_SECRET, "old", "HS256"))     # tokens minted before the rotation
    assert accepted(keyed, token(OLD_SECRET, None, "HS256"))
    assert not accepted(keyed, token(OLD_SECRET, "new", "HS256"))
    assert not accepted(keyed, token(NEW_SECRET, "retired", "HS256"))
    # cameoctl mints with the first key, and names it.
    minted = keyed.token("jwks-user")
    assert jwt.get_unverified_header(minted)["kid"] == "new" and accepted(keyed, minted)

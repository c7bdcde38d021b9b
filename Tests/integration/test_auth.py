"""Token handling through nginx: bearer, cookie, expiry, revocation."""
import os
import time
import uuid

import jwt
import requests


def presign_with(stack, headers):
    return requests.post(stack.url("/users/me/avatar/upload"), json={"content_type": "image/jpeg", "content_length": 1000}, headers=headers)


def code(response):
    return response.json()["error"]["code"]


def hs256(stack, **claims):
    """A token signed with the stack's secret; a fresh jti unless `jti` is given (None: none)."""
    claims.setdefault("jti", uuid.uuid4().hex)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, stack.config["auth.hs256_secret"], algorithm="HS256")


def test_missing_and_malformed_tokens_get_401(stack):
    assert presign_with(stack, {}).status_code == 401
    assert code(presign_with(stack, {})) == "missing_token"
    bad = presign_with(stack, {"Authorization": "Bearer not.a.token"})
    assert bad.status_code == 401 and code(bad) == "invalid_token"
    forged = jwt.encode({"sub": "mallory", "exp": int(time.time()) + 60}, "x" * 32, algorithm="HS256")
    assert code(presign_with(stack, {"Authorization": f"Bearer {forged}"})) == "invalid_token"


def test_expired_token_gets_401(stack, user):
    expired = hs256(stack, sub=user, exp=int(time.time()) - 120)
    response = presign_with(stack, {"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and code(response) == "token_expired"


def test_revoked_token_gets_401(stack, user):
    jti = uuid.uuid4().hex
    token = hs256(stack, sub=user, exp=int(time.time()) + 600, jti=jti)
    assert presign_with(stack, {"Authorization": f"Bearer {token}"}).status_code == 201
    stack.ctl("revoke", jti)
    response = presign_with(stack, {"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and code(response) == "token_revoked"


def test_the_token_policy_requires_a_revocable_jti_and_bounds_the_lifetime(stack, user):
    soon = int(time.time()) + 600

    def presign(token):
        return presign_with(stack, {"Authorization": f"Bearer {token}"})

    # No jti: such a token could never be revoked (auth.require_jti, on by default).
    assert code(presign(hs256(stack, sub=user, exp=soon, jti=None))) == "invalid_token"
    # A jti longer than a revocation holds is refused; the longest one allowed is revocable.
    assert code(presign(hs256(stack, sub=user, exp=soon, jti="j" * 129))) == "invalid_token"
    longest = "r" + uuid.uuid4().hex + "x" * (128 - 33)
    token = hs256(stack, sub=user, exp=soon, jti=longest)
    assert presign(token).status_code == 201
    stack.ctl("revoke", longest)
    assert code(presign(token)) == "token_revoked"
    # Valid for two days: longer than auth.max_token_lifetime_seconds (a day) allows.
    assert code(presign(hs256(stack, sub=user, exp=int(time.time()) + 2 * 86400))) == "invalid_token"


def test_cookie_token_needs_an_allowed_origin(stack, user):
    token = stack.token(user)
    cookies = {"access_token": token}
    ok = requests.post(stack.url("/users/me/avatar/upload"), json={"content_type": "image/png", "content_length": 10},
                       cookies=cookies, headers={"Origin": stack.base_url})
    assert ok.status_code == 201, ok.text
    cross = requests.post(stack.url("/users/me/avatar/upload"), json={"content_type": "image/png", "content_length": 10},
                          cookies=cookies, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and code(cross) == "bad_origin"
    no_origin = requests.post(stack.url("/users/me/avatar/upload"), json={"content_type": "image/png", "content_length": 10}, cookies=cookies)
    assert no_origin.status_code == 403


def test_media_status_is_for_the_owner_only(stack, user):
    token = stack.token(user)
    media_id = requests.post(stack.url("/users/me/avatar/upload"), json={"content_type": "image/png", "content_length": 10},
                             headers={"Authorization": f"Bearer {token}"}).json()["media_id"]
    own = requests.get(stack.url(f"/media/{media_id}"), headers={"Authorization": f"Bearer {token}"})
    assert own.status_code == 200 and own.json()["state"] == "pending_upload"
    other = requests.get(stack.url(f"/media/{media_id}"), headers={"Authorization": f"Bearer {stack.token('someone-else')}"})
    assert other.status_code == 403 and code(other) == "forbidden"
    missing = requests.get(stack.url("/media/" + "0" * 32), headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404


def test_es256_tokens_verify_with_the_configured_public_key(stack, user):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives import serialization

    with open(os.environ["CAMEO_TEST_ES256_PRIVATE_KEY"], "rb") as f:
        private = serialization.load_pem_private_key(f.read(), password=None)
    claims = {"sub": user, "exp": int(time.time()) + 60, "jti": uuid.uuid4().hex}
    good = jwt.encode(claims, private, algorithm="ES256")
    assert presign_with(stack, {"Authorization": f"Bearer {good}"}).status_code == 201
    other = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    assert code(presign_with(stack, {"Authorization": f"Bearer {other}"})) == "invalid_token"

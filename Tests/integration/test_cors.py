"""CORS through nginx: a host application's page on another origin (auth.allowed_origins) may
presign, PUT, use tus and read status; preflights are answered for the allowed origins only
and told apart from tus discovery. deploy/run-tests allows a second origin
(CAMEO_AUTH_ALLOWED_ORIGINS); the browser tests load a page from it."""
import base64

import pytest
import requests

from conftest import make_image, until_url_slot_free

OTHER = "http://evil.example"


@pytest.fixture(scope="module")
def origin(stack):
    """The allowed origin that is not the stack's own."""
    allowed = [o.strip() for o in stack.env.get("CAMEO_AUTH_ALLOWED_ORIGINS", "").split(",") if o.strip()]
    others = [o for o in allowed if o != stack.base_url]
    assert others, "deploy/run-tests allows a second origin (CAMEO_AUTH_ALLOWED_ORIGINS)"
    return others[0]


def preflight(stack, path, origin, method, headers=""):
    return requests.options(stack.url(path), headers={
        "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers})


def test_a_preflight_from_an_allowed_origin_names_what_it_may_send(stack, origin):
    for path, method, headers in [
        ("/tus/", "POST", "authorization,tus-resumable,upload-length,upload-metadata"),
        ("/tus/" + "a" * 32, "PATCH", "authorization,tus-resumable,upload-offset,content-type,upload-checksum"),
        ("/users/me/avatar/upload", "POST", "authorization,content-type"),
        ("/uploads/" + "b" * 32, "PUT", "content-type"),
        ("/media/" + "c" * 32, "GET", "authorization"),
    ]:
        answer = preflight(stack, path, origin, method, headers)
        assert answer.status_code == 204, (path, answer.text)
        assert answer.headers["Access-Control-Allow-Origin"] == origin
        assert method in answer.headers["Access-Control-Allow-Methods"]
        allowed = {h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
        assert set(headers.split(",")) <= allowed, (path, allowed)
        assert "Origin" in answer.headers["Vary"]
        # A preflight is not tus discovery, even at /tus/.
        assert "Tus-Version" not in answer.headers


def test_a_preflight_from_any_other_origin_is_refused(stack):
    answer = preflight(stack, "/tus/", OTHER, "POST", "authorization")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "bad_origin"
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Access-Control-Allow-Methods" not in answer.headers


def test_tus_discovery_is_an_options_that_names_no_method(stack, origin):
    answer = requests.options(stack.url("/tus/"), headers={"Origin": origin})
    assert answer.status_code == 204
    assert answer.headers["Tus-Version"] == "1.0.0"
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    assert "Tus-Max-Size" in answer.headers["Access-Control-Expose-Headers"]


def test_answers_carry_cors_for_the_allowed_origin_only(stack, user, origin):
    token = stack.token(user)
    auth = {"Authorization": f"Bearer {token}"}
    created = requests.post(stack.url("/tus/"), headers=auth | {
        "Origin": origin, "Tus-Resumable": "1.0.0", "Upload-Length": "1000",
        "Upload-Metadata": "filetype " + base64.b64encode(b"image/jpeg").decode()})
    assert created.status_code == 201, created.text
    assert created.headers["Access-Control-Allow-Origin"] == origin
    exposed = {h.strip() for h in created.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Upload-Offset", "Upload-Length", "Upload-Expires", "Retry-After", "Tus-Resumable"} <= exposed
    media_id = created.headers["Location"].rsplit("/", 1)[1]
    head = requests.head(stack.url(f"/tus/{media_id}"), headers=auth | {"Origin": origin, "Tus-Resumable": "1.0.0"})
    assert head.headers["Access-Control-Allow-Origin"] == origin and head.headers["Upload-Offset"] == "0"
    # The same request from another origin is answered, but with nothing a browser would let
    # that origin's page read.
    status = requests.get(stack.url(f"/media/{media_id}"), headers=auth | {"Origin": OTHER})
    assert status.status_code == 200
    assert "Access-Control-Allow-Origin" not in status.headers
    assert requests.delete(stack.url(f"/tus/{media_id}"), headers=auth | {"Origin": origin, "Tus-Resumable": "1.0.0"}).status_code == 204


def test_refusals_nginx_answers_itself_carry_cors_too(stack, user, origin):
    """A script must be able to read a refusal (413 with its limit, a denied PUT) to tell the user."""
    token = stack.token(user)
    too_large = requests.post(stack.url("/tus/"), headers={
        "Authorization": f"Bearer {token}", "Origin": origin, "Tus-Resumable": "1.0.0",
        "Upload-Length": "100", "Upload-Metadata": "filetype " + base64.b64encode(b"image/jpeg").decode(),
        "Content-Type": "application/offset+octet-stream"}, data=b"x" * 6_000_000)
    assert too_large.status_code == 413
    assert too_large.headers["Access-Control-Allow-Origin"] == origin
    presigned = stack.presign(token, "image/jpeg", 1000).json()
    forged = presigned["upload_url"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    denied = requests.put(forged, data=b"x" * 1000, headers={"Content-Type": "image/jpeg", "Origin": origin})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "bad_signature"
    assert denied.headers["Access-Control-Allow-Origin"] == origin


def test_the_presigned_put_answers_the_other_origin(stack, user, origin):
    jpeg = make_image("JPEG", size=(300, 300))
    presigned = stack.presign(stack.token(user), "image/jpeg", len(jpeg)).json()
    answer = until_url_slot_free(lambda: requests.put(presigned["upload_url"], data=jpeg, headers={"Content-Type": "image/jpeg", "Origin": origin}))
    assert answer.status_code == 200, answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == origin

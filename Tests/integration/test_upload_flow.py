"""The real HTTP path: presign through nginx, PUT on the presigned URL, nginx serving the WebP."""
import io
import time
import urllib.parse

import pytest
import requests
from PIL import Image

from conftest import headers_only, make_image, until_url_slot_free


def put(url, body, content_type="image/jpeg", **kwargs):
    """A PUT as the page sends it, waiting while the URL's slot is busy (until_url_slot_free)."""
    return until_url_slot_free(lambda: requests.put(url, data=body, headers={"Content-Type": content_type}, **kwargs))


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == code, response.text
    return response.json()["error"]


def upload(stack, user, body, content_type):
    presigned = stack.presign(stack.token(user), content_type, len(body))
    assert presigned.status_code == 201, presigned.text
    return presigned.json(), put(presigned.json()["upload_url"], body, content_type)


def fetch_avatar(stack, url):
    response = requests.get(url)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/webp"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers.get("ETag")
    return response


@pytest.mark.parametrize("kind,content_type", [("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")])
def test_each_format_is_published_as_512_webp(stack, user, kind, content_type, request):
    body = request.getfixturevalue(kind)
    presigned, response = upload(stack, user, body, content_type)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["state"] == "ready"
    assert result["media_id"] == presigned["media_id"]
    assert result["avatar_url"].startswith(f"{stack.base_url}/profile-media/{user}/avatar.webp?v=")

    served = fetch_avatar(stack, result["avatar_url"])
    assert "immutable" in served.headers["Cache-Control"]
    image = Image.open(io.BytesIO(served.content))
    assert image.format == "WEBP" and image.size == (512, 512)
    for size, url in result["variants"].items():
        assert Image.open(io.BytesIO(fetch_avatar(stack, url).content)).size == (int(size), int(size))
    # Nothing left behind in quarantine or nginx's body folder.
    assert stack.files_under("quarantine") == []
    assert stack.files_under("incoming") == []


def test_unversioned_avatar_url_is_not_cached_long(stack, user, jpeg):
    _, response = upload(stack, user, jpeg, "image/jpeg")
    plain = response.json()["avatar_url"].split("?")[0]
    served = fetch_avatar(stack, plain)
    assert "immutable" not in served.headers["Cache-Control"]
    again = requests.get(plain, headers={"If-None-Match": served.headers["ETag"]})
    assert again.status_code == 304


def test_chunked_upload_is_published(stack, user, jpeg):
    presigned = stack.presign(stack.token(user), "image/jpeg", len(jpeg)).json()

    def chunks():
        for i in range(0, len(jpeg), 7000):
            yield jpeg[i : i + 7000]

    response = requests.put(presigned["upload_url"], data=chunks(), headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(fetch_avatar(stack, response.json()["avatar_url"]).content)).size == (512, 512)


def test_url_is_single_use(stack, user, jpeg):
    presigned, first = upload(stack, user, jpeg, "image/jpeg")
    assert first.status_code == 200
    second = put(presigned["upload_url"], jpeg)
    assert_error(second, 409, "url_used")


def test_tampered_signature_wrong_path_and_wrong_type_are_refused(stack, user, jpeg):
    token = stack.token(user)
    presigned = stack.presign(token, "image/jpeg", len(jpeg)).json()
    url = presigned["upload_url"]
    last = url[-1]
    assert_error(put(url[:-1] + ("0" if last != "0" else "1"), jpeg), 403, "bad_signature")
    other = stack.presign(token, "image/jpeg", len(jpeg)).json()
    moved = url.replace(presigned["media_id"], other["media_id"])
    assert_error(put(moved, jpeg), 403, "bad_signature")
    assert_error(put(url, jpeg, content_type="image/png"), 403, "bad_signature")
    # The URL still works for what it was signed for.
    assert put(url, jpeg).status_code == 200


def test_refusal_comes_before_the_body_is_read(stack, user):
    """The signature is checked on the headers alone: the 403 arrives while the client has
    sent no byte of its declared 1 MB body, and nothing is buffered. (nginx may send an
    interim `100 Continue` first: it does so whenever it discards a body for an error page.)"""
    presigned = stack.presign(stack.token(user), "image/jpeg", 1_000_000).json()
    parts = urllib.parse.urlsplit(presigned["upload_url"])
    forged_query = parts.query.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    final = headers_only(stack, f"PUT {parts.path}?{forged_query} HTTP/1.1\r\nHost: {{host}}\r\nContent-Type: image/jpeg\r\n"
                                "Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n", "bad_signature")
    assert final.startswith("403"), final
    wait_until_empty(stack, "incoming")
    status = requests.get(stack.url(f"/media/{presigned['media_id']}"), headers={"Authorization": f"Bearer {stack.token(user)}"})
    assert status.json()["state"] == "pending_upload"


def wait_until_empty(stack, folder, seconds=5.0):
    """nginx removes an aborted body's temp file when it closes the connection, which can be
    a moment after it answered."""
    deadline = time.time() + seconds
    while stack.files_under(folder) and time.time() < deadline:
        time.sleep(0.05)
    assert stack.files_under(folder) == []


def test_expired_url_is_refused(stack, user, jpeg):
    """A URL signed (with the real key, by botocore) six minutes ago has expired."""
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import botocore.auth
    import datetime
    from unittest import mock

    presigned = stack.presign(stack.token(user), "image/jpeg", len(jpeg)).json()
    base = presigned["upload_url"].split("?")[0]
    key_id, secret = stack.presign_key()
    request = AWSRequest(method="PUT", url=f"{base}?X-Cameo-Max-Bytes={len(jpeg)}", headers={"Content-Type": "image/jpeg"})
    past = datetime.datetime.utcnow() - datetime.timedelta(minutes=6)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=past):
        S3SigV4QueryAuth(Credentials(key_id, secret), "s3", "cameo", expires=300).add_auth(request)
    assert_error(put(request.url, jpeg), 403, "url_expired")


def test_body_over_limit_gets_413_with_limit(stack, user):
    token = stack.token(user)
    too_big = stack.presign(token, "image/jpeg", 6 * 1024 * 1024)
    assert assert_error(too_big, 413, "too_large")["limit"] == 5242880
    presigned = stack.presign(token, "image/jpeg", 5 * 1024 * 1024).json()
    body = b"\xff\xd8\xff" + b"\0" * (6 * 1024 * 1024)
    assert_error(put(presigned["upload_url"], body), 413, "too_large")
    # Chunked: nginx counts while it reads.
    presigned = stack.presign(token, "image/jpeg", 5 * 1024 * 1024).json()
    chunked = requests.put(presigned["upload_url"], data=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
                           headers={"Content-Type": "image/jpeg"})
    assert_error(chunked, 413, "too_large")
    wait_until_empty(stack, "incoming")


def test_non_image_gets_415_and_leaves_nothing(stack, user, jpeg):
    _, first = upload(stack, user, jpeg, "image/jpeg")
    before = requests.get(first.json()["avatar_url"]).content
    presigned, response = upload(stack, user, b"<html><script>alert(1)</script></html>" * 50, "image/jpeg")
    assert_error(response, 415, "bad_type")
    assert stack.files_under("quarantine") == []
    # The previous avatar is untouched.
    assert requests.get(first.json()["avatar_url"].split("?")[0]).content == before
    status = requests.get(stack.url(f"/media/{presigned['media_id']}"), headers={"Authorization": f"Bearer {stack.token(user)}"})
    assert status.json()["state"] == "rejected" and status.json()["reject_reason"] == "bad_type"


def test_presign_validates_declared_type_and_length(stack, user):
    token = stack.token(user)
    assert_error(stack.presign(token, "image/gif", 1000), 415, "bad_type")
    assert_error(stack.presign(token, "image/jpeg", 0), 400, "bad_content_length")
    bad_json = requests.post(stack.url("/users/me/avatar/upload"), data="{", headers={"Authorization": f"Bearer {token}"})
    assert_error(bad_json, 400, "invalid_json")

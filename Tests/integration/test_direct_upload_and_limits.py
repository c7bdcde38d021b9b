"""The multipart profile upload and the per-user limits, through nginx."""
import io
import json

import pytest
import requests
from PIL import Image

from conftest import make_image
from test_upload_flow import assert_error, fetch_avatar


def post_avatar(stack, token, body, crop=None, field="file"):
    files = {field: ("me.jpg", body, "image/jpeg")}
    if crop is not None:
        files["crop"] = (None, json.dumps(crop), "application/json")
    return requests.post(stack.url("/api/v1/profile/me/avatar"), files=files, headers={"Authorization": f"Bearer {token}"})


def test_multipart_upload_publishes_and_honours_crop(stack, user):
    # Left half red, right half blue: a crop of the right half must come out blue.
    image = Image.new("RGB", (800, 400), (220, 20, 20))
    image.paste((20, 20, 220), (400, 0, 800, 400))
    out = io.BytesIO()
    image.save(out, "PNG")
    response = post_avatar(stack, stack.token(user), out.getvalue(), crop={"x": 400, "y": 0, "size": 400})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["state"] == "ready"
    published = Image.open(io.BytesIO(fetch_avatar(stack, result["avatar_url"]).content)).convert("RGB")
    assert published.size == (512, 512)
    r, g, b = published.getpixel((256, 256))
    assert b > 180 and r < 60, (r, g, b)
    assert stack.files_under("quarantine") == [] and stack.files_under("incoming") == []


def test_multipart_errors_are_clear(stack, user):
    token = stack.token(user)
    assert_error(post_avatar(stack, token, make_image("JPEG"), field="picture"), 400, "missing_file")
    assert_error(post_avatar(stack, token, b"GIF89a" + b"\0" * 100), 415, "bad_type")
    too_big = b"\xff\xd8\xff" + b"\0" * (5 * 1024 * 1024 + 70 * 1024)
    assert assert_error(post_avatar(stack, token, too_big), 413, "too_large")["limit"] == 5242880
    crop_outside = post_avatar(stack, token, make_image("JPEG"), crop={"x": 700, "y": 0, "size": 400})
    assert_error(crop_outside, 422, "bad_crop")


def test_sixth_upload_in_a_minute_gets_429(stack, user):
    token = stack.token(user)
    for _ in range(5):
        assert stack.presign(token).status_code == 201
    refused = stack.presign(token)
    error = assert_error(refused, 429, "rate_limited")
    assert error["limit"] == 5
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another user is not affected.
    assert stack.presign(stack.token(user + "x")).status_code == 201


def test_eleventh_delete_in_a_minute_gets_429(stack, user):
    token = stack.token(user)
    for _ in range(10):
        assert requests.delete(stack.url("/api/v1/profile/me/avatar"), headers={"Authorization": f"Bearer {token}"}).status_code == 404
    refused = requests.delete(stack.url("/api/v1/profile/me/avatar"), headers={"Authorization": f"Bearer {token}"})
    assert_error(refused, 429, "rate_limited")
    assert refused.headers["Retry-After"]


def test_each_publish_records_one_avatar_uploaded_event(stack, user, jpeg):
    from conftest import sql
    from test_upload_flow import upload

    presigned, response = upload(stack, user, jpeg, "image/jpeg")
    assert response.status_code == 200
    rows = sql(stack, f"SELECT event, user_id, bytes, mime, processing_time_ms FROM analytics_events WHERE media_id = '{presigned['media_id']}'")
    assert len(rows) == 1
    event, owner, size, mime, milliseconds = rows[0]
    assert (event, owner, int(size), mime) == ("avatar_uploaded", user, len(jpeg), "image/jpeg")
    assert 0 < int(milliseconds) < 60_000
    # A failed upload records nothing.
    failed, _ = upload(stack, user, b"not an image at all" * 10, "image/jpeg")
    assert sql(stack, f"SELECT COUNT(*) FROM analytics_events WHERE media_id = '{failed['media_id']}'") == [["0"]]


def test_an_unauthenticated_multipart_post_is_refused_before_its_body_is_read(stack):
    """The token is checked before nginx reads the body: the 401 comes while the client has
    sent none of its declared 3 MB (more than nginx keeps in memory), and nothing reaches disk."""
    import time

    from conftest import headers_only

    final = headers_only(stack, "POST /api/v1/profile/me/avatar HTTP/1.1\r\nHost: {host}\r\n"
                                "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 3000000\r\n"
                                "Expect: 100-continue\r\n\r\n", "missing_token")
    assert final.startswith("401"), final
    assert "application/json" in final
    deadline = time.time() + 5
    while stack.files_under("incoming") and time.time() < deadline:
        time.sleep(0.05)
    assert stack.files_under("incoming") == []


def test_methods_without_a_body_may_not_send_one(stack, user):
    token = stack.token(user)
    for method in ("GET", "DELETE"):
        response = requests.request(method, stack.url("/api/v1/profile/me/avatar"), data=b"x" * 1000,
                                    headers={"Authorization": f"Bearer {token}"})
        assert_error(response, 400, "unexpected_body")
    # Without a body they work as before.
    assert requests.get(stack.url("/api/v1/profile/me/avatar"), headers={"Authorization": f"Bearer {token}"}).status_code == 404


@pytest.mark.parametrize("method,path,body,status,code", [
    ("GET", "/no/such/route", None, 404, "not_found"),
    ("GET", "/profile-media/nobody/notes.txt", None, 404, "not_found"),
    ("DELETE", "/profile-media/nobody/avatar.webp", None, 405, "method_not_allowed"),
    ("POST", "/profile-media/nobody/avatar.webp", b"", 405, "method_not_allowed"),
    ("POST", "/users/me/avatar/upload", b"{" + b" " * 20000 + b"}", 413, "too_large"),
    ("POST", "/media/virus-scan-callback", b"{" + b" " * 20000 + b"}", 413, "too_large"),
])
def test_every_error_nginx_answers_by_itself_is_json(stack, method, path, body, status, code):
    response = requests.request(method, stack.url(path), data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code
    if code == "too_large":
        assert response.json()["error"]["limit"] == 16384

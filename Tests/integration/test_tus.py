"""tus 1.0 through nginx (SPEC §2, the /tus/ rows): discovery, creation, HEAD, PATCH (offsets,
checksums, byte caps, refusals before the body is read, concurrent chunks), termination, expiry
and the sweeper, with tuspy as a real client for whole uploads, a half-way stop and a resume.

Every test works as a fresh user (5 creations a minute each). Partial uploads a test leaves
behind are terminated when it ends (the `tus` fixture), so the files after this one still find
an empty quarantine.
"""
import base64
import hashlib
import io
import json
import math
import os
import re
import socket
import threading
import time
import urllib.parse
import uuid
from email.utils import parsedate_to_datetime

import numpy as np
import pytest
import requests
from PIL import Image
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.uploader import Uploader

from conftest import headers_only, until_url_slot_free
from test_upload_flow import assert_error, fetch_avatar, wait_until_empty

CHUNK = 262144
OCTETS = "application/offset+octet-stream"
MEDIA_ID = re.compile(r"^[0-9a-f]{32}$")
HTTP_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                       r"\d{4} \d{2}:\d{2}:\d{2} GMT$")


# --- Helpers ---------------------------------------------------------------------------------

def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode("ascii")


def metadata(filetype="image/jpeg", **fields):
    """An Upload-Metadata value: `key base64(value)` pairs; filetype=None leaves it out."""
    pairs = ({"filetype": filetype} if filetype is not None else {}) | fields
    return ",".join(f"{key} {b64(value)}" for key, value in pairs.items())


def checksum(algorithm, data):
    """An Upload-Checksum value for `data`."""
    return f"{algorithm} {b64(hashlib.new(algorithm, data).digest())}"


def max_bytes(stack):
    return int(stack.config.get("limits.max_upload_bytes", 5242880))


class TusUser:
    """One user's side of the protocol over plain requests. Every request carries the user's
    token and `Tus-Resumable: 1.0.0`; `headers` adds to them, and a None value removes one.
    Answers are returned as they came. Uploads it created are remembered for the cleanup."""

    def __init__(self, stack, user):
        self.stack = stack
        self.user = user
        self.token = stack.token(user)
        self.made = []

    def url(self, media_id):
        return self.stack.url(f"/tus/{media_id}")

    def headers(self, extra=None):
        headers = {"Authorization": f"Bearer {self.token}", "Tus-Resumable": "1.0.0"}
        for name, value in (extra or {}).items():
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        return headers

    def create(self, length, meta=None, body=None, headers=None):
        """POST /tus/; with `body`, creation-with-upload (the body is the first chunk)."""
        sent = {"Upload-Length": str(length), "Upload-Metadata": metadata() if meta is None else meta}
        if body is not None:
            sent["Content-Type"] = OCTETS
        response = requests.post(self.stack.url("/tus/"), data=body, headers=self.headers(sent | (headers or {})))
        if response.status_code == 201:
            self.track(response.headers["Location"])
        return response

    def created(self, length, **kwargs):
        """Creates an upload that must be accepted; returns its media id."""
        response = self.create(length, **kwargs)
        assert response.status_code == 201, response.text
        return media_id_of(self.stack, response.headers["Location"])

    def track(self, url):
        self.made.append(url.rsplit("/", 1)[1])

    def head(self, media_id, headers=None):
        return requests.head(self.url(media_id), headers=self.headers(headers))

    def offset(self, media_id):
        """The server's offset, from HEAD."""
        response = self.head(media_id)
        assert response.status_code == 200, response.status_code
        return int(response.headers["Upload-Offset"])

    def patch(self, media_id, offset, body, content_type=OCTETS, upload_checksum=None, headers=None, wait_for_slot=True):
        """PATCH a chunk. By default it waits while nginx still holds the upload's one body slot
        for a previous, refused body (until_url_slot_free)."""
        sent = {"Content-Type": content_type, "Upload-Offset": str(offset)}
        if upload_checksum is not None:
            sent["Upload-Checksum"] = upload_checksum
        attempt = lambda: requests.patch(self.url(media_id), data=body, headers=self.headers(sent | (headers or {})))  # noqa: E731
        return until_url_slot_free(attempt) if wait_for_slot else attempt()

    def delete(self, media_id, headers=None):
        return until_url_slot_free(lambda: requests.delete(self.url(media_id), headers=self.headers(headers)))

    def media(self, media_id):
        """GET /media/{id}, the upload's state as the page tracks it."""
        return requests.get(self.stack.url(f"/media/{media_id}"), headers={"Authorization": f"Bearer {self.token}"})

    def client(self):
        """A tuspy client: its headers go on every request it makes."""
        return TusClient(self.stack.url("/tus/"), headers={"Authorization": f"Bearer {self.token}"})

    def terminate_leftovers(self):
        """Terminates what is still partial (completed ones answer 409, terminated ones 410);
        partials of a forced expiry are left to the sweeper, as in production."""
        expired = [media_id for media_id in self.made if self.delete(media_id).status_code == 410]
        if any(partial_files(self.stack, media_id) for media_id in expired):
            self.stack.ctl("sweep")


@pytest.fixture
def tus(stack, user):
    owner = TusUser(stack, user)
    yield owner
    owner.terminate_leftovers()


def media_id_of(stack, location):
    """The media id of an upload's URL: its Location, `/tus/{media_id}` (relative, SPEC §2: a
    client resolves it against the URL it posted to), or that URL as a client resolved it."""
    media_id = location.rsplit("/", 1)[1]
    assert MEDIA_ID.match(media_id), location
    assert location in (f"/tus/{media_id}", stack.url(f"/tus/{media_id}")), location
    return media_id


def partial_path(stack, media_id):
    return os.path.join(stack.media_root, "quarantine", media_id)


def partial_files(stack, media_id):
    """Anything under quarantine/ named for this upload."""
    return [path for path in stack.files_under("quarantine") if os.path.basename(path).startswith(media_id)]


def read_partial(stack, media_id):
    with open(partial_path(stack, media_id), "rb") as f:
        return f.read()


def force_expiry(stack, media_id):
    stack.sql(f"UPDATE media_files SET upload_expires_at = UNIX_TIMESTAMP() - 1 WHERE id = '{media_id}'")


def assert_expires_in_a_day(value):
    """Upload-Expires is an HTTP date (RFC 7231 IMF-fixdate) about 24 h ahead."""
    assert HTTP_DATE.match(value), value
    ahead = parsedate_to_datetime(value).timestamp() - time.time()
    assert 23.5 * 3600 < ahead < 24.5 * 3600, value




def wait_for_state(owner, media_id, wanted=("ready",), seconds=30.0):
    """GET /media/{id} until the upload is in a `wanted` or final state, or the deadline (a
    scan can be pending for a moment: the retrier polls every 2 s)."""
    deadline = time.time() + seconds
    while True:
        response = owner.media(media_id)
        assert response.status_code == 200, response.text
        status = response.json()
        if status["state"] in wanted or status["state"] in ("ready", "rejected", "expired") or time.time() > deadline:
            return status
        time.sleep(0.1)


def assert_published(stack, owner, media_id):
    """The upload ends ready, and its avatar is served: a 512×512 WebP, at the versioned URL
    and at the user's plain avatar.webp. Returns the picture."""
    status = wait_for_state(owner, media_id)
    assert status["state"] == "ready", status
    assert status["media_id"] == media_id
    assert status["avatar_url"].startswith(stack.url(f"/profile-media/{owner.user}/avatar.webp?v=")), status
    served = fetch_avatar(stack, status["avatar_url"])
    image = Image.open(io.BytesIO(served.content))
    assert image.format == "WEBP" and image.size == (512, 512)
    plain = requests.get(stack.url(f"/profile-media/{owner.user}/avatar.webp"))
    assert plain.status_code == 200 and plain.content == served.content
    return image


def has_no_avatar(stack, owner):
    profile = requests.get(stack.url("/api/v1/profile/me/avatar"), headers={"Authorization": f"Bearer {owner.token}"})
    return profile.status_code == 404 and requests.get(stack.url(f"/profile-media/{owner.user}/avatar.webp?d=404")).status_code == 404


class PatchRecorder:
    """Wraps requests.patch, which tuspy calls for each chunk, and records what every PATCH
    sent (its Upload-Offset, body length and Upload-Checksum) and the status it got."""

    def __init__(self, monkeypatch):
        self.sent = []
        real = requests.patch

        def patch(url, data=None, **kwargs):
            response = real(url, data=data, **kwargs)
            headers = {name.lower(): value for name, value in (kwargs.get("headers") or {}).items()}
            self.sent.append({"offset": int(headers["upload-offset"]), "bytes": len(data or b""),
                              "checksum": headers.get("upload-checksum"), "status": response.status_code})
            return response

        monkeypatch.setattr(requests, "patch", patch)


class Sha256Uploader(Uploader):
    """tuspy sends `Upload-Checksum: sha1 ...`; this class attribute is where it takes the
    algorithm from."""
    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A real photo-sized JPEG (1600×1200 of noise over gradients, quality 95, about 1.26 MB):
    five 256 KB chunks, the last one short. Returns its path and bytes."""
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:1200, 0:1600]
    base = np.stack([x * 255 / 1600, y * 255 / 1200, np.full((1200, 1600), 120.0)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=95)
    data = out.getvalue()
    assert 4 * CHUNK < len(data) < 2_000_000, len(data)
    path = tmp_path_factory.mktemp("tus") / "photo.jpg"
    path.write_bytes(data)
    return str(path), data


def halves_png():
    """Left half red, right half blue: a crop of the right half must come out blue."""
    image = Image.new("RGB", (800, 400), (220, 20, 20))
    image.paste((20, 20, 220), (400, 0, 800, 400))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# --- Discovery -------------------------------------------------------------------------------

def test_discovery_says_version_extensions_max_size_and_checksums(stack):
    """OPTIONS /tus/ without Access-Control-Request-Method is tus discovery (not a CORS
    preflight): no token needed, 204 with what the server supports."""
    response = requests.options(stack.url("/tus/"))
    assert response.status_code == 204, response.text
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    extensions = {name.strip() for name in response.headers["Tus-Extension"].split(",")}
    assert extensions == {"creation", "creation-with-upload", "expiration", "checksum", "termination"}
    assert response.headers["Tus-Max-Size"] == str(max_bytes(stack))
    assert {name.strip() for name in response.headers["Tus-Checksum-Algorithm"].split(",")} == {"sha1", "sha256"}


# --- Creation --------------------------------------------------------------------------------

def test_creation_answers_201_with_a_location_and_expiry(stack, tus):
    """POST /tus/ up to the byte cap creates an upload: its Location, Upload-Expires a
    day ahead; HEAD then shows offset 0, the length, and is never cached."""
    crop = json.dumps({"x": 0, "y": 0, "size": 100})
    response = tus.create(max_bytes(stack), meta=metadata("image/jpeg", filename="me.jpg", crop=crop))
    assert response.status_code == 201, response.text
    media_id = media_id_of(stack, response.headers["Location"])
    assert response.headers["Location"] == f"/tus/{media_id}", "relative, whatever name the client used"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert_expires_in_a_day(response.headers["Upload-Expires"])

    head = tus.head(media_id)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == str(max_bytes(stack))
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Tus-Resumable"] == "1.0.0"
    assert_expires_in_a_day(head.headers["Upload-Expires"])


@pytest.mark.parametrize("headers,status,code", [
    ({"Upload-Length": None}, 400, "bad_upload_length"),
    ({"Upload-Length": "lots"}, 400, "bad_upload_length"),
    ({"Upload-Length": "0"}, 400, "bad_upload_length"),
    ({"Upload-Length": lambda stack: str(max_bytes(stack) + 1)}, 413, "too_large"),
    ({"Upload-Metadata": None}, 400, "bad_metadata"),
    ({"Upload-Metadata": metadata(None, filename="me.jpg")}, 400, "bad_metadata"),
    ({"Upload-Metadata": "filetype image/jpeg"}, 400, "bad_metadata"),            # not base64
    ({"Upload-Metadata": metadata("image/jpeg", crop="{x")}, 400, "bad_metadata"),  # crop not JSON
    ({"Upload-Metadata": metadata("image/gif")}, 415, "bad_type"),
], ids=["no_length", "length_not_a_number", "length_zero", "over_max", "no_metadata", "no_filetype",
        "value_not_base64", "crop_not_json", "gif"])
def test_creation_validates_length_and_metadata(stack, tus, headers, status, code):
    """A creation with a bad Upload-Length or Upload-Metadata is refused with a clear code, and
    creates nothing."""
    headers = {name: value(stack) if callable(value) else value for name, value in headers.items()}
    response = tus.create(1000, headers=headers)
    error = assert_error(response, status, code)
    if status == 413:
        assert error["limit"] == max_bytes(stack)
    assert tus.made == []


def test_unsupported_tus_version_gets_412(stack, tus):
    """POST and PATCH without `Tus-Resumable: 1.0.0` get 412 naming the supported version, and
    the PATCH appends nothing."""
    for version in (None, "0.2.2"):
        refused = tus.create(1000, headers={"Tus-Resumable": version})
        assert_error(refused, 412, "unsupported_version")
        assert refused.headers["Tus-Version"] == "1.0.0"
    media_id = tus.created(1000)
    for version in (None, "0.2.2"):
        refused = tus.patch(media_id, 0, b"x" * 100, headers={"Tus-Resumable": version})
        assert_error(refused, 412, "unsupported_version")
        assert refused.headers["Tus-Version"] == "1.0.0"
    assert tus.offset(media_id) == 0
    assert stack.appended_bytes(media_id) == 0


def test_requests_without_a_valid_token_get_401(stack, tus):
    """POST, HEAD, PATCH and DELETE all need the owner's token (HEAD has no body: status only)."""
    media_id = tus.created(1000)
    anonymous = {"Authorization": None}
    assert_error(tus.create(1000, headers=anonymous), 401, "missing_token")
    assert tus.head(media_id, headers=anonymous).status_code == 401
    assert_error(tus.patch(media_id, 0, b"x" * 100, headers=anonymous), 401, "missing_token")
    assert_error(tus.delete(media_id, headers=anonymous), 401, "missing_token")
    forged = tus.patch(media_id, 0, b"x" * 100, headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401, forged.text
    assert tus.offset(media_id) == 0
    assert tus.made == [media_id]


def test_creation_shares_the_per_user_limit_with_presign(stack, tus):
    """tus creations and presigned uploads count together, 5 a minute per user: the 6th is
    refused with 429 and Retry-After, through tuspy and presign too; another user is not."""
    for _ in range(2):
        assert stack.presign(tus.token).status_code == 201
    for _ in range(3):
        tus.created(1000)
    refused = tus.create(1000)
    assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    with pytest.raises(TusCommunicationError) as by_tuspy:
        tus.client().uploader(file_stream=io.BytesIO(b"x" * 1000), metadata={"filetype": "image/jpeg"}).upload()
    assert by_tuspy.value.status_code == 429
    assert_error(stack.presign(tus.token), 429, "rate_limited")

    other = TusUser(stack, tus.user + "x")
    try:
        other.created(1000)
    finally:
        other.terminate_leftovers()


def test_a_user_has_at_most_three_partial_uploads_open(stack, tus):
    """Partial uploads keep their bytes on disk until they finish or expire, so a user may have
    tus.partial_uploads_per_user (3) open: the 4th creation is 429 with the limit and when the
    first expires; terminating one makes room again."""
    made = [tus.created(1000) for _ in range(3)]
    refused = tus.create(1000)
    error = assert_error(refused, 429, "too_many_partial_uploads")
    assert error["limit"] == 3
    assert 23 * 3600 < int(refused.headers["Retry-After"]) <= 24 * 3600
    assert tus.delete(made[0]).status_code == 204
    tus.created(1000)


# --- HEAD and PATCH --------------------------------------------------------------------------

def test_patch_appends_and_reports_the_new_offset(stack, tus):
    """Each PATCH at the current offset answers 204 with the new offset; HEAD, the partial file
    and the workers' count agree, byte for byte."""
    data = os.urandom(3000)
    media_id = tus.created(len(data))
    first = tus.patch(media_id, 0, data[:1200])
    assert first.status_code == 204, first.text
    assert first.headers["Upload-Offset"] == "1200"
    second = tus.patch(media_id, 1200, data[1200:2200])
    assert second.status_code == 204, second.text
    assert second.headers["Upload-Offset"] == "2200"
    assert tus.offset(media_id) == 2200
    assert read_partial(stack, media_id) == data[:2200]
    assert stack.wait_for_appended(media_id, 2200) == 2200


def test_every_answer_carries_tus_resumable(stack, tus):
    """tus 1.0: every answer but discovery's names the protocol version it speaks: creation,
    HEAD, PATCH, a refused PATCH and termination."""
    media_id = tus.created(3000)
    answers = {"HEAD": tus.head(media_id), "PATCH": tus.patch(media_id, 0, b"x" * 1000),
               "refused PATCH": tus.patch(media_id, 0, b"x" * 1000), "DELETE": tus.delete(media_id)}
    assert [answer.status_code for answer in answers.values()] == [200, 204, 409, 204], {k: v.text for k, v in answers.items()}
    missing = [name for name, answer in answers.items() if answer.headers.get("Tus-Resumable") != "1.0.0"]
    assert missing == []


def test_a_partial_upload_is_receiving_and_is_no_avatar(stack, tus):
    """GET /media/{id} shows a partial upload as `receiving` with its offset and length; it is
    not the user's avatar."""
    media_id = tus.created(3000)
    assert tus.patch(media_id, 0, b"x" * 1200).status_code == 204
    response = tus.media(media_id)
    assert response.status_code == 200, response.text
    status = response.json()
    assert status["media_id"] == media_id
    assert status["state"] == "receiving"
    assert status["upload_offset"] == 1200 and status["upload_length"] == 3000
    assert "avatar_url" not in status
    assert has_no_avatar(stack, tus)


def test_a_patch_at_another_offset_gets_409(stack, tus):
    """A chunk sent for an offset the server is not at (behind or ahead) is refused and not
    appended."""
    media_id = tus.created(3000)
    assert tus.patch(media_id, 0, b"a" * 1000).status_code == 204
    for offset in (0, 2000):
        assert_error(tus.patch(media_id, offset, b"b" * 1000), 409, "offset_mismatch")
    assert tus.offset(media_id) == 1000
    assert read_partial(stack, media_id) == b"a" * 1000
    assert stack.wait_for_appended(media_id, 1000) == 1000


def test_a_patch_past_the_length_gets_413_and_appends_nothing(stack, tus):
    """A chunk longer than what is left of Upload-Length is refused whole, whether its length
    is declared (nginx's check says so before the body) or it comes chunked (the worker, once
    nginx has the body)."""
    media_id = tus.created(1000)
    assert tus.patch(media_id, 0, b"a" * 600).status_code == 204
    assert_error(tus.patch(media_id, 600, b"b" * 500), 413, "too_large")
    assert tus.offset(media_id) == 600

    headers = tus.headers({"Content-Type": OCTETS, "Upload-Offset": "600"})
    chunked = until_url_slot_free(lambda: requests.patch(tus.url(media_id), data=iter([b"c" * 250, b"c" * 250]), headers=headers))
    assert assert_error(chunked, 413, "too_large")["limit"] == 400
    assert tus.offset(media_id) == 600
    assert read_partial(stack, media_id) == b"a" * 600
    assert stack.wait_for_appended(media_id, 600) == 600


def test_a_patch_that_is_not_offset_octet_stream_gets_415(stack, tus):
    """PATCH bodies must be `application/offset+octet-stream`."""
    media_id = tus.created(1000)
    for content_type in ("application/octet-stream", "image/jpeg", None):
        refused = tus.patch(media_id, 0, b"x" * 100, headers={"Content-Type": content_type})
        assert_error(refused, 415, "bad_content_type")
    assert tus.offset(media_id) == 0
    assert stack.appended_bytes(media_id) == 0


def test_checksums_are_verified_before_a_chunk_is_kept(stack, tus):
    """A chunk whose sha1 or sha256 does not match gets 460 and is discarded; an unknown
    algorithm is a 400; matching sha1 and sha256 chunks are appended."""
    data = os.urandom(3000)
    media_id = tus.created(len(data))
    first, second = data[:1000], data[1000:2000]
    for algorithm in ("sha1", "sha256"):
        refused = tus.patch(media_id, 0, first, upload_checksum=checksum(algorithm, b"something else"))
        assert_error(refused, 460, "checksum_mismatch")
        assert tus.offset(media_id) == 0
    unknown = tus.patch(media_id, 0, first, upload_checksum=checksum("md5", first))
    assert_error(unknown, 400, "bad_checksum")
    assert tus.offset(media_id) == 0

    accepted = tus.patch(media_id, 0, first, upload_checksum=checksum("sha1", first))
    assert accepted.status_code == 204 and accepted.headers["Upload-Offset"] == "1000", accepted.text
    accepted = tus.patch(media_id, 1000, second, upload_checksum=checksum("sha256", second))
    assert accepted.status_code == 204 and accepted.headers["Upload-Offset"] == "2000", accepted.text
    assert read_partial(stack, media_id) == data[:2000]
    assert stack.wait_for_appended(media_id, 2000) == 2000


def test_another_users_upload_is_forbidden(stack, tus):
    """Only the owner may look at, add to or terminate an upload."""
    media_id = tus.created(1000)
    assert tus.patch(media_id, 0, b"a" * 100).status_code == 204
    other = TusUser(stack, tus.user + "o")
    assert other.head(media_id).status_code == 403
    assert_error(other.patch(media_id, 100, b"b" * 100), 403, "forbidden")
    assert_error(other.delete(media_id), 403, "forbidden")
    assert tus.offset(media_id) == 100
    assert read_partial(stack, media_id) == b"a" * 100


def test_an_unknown_upload_is_404(stack, tus):
    """An id that names no tus upload is not found: a random one, and a presigned upload's
    (whose single PUT tus must never write into)."""
    presigned = stack.presign(tus.token, "image/jpeg", 1000)
    assert presigned.status_code == 201, presigned.text
    for media_id in (uuid.uuid4().hex, presigned.json()["media_id"]):
        assert tus.head(media_id).status_code == 404
        assert_error(tus.patch(media_id, 0, b"x" * 10), 404, "not_found")
        assert_error(tus.delete(media_id), 404, "not_found")
    assert stack.appended_bytes(presigned.json()["media_id"]) == 0


def test_an_expired_upload_gets_410_and_the_sweeper_removes_it(stack, tus):
    """Past Upload-Expires, HEAD and PATCH get 410 (tuspy cannot resume it either); the sweeper
    then marks the row expired and removes the partial bytes."""
    media_id = tus.created(3000)
    assert tus.patch(media_id, 0, b"x" * 1000).status_code == 204
    assert os.path.getsize(partial_path(stack, media_id)) == 1000
    force_expiry(stack, media_id)

    assert tus.head(media_id).status_code == 410
    assert_error(tus.patch(media_id, 1000, b"x" * 1000), 410, "upload_expired")
    with pytest.raises(TusCommunicationError) as by_tuspy:
        tus.client().uploader(file_stream=io.BytesIO(b"x" * 3000), url=tus.url(media_id), chunk_size=CHUNK)
    assert by_tuspy.value.status_code == 410

    stack.ctl("sweep")
    assert stack.sql(f"SELECT state FROM media_files WHERE id = '{media_id}'") == [["expired"]]
    assert partial_files(stack, media_id) == []
    assert tus.head(media_id).status_code == 410
    assert stack.wait_for_appended(media_id, 1000) == 1000


@pytest.mark.parametrize("refusal", ["no_token", "other_user", "wrong_offset", "past_the_length", "expired"])
def test_a_patch_is_refused_before_its_body_is_read(stack, tus, refusal):
    """The token, owner, offset, remaining length and expiry are checked on the headers
    alone: the refusal arrives while the client has sent no byte of its declared 1 MB body
    (nginx may send an interim 100 Continue first), and nothing is buffered or appended."""
    media_id = tus.created(2000 if refusal == "past_the_length" else 1_200_000)
    token, offset = tus.token, 0
    status, code = {"no_token": (401, "missing_token"), "other_user": (403, "forbidden"),
                    "wrong_offset": (409, "offset_mismatch"), "past_the_length": (413, "too_large"),
                    "expired": (410, "upload_expired")}[refusal]
    if refusal == "other_user":
        token = stack.token(tus.user + "o")
    if refusal == "wrong_offset":
        offset = 5
    if refusal == "expired":
        force_expiry(stack, media_id)
    authorization = "" if refusal == "no_token" else f"Authorization: Bearer {token}\r\n"
    final = headers_only(stack, f"PATCH /tus/{media_id} HTTP/1.1\r\nHost: {{host}}\r\n{authorization}Tus-Resumable: 1.0.0\r\n"
                                f"Content-Type: {OCTETS}\r\nUpload-Offset: {offset}\r\n"
                                "Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n", code)
    assert final.startswith(str(status)), final
    wait_until_empty(stack, "incoming")
    assert stack.appended_bytes(media_id) == 0
    if refusal == "expired":
        stack.ctl("sweep")
        assert partial_files(stack, media_id) == []
    else:
        assert tus.offset(media_id) == 0


def test_concurrent_patches_on_one_upload_never_interleave(stack, tus):
    """Two chunks sent at once for the same offset: both pass nginx's check, one is appended
    (204) and the other, ordered behind it by the worker's lock on the partial file, is refused
    (409 offset_mismatch); the partial file holds exactly the winners, in order."""
    media_id = tus.created(3 * CHUNK + 100)     # never completes here
    expected = b""
    for round_, offset in enumerate((0, CHUNK, 2 * CHUNK)):
        bodies = [bytes([ord("a") + 2 * round_]) * CHUNK, bytes([ord("b") + 2 * round_]) * CHUNK]
        barrier = threading.Barrier(2)
        answers = [None, None]

        def send(i):
            barrier.wait()
            try:
                answers[i] = tus.patch(media_id, offset, bodies[i], wait_for_slot=False)
            except Exception as error:  # reported below, in the test's own thread
                answers[i] = error

        threads = [threading.Thread(target=send, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert all(isinstance(answer, requests.Response) for answer in answers), answers
        winners = [i for i, answer in enumerate(answers) if answer.status_code == 204]
        assert len(winners) == 1, [(answer.status_code, answer.text) for answer in answers]
        winner, loser = answers[winners[0]], answers[1 - winners[0]]
        assert winner.headers["Upload-Offset"] == str(offset + CHUNK)
        assert loser.headers["Content-Type"].startswith("application/json"), loser.text
        assert (loser.status_code, loser.json()["error"]["code"]) == (409, "offset_mismatch"), loser.text
        expected += bodies[winners[0]]
    assert tus.offset(media_id) == 3 * CHUNK
    assert read_partial(stack, media_id) == expected
    assert stack.wait_for_appended(media_id, 3 * CHUNK) == 3 * CHUNK


def test_one_upload_takes_two_chunks_at_a_time(stack, tus):
    """nginx admits two bodies at once per upload (the next chunk may start before it has let
    go of the last), and refuses a third before reading it: one client cannot hold everyone's
    upload slots with one upload's trickled chunks."""
    media_id = tus.created(3 * CHUNK)
    head = (f"PATCH /tus/{media_id} HTTP/1.1\r\nHost: {{host}}\r\nAuthorization: Bearer {tus.token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTETS}\r\nUpload-Offset: 0\r\nContent-Length: {CHUNK}\r\n\r\n")
    parts = urllib.parse.urlsplit(stack.base_url)
    held = []
    try:
        for _ in range(2):
            conn = socket.create_connection((parts.hostname, parts.port), timeout=5)
            conn.sendall(head.replace("{host}", parts.netloc).encode() + b"x" * 100)
            held.append(conn)
        time.sleep(0.3)   # both are past nginx's checks and waiting for their bodies
        third = headers_only(stack, head, "too_many_connections")
        assert third.startswith("429"), third
    finally:
        for conn in held:
            conn.close()
    assert tus.offset(media_id) == 0
    assert until_url_slot_free(lambda: tus.patch(media_id, 0, b"y" * CHUNK, wait_for_slot=False)).status_code == 204


def lock_waiters(path):
    """The pids waiting for an exclusive flock on `path` (/proc/locks marks waiters with `->`)."""
    inode = os.stat(path).st_ino
    waiters = []
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if "->" in fields and "FLOCK" in fields:
                at = fields.index("FLOCK")
                pid, device_inode = fields[at + 3], fields[at + 4]
                if int(device_inode.rsplit(":", 1)[1]) == inode:
                    waiters.append(int(pid))
    return waiters


def test_a_worker_killed_mid_patch_leaves_the_offset_and_the_bytes_as_they_were(stack, tus):
    """A worker dies while it holds a chunk (SIGKILL, here while it waits for the partial file's
    lock, which the test holds): the client gets a 503, the offset and the file are as before,
    the lock died with the worker, and the upload resumes from the same offset."""
    import fcntl
    import signal

    media_id = tus.created(3 * CHUNK)
    first = os.urandom(CHUNK)
    assert tus.patch(media_id, 0, first).status_code == 204
    answers = []
    with open(partial_path(stack, media_id), "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        sender = threading.Thread(target=lambda: answers.append(tus.patch(media_id, CHUNK, os.urandom(CHUNK), wait_for_slot=False)))
        sender.start()
        deadline = time.time() + 10
        while not lock_waiters(partial_path(stack, media_id)) and time.time() < deadline:
            time.sleep(0.02)
        waiters = lock_waiters(partial_path(stack, media_id))
        assert len(waiters) == 1, "the worker with the chunk waits for the lock"
        assert waiters[0] in stack.pool_workers("fast"), "a chunk that does not complete the upload is the fast pool's"
        os.kill(waiters[0], signal.SIGKILL)
        sender.join(30)
    assert answers, "the chunk's request ended"
    assert_error(answers[0], 503, "unavailable")    # nginx's answer for a worker that died
    # The worker held the chunk in memory: it left nothing behind.
    assert stack.files_under("incoming") == []
    assert tus.offset(media_id) == CHUNK
    assert read_partial(stack, media_id) == first
    rest = os.urandom(2 * CHUNK)
    assert tus.patch(media_id, CHUNK, rest[:CHUNK]).status_code == 204
    # Random bytes are no image: the last chunk completes the upload and the pipeline refuses it.
    assert_error(tus.patch(media_id, 2 * CHUNK, rest[CHUNK:]), 415, "bad_type")
    assert stack.wait_for_appended(media_id, 3 * CHUNK) == 3 * CHUNK, "every byte appended once, the killed chunk never"


# --- Whole uploads with tuspy ----------------------------------------------------------------

def test_tuspy_uploads_a_photo_in_256k_chunks_and_it_is_published(stack, tus, photo):
    """tuspy, as any tus client would: create with filetype and filename, then 256 KB PATCHes.
    The completing PATCH runs the pipeline; the avatar is published as a 512×512 WebP and
    nothing of the upload is left in quarantine."""
    path, data = photo
    uploader = tus.client().uploader(file_path=path, chunk_size=CHUNK, metadata={"filetype": "image/jpeg", "filename": "photo.jpg"})
    uploader.upload()
    tus.track(uploader.url)
    media_id = media_id_of(stack, uploader.url)
    assert uploader.offset == len(data)
    assert uploader.request.status_code == 204
    assert uploader.request.response_headers.get("cameo-media-state") in ("ready", "scanning"), uploader.request.response_headers
    assert_published(stack, tus, media_id)
    assert partial_files(stack, media_id) == []
    assert stack.wait_for_appended(media_id, len(data)) == len(data)


def test_tuspy_resumes_after_a_stop_and_a_patch_cut_mid_body(stack, tus, photo, monkeypatch):
    """An upload stopped half-way, then a PATCH cut mid-body, resumes in a new tuspy uploader
    from the server's offset: the cut chunk was never appended, the new uploader sends only
    what was missing, the workers appended each byte of the file exactly once, and the avatar
    is published."""
    path, data = photo
    client = tus.client()
    first = client.uploader(file_path=path, chunk_size=CHUNK, metadata={"filetype": "image/jpeg", "filename": "photo.jpg"})
    first.upload(stop_at=3 * CHUNK)
    tus.track(first.url)
    media_id = media_id_of(stack, first.url)
    resumed_at = 3 * CHUNK
    assert first.offset == resumed_at
    assert tus.offset(media_id) == resumed_at
    assert tus.media(media_id).json()["state"] == "receiving"

    # The next chunk, cut half-way: its head and 128 KB of its 256 KB, then the connection drops.
    parts = urllib.parse.urlsplit(stack.base_url)
    head = (f"PATCH /tus/{media_id} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {tus.token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTETS}\r\nUpload-Offset: {resumed_at}\r\nContent-Length: {CHUNK}\r\n\r\n")
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as conn:
        conn.sendall(head.encode() + data[resumed_at : resumed_at + CHUNK // 2])
        conn.settimeout(0.5)
        try:
            answer = conn.recv(65536)
        except socket.timeout:
            answer = None
    assert answer is None, answer       # admitted: nginx was waiting for the rest of the body
    assert tus.offset(media_id) == resumed_at
    assert os.path.getsize(partial_path(stack, media_id)) == resumed_at
    # Once nginx has let go of the dropped body, a PATCH at a stale offset is refused as such.
    assert_error(tus.patch(media_id, 0, b""), 409, "offset_mismatch")

    recorder = PatchRecorder(monkeypatch)
    second = client.uploader(file_path=path, url=first.url, chunk_size=CHUNK)
    assert second.offset == resumed_at      # from its HEAD
    second.upload()
    monkeypatch.undo()
    assert second.offset == len(data)

    sent = recorder.sent
    assert [patch["offset"] for patch in sent] == list(range(resumed_at, len(data), CHUNK))
    assert len(sent) == math.ceil((len(data) - resumed_at) / CHUNK)
    assert sum(patch["bytes"] for patch in sent) == len(data) - resumed_at
    assert all(patch["status"] == 204 for patch in sent), sent
    assert_published(stack, tus, media_id)
    assert partial_files(stack, media_id) == []
    assert stack.wait_for_appended(media_id, len(data)) == len(data)


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_tuspy_with_upload_checksum_is_published(stack, tus, jpeg, algorithm, monkeypatch):
    """tuspy's Upload-Checksum on every chunk (sha1, or sha256 through its class attribute) is
    accepted, and the upload is published."""
    recorder = PatchRecorder(monkeypatch)
    kind = Uploader if algorithm == "sha1" else Sha256Uploader
    uploader = kind(file_stream=io.BytesIO(jpeg), client=tus.client(), chunk_size=50_000,
                    metadata={"filetype": "image/jpeg"}, upload_checksum=True)
    uploader.upload()
    monkeypatch.undo()
    tus.track(uploader.url)
    media_id = media_id_of(stack, uploader.url)
    assert len(recorder.sent) == math.ceil(len(jpeg) / 50_000)
    assert all(patch["checksum"].startswith(f"{algorithm} ") for patch in recorder.sent), recorder.sent
    assert all(patch["status"] == 204 for patch in recorder.sent), recorder.sent
    assert_published(stack, tus, media_id)


def test_a_non_image_completed_over_tus_is_rejected(stack, tus):
    """Magic bytes decide, not the declared filetype: the completing PATCH gets the pipeline's
    415 bad_type (tuspy raises it), the upload ends rejected, nothing is left in quarantine
    and no avatar appears."""
    junk = b"<html><script>alert(1)</script></html>" * 50
    uploader = tus.client().uploader(file_stream=io.BytesIO(junk), chunk_size=1000, metadata={"filetype": "image/jpeg", "filename": "me.jpg"})
    with pytest.raises(TusUploadFailed) as failed:
        uploader.upload()
    tus.track(uploader.url)
    media_id = media_id_of(stack, uploader.url)
    assert uploader.offset == 1000      # the first chunk went in; the completing one was refused
    assert failed.value.status_code == 415
    assert json.loads(failed.value.response_content)["error"]["code"] == "bad_type"
    status = wait_for_state(tus, media_id, wanted=("rejected",))
    assert status["state"] == "rejected" and status["reject_reason"] == "bad_type", status
    assert partial_files(stack, media_id) == []
    assert has_no_avatar(stack, tus)


# --- Creation with upload --------------------------------------------------------------------

def test_creation_with_a_first_chunk_then_a_patch(stack, tus, jpeg):
    """A POST whose body is the first chunk answers 201 with Upload-Offset; one PATCH of the
    rest completes it and the avatar is published."""
    split = 50_000
    response = tus.create(len(jpeg), body=jpeg[:split])
    assert response.status_code == 201, response.text
    media_id = media_id_of(stack, response.headers["Location"])
    assert response.headers["Upload-Offset"] == str(split)
    assert tus.offset(media_id) == split

    done = tus.patch(media_id, split, jpeg[split:])
    assert done.status_code == 204, done.text
    assert done.headers["Upload-Offset"] == str(len(jpeg))
    assert done.headers["Cameo-Media-State"] in ("ready", "scanning")
    assert_published(stack, tus, media_id)
    assert partial_files(stack, media_id) == []
    assert stack.wait_for_appended(media_id, len(jpeg)) == len(jpeg)


def test_creation_with_the_whole_file_publishes_it_with_its_crop(stack, tus):
    """A POST carrying the whole file is created and completed at once, and the crop from
    Upload-Metadata is honoured (the right half of a red|blue picture comes out blue)."""
    png = halves_png()
    crop = json.dumps({"x": 400, "y": 0, "size": 400})
    response = tus.create(len(png), meta=metadata("image/png", filename="halves.png", crop=crop), body=png)
    assert response.status_code == 201, response.text
    media_id = media_id_of(stack, response.headers["Location"])
    assert response.headers["Upload-Offset"] == str(len(png))
    published = assert_published(stack, tus, media_id).convert("RGB")
    r, g, b = published.getpixel((256, 256))
    assert b > 180 and r < 60, (r, g, b)
    assert partial_files(stack, media_id) == []


# --- Termination -----------------------------------------------------------------------------

def test_termination_removes_the_partial_upload(stack, tus):
    """DELETE answers 204 and the partial bytes are gone; the upload then answers 410, to
    HEAD, PATCH and a tuspy resume."""
    media_id = tus.created(3000)
    assert tus.patch(media_id, 0, b"x" * 1000).status_code == 204
    assert os.path.exists(partial_path(stack, media_id))
    deleted = tus.delete(media_id)
    assert deleted.status_code == 204, deleted.text
    assert partial_files(stack, media_id) == []
    assert tus.head(media_id).status_code == 410
    refused = tus.patch(media_id, 1000, b"x" * 1000)
    assert refused.status_code == 410, refused.text
    with pytest.raises(TusCommunicationError) as by_tuspy:
        tus.client().uploader(file_stream=io.BytesIO(b"x" * 3000), url=tus.url(media_id))
    assert by_tuspy.value.status_code == 410


def test_a_completed_upload_cannot_be_terminated(stack, tus, jpeg):
    """Once the last byte is in, the upload is decided: DELETE gets 409 already_decided and the
    avatar stays."""
    media_id = tus.created(len(jpeg))
    done = tus.patch(media_id, 0, jpeg)
    assert done.status_code == 204, done.text
    assert_published(stack, tus, media_id)
    assert_error(tus.delete(media_id), 409, "already_decided")
    assert_published(stack, tus, media_id)

"""The upload page over tus (files over 1 MB; SPEC §2, the /tus/ rows) in headless Chromium
against the real stack: a photo in 1 MB chunks is published with its crop; an offline spell
mid-upload (DevTools network emulation) resumes from the server's offset without sending again
what the server had, and the progress bar never goes back by more than the chunk that was cut;
a lost answer and a stale offset (409 offset_mismatch) are settled by the server's offset; a
reload resumes the remembered upload; a Location naming another host name of the same nginx is
followed on the page's own origin; a non-image is refused with the server's message; cancel
terminates the partial upload. And the page's bookkeeping: failed status checks after the last
byte end in a Retry that follows the upload instead of sending it again; a cancel while the
creation is answered, or during the last chunk, leaves nothing partial and says what became of
the photo; a creation without Location is a refusal; the user's other remembered uploads are
terminated before a creation; stale, unreadable and foreign remembered entries are dropped.

What the server wrote is counted from the workers' own logs: every PATCH's log line carries
`media=<id> appended=<N>`, so their sum is each byte appended, however often it was sent.
"""
import io
import json
import math
import os
import time

import numpy as np
import pytest
import requests
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from conftest import b64, block_image, mean_abs_diff

CHUNK = 1048576           # the page's tus chunk (TUS_CHUNK in cameo-upload.js)
STORE_PREFIX = "cameo-upload:tus:"


# ---- helpers --------------------------------------------------------------------------------

def noisy_jpeg(width=1600, height=1200, amplitude=40, quality=92):
    """Colour blocks (so the crop shows in the result) under strong noise (so the JPEG is big:
    about 2.2 MB for the defaults, three chunks), within 2048 px and 5 MB."""
    base = np.asarray(block_image(width, height, 200), dtype=np.int16)
    noise = np.random.default_rng(11).integers(-amplitude, amplitude + 1, base.shape)
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, subsampling=0)
    data = out.getvalue()
    assert 1.5 * 1048576 < len(data) < 3 * 1048576, len(data)
    return image, data




def tus_head(stack, token, media_id):
    return requests.head(stack.url(f"/tus/{media_id}"),
                         headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}, timeout=5)


def server_offset(stack, token, media_id):
    response = tus_head(stack, token, media_id)
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def media_state(stack, token, media_id):
    return requests.get(stack.url(f"/media/{media_id}"), headers={"Authorization": f"Bearer {token}"}, timeout=5).json()


def remembered(page):
    """The page's remembered tus uploads (localStorage), key to value."""
    return page.driver.execute_script(
        "return Object.fromEntries(Object.keys(localStorage).filter(k => k.startsWith(arguments[0]))"
        ".map(k => [k, JSON.parse(localStorage.getItem(k))]))", STORE_PREFIX)


def throttle(page, upload_bytes_per_s, offline=False):
    page.driver.execute_cdp_cmd("Network.enable", {})
    page.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": offline, "latency": 5, "downloadThroughput": -1, "uploadThroughput": upload_bytes_per_s})


def media_id_of(page):
    page.wait_for(lambda _: page.root.get_attribute("data-media-id"), "the tus upload to be created")
    return page.root.get_attribute("data-media-id")


def wait_for_offset(stack, token, media_id, at_least, timeout=30):
    """The server's offset (HEAD, as the user) once it is at least `at_least`."""
    deadline = time.time() + timeout
    while (offset := server_offset(stack, token, media_id)) < at_least:
        assert time.time() < deadline, f"the server's offset stayed at {offset}, below {at_least}"
        time.sleep(0.1)
    return offset


def published(avatar_url):
    response = requests.get(avatar_url)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/webp"
    return Image.open(io.BytesIO(response.content)).convert("RGB")


def expected_crop(source, crop, size=(512, 512)):
    x, y, side = crop
    return source.crop((x, y, x + side, y + side)).resize(size, Image.LANCZOS)


def largest_drop(values):
    """The largest step backwards between consecutive progress values."""
    return max([0] + [a - b for a, b in zip(values, values[1:])])


def intercept_tus(cdp, paused, stage):
    """Routes the page's tus requests through `paused` (DevTools Fetch) at `stage`: Request,
    before they are sent, or Response, before the page sees the answer."""
    cdp.on("Fetch.requestPaused", paused)
    cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*/tus/*", "requestStage": stage}]})


def start_upload(page, path):
    """Chooses the file, waits for the crop to be ready, and presses Upload."""
    page.choose(path)
    page.wait_state("ready")
    page.role("upload").click()


@pytest.fixture
def partials(stack):
    """Registers (token, media id) of the uploads a test starts; whatever of them is still partial
    when it ends (a failed test) is terminated, so later suites find an empty quarantine."""
    made = []
    yield lambda token, media_id: made.append((token, media_id))
    for token, media_id in made:
        requests.delete(stack.url(f"/tus/{media_id}"), timeout=5,
                        headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"})


# ---- tests ----------------------------------------------------------------------------------

def test_a_photo_over_1_mb_goes_over_tus_in_chunks_and_is_published(page, stack, user, files, partials):
    source, data = noisy_jpeg()
    token = stack.token(user)
    page.open(token=token)
    page.choose(files("noisy.jpg", data))
    page.wait_state("ready")
    page.role("box").send_keys("-" * 10, Keys.ARROW_RIGHT * 5)   # 1200 - 10 * 24 = 960, then 5 x 12 px right
    crop = page.crop()
    assert crop == (320 + 60, 120, 960), crop
    page.record_progress()
    page.role("upload").click()
    partials(token, media_id_of(page))
    page.wait_state("done", timeout=60)

    assert page.root.get_attribute("data-transport") == "tus"
    assert page.presign_requests() == 0 and page.root.get_attribute("data-presign-count") is None
    assert page.root.get_attribute("data-tus-create-count") == "1"
    media_id = page.root.get_attribute("data-media-id")
    # Each byte sent once, and appended once.
    assert int(page.root.get_attribute("data-tus-bytes-sent")) == len(data)
    assert stack.wait_for_appended(media_id, len(data)) == len(data)
    assert page.root.get_attribute("data-tus-offset") == str(len(data))
    # The bar moved through the chunks, forwards only, to 100.
    values = page.progress_values()
    assert values[-1] == 100 and largest_drop(values) == 0, values
    assert any(0 < v < 100 for v in values), values
    assert "live" in page.role("status").text
    assert remembered(page) == {}          # done: nothing left to resume

    state = media_state(stack, token, media_id)
    assert state["state"] == "ready", state
    avatar_url = page.root.get_attribute("data-avatar-url")
    assert state["avatar_url"] == avatar_url == stack.current_avatar(token).json()["avatar_url"]
    # The crop travelled in Upload-Metadata: the published square is the chosen one.
    result = published(avatar_url)
    chosen = mean_abs_diff(result, expected_crop(source, crop))
    centred = mean_abs_diff(result, expected_crop(source, (200, 0, 1200)))
    assert chosen < 8, f"published avatar differs from the chosen crop by {chosen:.1f}"
    assert centred > 2 * chosen + 5, (chosen, centred)
    assert page.script_errors() == []


def test_an_offline_spell_mid_upload_resumes_from_the_servers_offset(page, stack, user, files, partials):
    """Throttled to 400 KB/s, the network goes away a while into the second chunk, for a few
    seconds. The page waits (offline), then asks the server for its offset and sends only the
    rest: the workers appended each byte once, the page sent at most the cut chunk twice, and
    its progress bar went back by no more than that chunk's share."""
    _, data = noisy_jpeg()
    size = len(data)
    token = stack.token(user)
    page.open(token=token)
    page.choose(files("offline.jpg", data))
    page.wait_state("ready")
    throttle(page, 400_000)
    page.record_progress()
    page.role("upload").click()
    media_id = media_id_of(page)
    partials(token, media_id)

    wait_for_offset(stack, token, media_id, 1)      # the first chunk is in,
    time.sleep(1.0)                                 # and about 400 KB of the second is sent
    before = server_offset(stack, token, media_id)
    assert 0 < before < size, before
    assert page.state() == "uploading"
    sent_before = int(page.root.get_attribute("data-tus-bytes-sent"))
    assert sent_before > before, (sent_before, before)   # part of the next chunk is on its way

    throttle(page, 400_000, offline=True)
    page.wait_for(lambda _: page.state() == "retrying" and "offline" in page.role("status").text,
                  "the page to notice it is offline", timeout=10)
    assert "Paused" in page.role("progress-label").text
    time.sleep(3.0)
    # Nothing arrived, and the page waited without sending.
    assert server_offset(stack, token, media_id) == before
    assert page.state() == "retrying"
    assert media_state(stack, token, media_id)["state"] == "receiving"
    cut = int(page.root.get_attribute("data-tus-bytes-sent")) - before
    assert 0 < cut <= CHUNK, cut

    throttle(page, 400_000)
    page.wait_state("done", timeout=60)
    sent = int(page.root.get_attribute("data-tus-bytes-sent"))
    assert size < sent <= size + CHUNK, (sent, size)
    assert sent - size == cut, (sent, size, cut)         # only the cut chunk went twice
    assert stack.wait_for_appended(media_id, size) == size
    # A second later, still exactly once.
    time.sleep(1.0)
    assert stack.appended_bytes(media_id) == size

    # The bar went back once, to what the server had: by the cut chunk's share, at most a chunk's.
    values = page.progress_values()
    assert values[-1] == 100, values
    drop = largest_drop(values)
    assert 0 < drop <= math.ceil(cut / size * 100) <= math.ceil(CHUNK / size * 100), (drop, cut, values)
    assert page.root.get_attribute("data-tus-create-count") == "1"
    assert page.root.get_attribute("data-media-id") == media_id
    assert remembered(page) == {}
    published(page.root.get_attribute("data-avatar-url"))
    assert page.script_errors() == []


def test_a_lost_answer_and_a_stale_offset_are_settled_by_the_server(page, stack, user, files, devtools, partials):
    """The first chunk reaches the server but its 204 is lost (the browser sees a 503). The page
    asks (HEAD), and the test makes that answer stale (offset 0): the PATCH at 0 gets 409
    offset_mismatch, whose body names the server's offset, and the page continues from there.
    The first chunk went twice over the wire, but was appended once."""
    _, data = noisy_jpeg()
    size = len(data)
    token = stack.token(user)
    page.open(token=token)
    cdp = devtools()
    seen = []   # (method, Upload-Offset sent, status the server gave)

    def paused(params):
        request = params["request"]
        method = request["method"]
        status = params.get("responseStatusCode")
        sent_offset = next((v for k, v in request["headers"].items() if k.lower() == "upload-offset"), None)
        seen.append((method, sent_offset, status))
        if (method, sent_offset, status) == ("PATCH", "0", 204) and [m for m, _, _ in seen].count("PATCH") == 1:
            cdp.send("Fetch.fulfillRequest", {
                "requestId": params["requestId"], "responseCode": 503,
                "responseHeaders": [{"name": "Content-Type", "value": "application/json"}],
                "body": b64(b'{"error":{"code":"unavailable","message":"Lost."}}')}, wait=False)
        elif method == "HEAD" and [m for m, _, _ in seen].count("HEAD") == 1:
            headers = [h for h in params["responseHeaders"] if h["name"].lower() != "upload-offset"]
            cdp.send("Fetch.fulfillRequest", {
                "requestId": params["requestId"], "responseCode": 200,
                "responseHeaders": headers + [{"name": "Upload-Offset", "value": "0"}]}, wait=False)
        else:
            cdp.send("Fetch.continueRequest", {"requestId": params["requestId"]}, wait=False)

    intercept_tus(cdp, paused, "Response")
    start_upload(page, files("lost.jpg", data))
    partials(token, media_id_of(page))
    page.wait_state("retrying")
    assert "Lost." in page.role("status").text
    page.wait_state("done", timeout=60)

    media_id = page.root.get_attribute("data-media-id")
    assert seen == [
        ("POST", None, 201),
        ("PATCH", "0", 204),            # answered 503 by the test
        ("HEAD", None, 200),            # its offset rewritten to 0
        ("PATCH", "0", 409),            # offset_mismatch, {"offset": 1048576}
        ("PATCH", str(CHUNK), 204),
        ("PATCH", str(2 * CHUNK), 204),
    ], seen
    assert stack.wait_for_appended(media_id, size) == size
    sent = int(page.root.get_attribute("data-tus-bytes-sent"))
    assert size < sent <= size + 2 * CHUNK, (sent, size)   # the first chunk, and maybe the refused one
    assert media_state(stack, token, media_id)["state"] == "ready"


def test_a_reload_resumes_the_remembered_upload(page, stack, user, files, partials):
    """The page remembers the upload URL (per endpoint, user and file): after a reload
    mid-upload, the same file resumes the same upload from the server's offset."""
    _, data = noisy_jpeg()
    size = len(data)
    token = stack.token(user)
    path = files("reload.jpg", data)
    page.open(token=token)
    page.choose(path)
    page.wait_state("ready")
    throttle(page, 400_000)
    page.role("upload").click()
    media_id = media_id_of(page)
    partials(token, media_id)
    saved = remembered(page)
    assert len(saved) == 1, saved
    (key, value), = saved.items()
    # Per endpoint, user and file; the file's name only hashed.
    assert json.loads(key[len(STORE_PREFIX):])[:3] == [stack.base_url, user, size], key
    assert "reload" not in key and "reload" not in json.dumps(value), (key, value)
    assert value["url"] == stack.url(f"/tus/{media_id}") and value["length"] == size
    wait_for_offset(stack, token, media_id, 1)

    page.open(token=token)                 # a reload (the upload in flight is dropped)
    page.driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                                {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    time.sleep(0.5)
    offset = server_offset(stack, token, media_id)
    assert 0 < offset < size
    assert len(remembered(page)) == 1
    page.choose(path)
    page.wait_state("ready")
    page.role("upload").click()
    page.wait_state("done", timeout=60)

    assert page.root.get_attribute("data-media-id") == media_id
    assert page.root.get_attribute("data-tus-create-count") is None     # resumed, not created
    assert int(page.root.get_attribute("data-tus-bytes-sent")) == size - offset
    assert stack.wait_for_appended(media_id, size) == size
    assert remembered(page) == {}
    assert media_state(stack, token, media_id)["state"] == "ready"


def test_the_chunks_stay_on_the_origin_the_page_was_reached_at(page, stack, user, files, partials):
    """A page reached under another name of the same nginx (localhost, where public_base_url
    says 127.0.0.1) keeps its PATCHes on its own origin, since Location is relative: its CSP
    allows only that origin (connect-src 'self'), and the cookie would not follow another."""
    assert "127.0.0.1" in stack.page_url
    _, data = noisy_jpeg()
    token = stack.token(user)
    page.driver.get("about:blank")
    page.driver.get(stack.page_url.replace("127.0.0.1", "localhost") + f"#token={token}")
    page.root = page.driver.find_element(By.ID, "cameo-upload")
    page.wait_state("idle")
    start_upload(page, files("elsewhere.jpg", data))
    partials(token, media_id_of(page))
    page.wait_state("done", timeout=60)
    media_id = page.root.get_attribute("data-media-id")
    assert page.root.get_attribute("data-transport") == "tus"
    assert stack.wait_for_appended(media_id, len(data)) == len(data)
    # No request was blocked (the published avatar's URL, from cdn_base_url, still names
    # 127.0.0.1, and img-src refuses it here: SPEC's note to add that origin to img-src).
    assert [e for e in page.script_errors() if "connect-src" in e] == []
    urls = page.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"
                                      ".filter(n => n.includes('/tus/'))")
    assert urls and all(url.startswith("http://localhost:") for url in urls), urls


def test_a_non_image_over_tus_shows_the_servers_415_message(page, stack, user, files, partials):
    token = stack.token(user)
    page.open(token=token)
    page.choose(files("holiday.jpg", b"This is not a picture at all.\n" * 50_000))   # 1.5 MB
    page.wait_state("ready")
    page.role("upload").click()
    partials(token, media_id_of(page))
    page.wait_state("error", timeout=30)
    assert page.root.get_attribute("data-transport") == "tus"
    assert page.role("error").text == "Only image/jpeg, image/png, image/webp images are accepted."
    assert page.role("retry").get_attribute("hidden") is not None
    media_id = page.root.get_attribute("data-media-id")
    assert media_state(stack, token, media_id)["state"] == "rejected"
    assert remembered(page) == {}
    assert stack.current_avatar(token).status_code == 404


def test_cancel_terminates_the_partial_upload(page, stack, user, files, partials):
    _, data = noisy_jpeg()
    token = stack.token(user)
    page.open(token=token)
    page.choose(files("cancel.jpg", data))
    page.wait_state("ready")
    throttle(page, 400_000)
    page.role("upload").click()
    media_id = media_id_of(page)
    partials(token, media_id)
    wait_for_offset(stack, token, media_id, 1)
    page.role("cancel").click()
    assert page.state() == "cancelled"
    assert page.role("status").text == "Upload cancelled."
    assert remembered(page) == {}
    # DELETE (termination): the upload answers 410 and its bytes are gone.
    page.wait_for(lambda _: tus_head(stack, token, media_id).status_code == 410, "the upload to be terminated", 10)
    assert not os.path.exists(os.path.join(stack.media_root, "quarantine", media_id))
    assert stack.current_avatar(token).status_code == 404


# ---- status checks, cancel and creation (the page's own bookkeeping) -------------------------

def tus_create(stack, token, length=1000):
    """A partial upload made directly (as an earlier visit of the page would have): its id."""
    response = requests.post(stack.url("/tus/"), timeout=5, headers={
        "Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0", "Upload-Length": str(length),
        "Upload-Metadata": "filetype " + b64(b"image/jpeg")})
    assert response.status_code == 201, response.text
    return response.headers["Location"].rsplit("/", 1)[1]


def remember(page, key_parts, value):
    """Plants an entry in the page's remembered uploads, as the page writes them."""
    page.driver.execute_script("localStorage.setItem(arguments[0], JSON.stringify(arguments[1]))",
                               STORE_PREFIX + json.dumps(key_parts, separators=(",", ":")), value)


def remembered_entry(stack, media_id, length=1000, **changes):
    now_ms = int(time.time() * 1000)
    value = {"url": stack.url(f"/tus/{media_id}"), "length": length, "type": "image/jpeg", "crop": None,
             "expires": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3600)), "createdAt": now_ms}
    value.update(changes)
    return value


@pytest.fixture
def planted(page):
    """For a test that plants remembered uploads: the page's origin forgets them afterwards (the
    browser, and its localStorage, is shared by the tests)."""
    yield
    try:
        page.driver.execute_script("localStorage.clear()")
    except Exception:
        pass


def header(headers, name):
    return next((h["value"] for h in headers or [] if h["name"].lower() == name.lower()), None)


def test_a_status_check_failure_after_the_last_byte_retries_by_following_the_upload(page, stack, user, files, devtools, partials):
    """Every byte is in, but the status checks (GET /media/{id}) fail: the page keeps trying
    for its time budget (the test moves the page's clock past it rather than wait a minute),
    then says the server has the photo. Retry asks the server (HEAD), hears it is complete and
    follows it: no new upload, no byte sent again."""
    _, data = noisy_jpeg()
    size = len(data)
    token = stack.token(user)
    page.open(token=token)
    page.skewable_clock()
    cdp = devtools()
    failing = {"on": True}
    tus_requests = []
    status_checks = []

    def paused(params):
        request = params["request"]
        if "/media/" in request["url"]:
            status_checks.append(failing["on"])
            if failing["on"]:
                cdp.send("Fetch.failRequest", {"requestId": params["requestId"], "errorReason": "ConnectionFailed"}, wait=False)
                return
        else:
            tus_requests.append(request["method"])
        cdp.send("Fetch.continueRequest", {"requestId": params["requestId"]}, wait=False)

    cdp.on("Fetch.requestPaused", paused)
    cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*/media/*", "requestStage": "Request"},
                                           {"urlPattern": "*/tus/*", "requestStage": "Request"}]})
    start_upload(page, files("status.jpg", data))
    media_id = media_id_of(page)
    partials(token, media_id)
    page.wait_for(lambda _: page.state() == "retrying" and "The server has the photo" in page.role("status").text,
                  "the status checks to fail", timeout=60)
    assert "The network connection failed." in page.role("status").text
    assert tus_requests == ["POST", "PATCH", "PATCH", "PATCH"], tus_requests
    assert int(page.root.get_attribute("data-tus-bytes-sent")) == size
    assert len(remembered(page)) == 1            # kept until the upload is seen to end
    # The last chunk rendered the avatar already; the page just cannot see it.
    assert media_state(stack, token, media_id)["state"] == "ready"

    page.skew_clock(120_000)                  # past the page's budget for failed checks
    page.wait_state("error", timeout=40)
    error = page.role("error").text
    assert error.startswith("The server has the photo, but its status could not be checked:"), error
    assert "Choose Retry to check again." in error
    assert page.role("retry").is_displayed()
    assert len(remembered(page)) == 1
    assert len(status_checks) >= 2, status_checks

    failing["on"] = False
    page.role("retry").click()
    page.wait_state("done", timeout=60)
    assert tus_requests == ["POST", "PATCH", "PATCH", "PATCH", "HEAD"], tus_requests
    assert page.root.get_attribute("data-tus-create-count") == "1"
    assert page.root.get_attribute("data-media-id") == media_id
    assert int(page.root.get_attribute("data-tus-bytes-sent")) == size
    assert stack.wait_for_appended(media_id, size) == size
    assert remembered(page) == {}
    assert page.role("error").text == ""
    assert stack.current_avatar(token).json()["avatar_url"] == page.root.get_attribute("data-avatar-url")


def test_cancel_while_the_creation_is_answered_leaves_no_partial_upload(page, stack, user, files, devtools, partials):
    """The creation reaches the server, and its 201 is held (DevTools) while the user cancels.
    The page still reads the answer when it comes, and terminates the upload it names instead
    of sending chunks to it or leaving it to hold one of the user's partial-upload places."""
    import threading

    _, data = noisy_jpeg()
    token = stack.token(user)
    page.open(token=token)
    cdp = devtools()
    seen = []
    held = {}
    creation_held = threading.Event()

    def paused(params):
        method = params["request"]["method"]
        seen.append((method, params.get("responseStatusCode")))
        if method == "POST" and not held:
            held["id"] = params["requestId"]
            held["location"] = header(params.get("responseHeaders"), "Location")
            creation_held.set()
            return
        cdp.send("Fetch.continueRequest", {"requestId": params["requestId"]}, wait=False)

    intercept_tus(cdp, paused, "Response")
    start_upload(page, files("creation.jpg", data))
    assert creation_held.wait(20), "no creation was sent"
    media_id = held["location"].rsplit("/", 1)[1]
    partials(token, media_id)
    assert page.state() == "uploading" and page.role("status").text == "Preparing the upload…"
    assert media_state(stack, token, media_id)["state"] == "receiving"

    page.role("cancel").click()
    assert page.state() == "cancelled"
    assert page.role("status").text == "Upload cancelled."
    cdp.send("Fetch.continueRequest", {"requestId": held["id"]})

    page.wait_for(lambda _: tus_head(stack, token, media_id).status_code == 410, "the upload to be terminated", 20)
    assert not os.path.exists(os.path.join(stack.media_root, "quarantine", media_id))
    assert [m for m, _ in seen] == ["POST", "DELETE"], seen       # no chunk went to it
    assert seen[-1] == ("DELETE", 204), seen
    assert page.root.get_attribute("data-media-id") is None
    assert page.root.get_attribute("data-tus-bytes-sent") is None
    assert remembered(page) == {}
    assert page.state() == "cancelled" and page.role("status").text == "Upload cancelled."
    assert page.script_errors() == []


def test_a_creation_answered_without_location_is_refused_not_repeated(page, stack, user, files, devtools, partials):
    """A 201 whose Location got lost (here the test strips it) leaves nowhere to send the file;
    creating again would only leave more unfinished uploads behind, so the page stops there."""
    _, data = noisy_jpeg()
    token = stack.token(user)
    page.open(token=token)
    cdp = devtools()
    seen = []
    created = []

    def paused(params):
        seen.append(params["request"]["method"])
        if params["request"]["method"] == "POST" and params.get("responseStatusCode") == 201:
            created.append(header(params["responseHeaders"], "Location").rsplit("/", 1)[1])
            headers = [h for h in params["responseHeaders"] if h["name"].lower() != "location"]
            cdp.send("Fetch.fulfillRequest", {"requestId": params["requestId"], "responseCode": 201,
                                              "responseHeaders": headers, "body": ""}, wait=False)
            return
        cdp.send("Fetch.continueRequest", {"requestId": params["requestId"]}, wait=False)

    intercept_tus(cdp, paused, "Response")
    start_upload(page, files("nowhere.jpg", data))
    page.wait_state("error", timeout=30)
    for media_id in created:
        partials(token, media_id)
    assert page.role("error").text == ("The server did not say where to send the file, so the upload cannot go on. "
                                       "Please try again later.")
    assert page.role("retry").get_attribute("hidden") is not None
    time.sleep(1.0)
    assert seen == ["POST"], seen
    assert len(created) == 1 and page.root.get_attribute("data-tus-create-count") == "1"
    assert remembered(page) == {}


def test_the_users_other_remembered_uploads_are_terminated_before_a_creation(page, stack, user, files, partials, planted):
    """Three partial uploads this user left open earlier (remembered by the page) would make
    the server refuse a fourth (429 too_many_partial_uploads, for a day): the page terminates
    them before it creates one. Another user's remembered upload is left alone, and a
    remembered URL on another origin is dropped without a request."""
    _, data = noisy_jpeg()
    token = stack.token(user)
    other_user = user + "o"
    other_token = stack.token(other_user)
    earlier = [tus_create(stack, token, 1000 + i) for i in range(3)]
    theirs = tus_create(stack, other_token)
    for media_id in earlier:
        partials(token, media_id)
    partials(other_token, theirs)
    page.open(token=token)
    for i, media_id in enumerate(earlier):
        remember(page, [stack.base_url, user, 1000 + i, 0, "image/jpeg", f"{i:08x}"], remembered_entry(stack, media_id, 1000 + i))
    remember(page, [stack.base_url, other_user, 1000, 0, "image/jpeg", "00000000"], remembered_entry(stack, theirs))
    foreign = "http://elsewhere.invalid/tus/" + "0" * 32
    remember(page, [stack.base_url, user, 2000, 0, "image/jpeg", "00000000"],
             remembered_entry(stack, "0" * 32, 2000, url=foreign))

    start_upload(page, files("fourth.jpg", data))
    media_id = media_id_of(page)
    partials(token, media_id)
    page.wait_state("done", timeout=60)

    for earlier_id in earlier:
        assert tus_head(stack, token, earlier_id).status_code == 410, earlier_id
    assert tus_head(stack, other_token, theirs).status_code == 200
    left = remembered(page)
    assert [json.loads(k[len(STORE_PREFIX):])[1] for k in left] == [other_user], left
    urls = page.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [u for u in urls if "elsewhere" in u or theirs in u], urls
    assert page.root.get_attribute("data-tus-create-count") == "1"


def test_stale_unreadable_and_foreign_remembered_uploads_are_dropped_on_load(page, stack, user, planted):
    """localStorage outlives uploads: on load the page drops what cannot be resumed (older than
    a day, past Upload-Expires, unreadable, an older page's key, a URL that is not one of the
    endpoint's upload URLs) and keeps at most 20, the newest."""
    page.open(token=stack.token(user))
    page.driver.execute_script("localStorage.clear()")
    day_ms = 24 * 3600 * 1000
    now_ms = int(time.time() * 1000)
    key = lambda n: [stack.base_url, user, n, 0, "image/jpeg", "00000000"]   # noqa: E731
    hexid = lambda n: f"{n:032x}"                                              # noqa: E731
    for n in range(22):   # valid, the newest first
        remember(page, key(n), remembered_entry(stack, hexid(n), createdAt=now_ms - n * 1000))
    remember(page, key(100), remembered_entry(stack, hexid(100), createdAt=now_ms - day_ms - 1000))
    remember(page, key(101), remembered_entry(stack, hexid(101), expires="Thu, 01 Jan 2026 00:00:00 GMT"))
    remember(page, key(102), remembered_entry(stack, hexid(102), createdAt=None))
    remember(page, key(103), remembered_entry(stack, hexid(103), url="http://elsewhere.invalid/tus/" + hexid(103)))
    remember(page, key(104), remembered_entry(stack, hexid(104), url=stack.url("/uploads/" + hexid(104))))
    remember(page, [user, "photo.jpg", 105, 0], remembered_entry(stack, hexid(105)))   # the old key
    page.driver.execute_script("localStorage.setItem(arguments[0], '{not json')", STORE_PREFIX + json.dumps(key(106)))
    page.driver.execute_script("localStorage.setItem('unrelated', 'kept')")

    page.open(token=stack.token(user))
    left = sorted(json.loads(k[len(STORE_PREFIX):])[2] for k in remembered(page))
    assert left == list(range(20)), left
    assert page.driver.execute_script("return localStorage.getItem('unrelated')") == "kept"


def test_cancel_during_the_last_chunk_says_when_the_server_already_has_the_photo(page, stack, user, files, devtools, partials):
    """The last chunk is in and the avatar rendered, but its answer is held (DevTools): the page
    shows Processing, only the stall timeout having applied to the earlier chunks. Cancel then
    asks for termination and waits for the answer: 409 already_decided, so the page says the
    server has the photo rather than that the upload was cancelled."""
    import threading

    _, data = noisy_jpeg()
    size = len(data)
    token = stack.token(user)
    page.open(token=token)
    cdp = devtools()
    seen = []
    last_held = threading.Event()

    def paused(params):
        request = params["request"]
        offset = next((v for k, v in request["headers"].items() if k.lower() == "upload-offset"), None)
        seen.append((request["method"], params.get("responseStatusCode")))
        if request["method"] == "PATCH" and offset == str(2 * CHUNK):
            last_held.set()      # held: its answer never reaches the page
            return
        cdp.send("Fetch.continueRequest", {"requestId": params["requestId"]}, wait=False)

    intercept_tus(cdp, paused, "Response")
    start_upload(page, files("late.jpg", data))
    media_id = media_id_of(page)
    partials(token, media_id)
    assert last_held.wait(40), "the last chunk was not sent"
    page.wait_for(lambda _: page.state() == "processing" and page.role("status").text == "Processing…",
                  "the page to show the processing")
    assert media_state(stack, token, media_id)["state"] == "ready"

    page.role("cancel").click()
    assert page.state() == "cancelled"
    page.wait_for(lambda _: page.role("status").text == "Stopped waiting. The server already has the photo and may still publish it.",
                  "the termination's answer")
    assert ("DELETE", 409) in seen, seen
    assert stack.wait_for_appended(media_id, size) == size
    assert remembered(page) == {}


def test_nginxs_per_address_limit_on_the_creation_and_the_head_is_waited_out(page, stack, user, files, devtools, partials):
    """nginx's per-IP limit (429 rate_limited, Retry-After 1, no per-user `limit`) passes in a
    second: on the creation and on a HEAD (no body to tell which limit) the page waits as told
    and goes on, as it does for a PATCH. The test answers those requests itself, before nginx."""
    _, data = noisy_jpeg()
    size = len(data)
    token = stack.token(user)
    page.open(token=token)
    cdp = devtools()
    seen = []
    limited = {"status": 429, "headers": [{"name": "Content-Type", "value": "application/json"}, {"name": "Retry-After", "value": "1"}],
               "body": b'{"error":{"code":"rate_limited","message":"Too many requests from this address; try again in a second."}}'}
    unavailable = {"status": 503, "headers": [{"name": "Content-Type", "value": "application/json"}],
                   "body": b'{"error":{"code":"unavailable","message":"Unavailable."}}'}
    answers = {("POST", 1): limited, ("PATCH", 1): unavailable, ("HEAD", 1): dict(limited, body=b"")}

    def paused(params):
        method = params["request"]["method"]
        seen.append(method)
        answer = answers.get((method, seen.count(method)))
        if answer:
            cdp.send("Fetch.fulfillRequest", {"requestId": params["requestId"], "responseCode": answer["status"],
                                              "responseHeaders": answer["headers"], "body": b64(answer["body"])}, wait=False)
        else:
            cdp.send("Fetch.continueRequest", {"requestId": params["requestId"]}, wait=False)

    intercept_tus(cdp, paused, "Request")
    start_upload(page, files("limited.jpg", data))
    page.wait_for(lambda _: page.state() == "retrying" and "from this address" in page.role("status").text,
                  "the page to wait out the limit")
    media_id = media_id_of(page)
    partials(token, media_id)
    page.wait_state("done", timeout=60)
    assert seen == ["POST", "POST", "PATCH", "HEAD", "HEAD", "PATCH", "PATCH", "PATCH"], seen
    assert page.root.get_attribute("data-tus-create-count") == "2"     # the first never reached the server
    assert page.root.get_attribute("data-media-id") == media_id
    assert stack.wait_for_appended(media_id, size) == size
    assert page.role("error").text == ""

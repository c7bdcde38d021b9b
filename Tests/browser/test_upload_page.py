"""The upload page (nginx/www) in headless Chromium against the real stack: pick, crop, upload
with progress, the published WebP matching the crop, client-side limits, retry after a 503,
a Retry after failed status checks that only checks again, the server's 415 message, cancel,
and the screenshots in docs/."""
import base64
import io
import json
import os
import time

import requests
from PIL import Image, ImageDraw, ImageOps
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from conftest import b64, block_image, mean_abs_diff, png_bytes, repo_root


def published(avatar_url):
    response = requests.get(avatar_url)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/webp"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "WEBP"
    return image.convert("RGB")


def expected_crop(source, crop, size):
    x, y, side = crop
    return source.crop((x, y, x + side, y + side)).resize(size, Image.LANCZOS)


def test_choose_crop_upload_and_the_published_webp_matches(page, stack, user, files):
    source = block_image(1200, 900, 150)
    # Stored uncompressed (3.2 MB), so the upload takes long enough under throttling for the
    # progress bar to be seen moving.
    path = files("blocks.png", png_bytes(source, compress_level=0))
    token = stack.token(user)
    page.open(cookie_token=token)   # the host application's cookie, not a handed-over token
    assert "no picture" in page.role("current-text").text
    assert page.role("current-avatar").get_attribute("hidden") is not None

    page.choose(path)
    page.wait_state("ready")
    assert page.crop() == (150, 0, 900)            # a centred square to start with
    assert page.role("upload").is_enabled()

    # Keyboard: shrink the square (each '-' takes 2 % of the short side).
    box = page.role("box")
    box.send_keys("-" * 10)                          # 900 - 10 * 18 = 720
    assert page.crop()[2] == 720
    # Mouse: drag the square by its middle towards the top left.
    stage_width = page.role("stage-image").rect["width"]
    scale = 1200 / stage_width                       # image pixels per CSS pixel
    before = page.crop()
    ActionChains(page.driver).click_and_hold(box).move_by_offset(-40, -30).move_by_offset(-40, -30).release().perform()
    x, y, size = page.crop()
    assert size == 720
    assert abs(x - (before[0] - 80 * scale)) <= 2 * scale, (before, x)
    assert abs(y - max(0, before[1] - 60 * scale)) <= 2 * scale, (before, y)   # stops at the top edge
    # And the keyboard again: one step right.
    box.send_keys(Keys.ARROW_RIGHT)
    assert page.crop() == (x + 9, y, 720)
    crop = page.crop()

    # Throttle the upload so the progress bar has time to move (about 2 s for 3.2 MB).
    page.driver.execute_cdp_cmd("Network.enable", {})
    page.driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                                {"offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 1_600_000})
    page.record_progress()
    page.role("upload").click()
    page.wait_state("done", timeout=30)
    values = page.progress_values()
    assert any(0 < v < 100 for v in values), f"the progress bar never moved between 0 and 100: {values}"
    assert values == sorted(values) or values[-1] == 100
    assert "live" in page.role("status").text

    # The new avatar is shown, and it is the published one.
    avatar_url = page.root.get_attribute("data-avatar-url")
    shown = page.role("current-avatar")
    assert shown.get_attribute("hidden") is None and shown.get_attribute("src") == avatar_url
    page.wait_for(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", shown) == 512,
                  "the new avatar to load")
    assert stack.current_avatar(token).json()["avatar_url"] == avatar_url

    # The published 512 px WebP is the chosen square of the original, not the centred one.
    result = published(avatar_url)
    assert result.size == (512, 512)
    chosen = mean_abs_diff(result, expected_crop(source, crop, (512, 512)))
    centred = mean_abs_diff(result, expected_crop(source, (150, 0, 900), (512, 512)))
    assert chosen < 6, f"published avatar differs from the chosen crop by {chosen:.1f}"
    assert centred > 3 * chosen + 10, (chosen, centred)
    # Over 1 MB, it went over tus (with the cookie, like every other request here), not a
    # presigned PUT; test_resumable_upload.py follows that path in detail.
    assert page.root.get_attribute("data-transport") == "tus"
    assert page.presign_requests() == 0
    assert page.script_errors() == []


def test_drop_a_file_and_crop_by_touch(page, stack, user):
    source = block_image(800, 600, 100)
    page.open(token=stack.token(user))
    # Drop: a real DataTransfer with the file, dispatched on the drop zone.
    page.driver.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
        const zone = document.querySelector('[data-role=drop]');
        for (const type of ['dragenter', 'dragover', 'drop']) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }
    """, b64(png_bytes(source)))
    page.wait_state("ready")
    assert page.crop() == (100, 0, 600)
    # Touch: drag the bottom-right corner inwards (resize), then the square to the right (move).
    d = page.driver
    d.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    try:
        def touch_drag(x, y, dx, dy):
            d.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
            for i in range(1, 6):
                d.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x + dx * i / 5, "y": y + dy * i / 5}]})
            d.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

        d.execute_script("document.querySelector('[data-role=stage]').scrollIntoView({block: 'center'})")
        scale = 800 / page.role("stage-image").rect["width"]
        corner = d.execute_script("const r = document.querySelector('[data-handle=se]').getBoundingClientRect();"
                                  "return [r.x + r.width / 2, r.y + r.height / 2]")
        touch_drag(corner[0], corner[1], -100, -100)
        x, y, size = page.crop()
        assert (x, y) == (100, 0) and abs(size - (600 - 100 * scale)) <= 2 * scale, (x, y, size)
        box = d.execute_script("const r = document.querySelector('[data-role=box]').getBoundingClientRect();"
                               "return [r.x + r.width / 2, r.y + r.height / 2]")
        touch_drag(box[0], box[1], 60, 40)
        x2, y2, size2 = page.crop()
        assert size2 == size and abs(x2 - (100 + 60 * scale)) <= 2 * scale and abs(y2 - 40 * scale) <= 2 * scale, (x2, y2)
    finally:
        d.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})


def test_oversize_file_shows_the_limit_and_sends_nothing(page, stack, user, files):
    # 1400 x 1400 noise, uncompressed: 5.9 MB, but within 2048 px, so nothing to scale.
    noise = Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3))
    data = png_bytes(noise, compress_level=0)
    assert len(data) > 5 * 1024 * 1024
    page.open(token=stack.token(user))
    page.choose(files("huge.png", data))
    page.wait_state("invalid")
    message = page.role("error").text
    assert "5 MB" in message and "5,242,880 bytes" in message, message
    assert not page.role("upload").is_enabled()
    assert page.presign_requests() == 0
    assert page.root.get_attribute("data-presign-count") is None


def test_a_photo_over_2048_px_is_scaled_down_and_the_crop_follows(page, stack, user, files):
    source = block_image(3000, 1500, 250)
    page.open(token=stack.token(user))
    page.choose(files("wide.png", png_bytes(source)))
    page.wait_state("ready")
    assert "scaled down from 3000 × 1500 to 2048 × 1024" in page.role("file-info").text
    box = page.role("box")
    box.send_keys(Keys.HOME, Keys.SHIFT + Keys.ARROW_LEFT)   # centred, then 10 % of 1024 to the left
    crop = page.crop()
    assert crop == (512 - 102, 0, 1024)
    page.role("upload").click()
    page.wait_state("done", timeout=30)
    result = published(page.root.get_attribute("data-avatar-url"))
    scaled = source.resize((2048, 1024), Image.LANCZOS)
    assert mean_abs_diff(result, expected_crop(scaled, crop, (512, 512))) < 8


def test_exif_orientation_crop_is_in_oriented_coordinates(page, stack, user, files):
    """A JPEG stored 800 x 600 with EXIF orientation 6 is a 600 x 800 portrait: the page shows
    and crops it upright, and the server crops the same square from the full original."""
    stored = block_image(800, 600, 100)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif.tobytes())
    oriented = ImageOps.exif_transpose(Image.open(io.BytesIO(out.getvalue())))
    assert oriented.size == (600, 800)
    page.open(token=stack.token(user))
    page.choose(files("rotated.jpg", out.getvalue()))
    page.wait_state("ready")
    assert page.crop() == (0, 100, 600)
    page.role("box").send_keys("-" * 10, Keys.ARROW_DOWN * 12)   # 600 - 120 = 480 (centred: 60, 160), then 12 x 6 px down
    crop = page.crop()
    assert crop == (60, 232, 480)
    page.role("upload").click()
    page.wait_state("done", timeout=30)
    result = published(page.root.get_attribute("data-avatar-url"))
    assert mean_abs_diff(result, expected_crop(oriented, crop, (512, 512))) < 8
    assert mean_abs_diff(result, expected_crop(stored, crop, (512, 512))) > 20   # not the unrotated pixels


def test_a_503_on_the_first_put_is_retried_and_succeeds(page, stack, user, files, devtools):
    source = block_image(600, 600, 100)
    page.open(token=stack.token(user))
    cdp = devtools()
    seen = []

    def paused(params):
        request = params["request"]
        seen.append(request["method"])
        if request["method"] == "PUT" and seen.count("PUT") == 1:
            body = json.dumps({"error": {"code": "unavailable", "message": "Injected by the test.", "request_id": "test"}})
            cdp.send("Fetch.fulfillRequest", {
                "requestId": params["requestId"], "responseCode": 503,
                "responseHeaders": [{"name": "Content-Type", "value": "application/json"}, {"name": "Retry-After", "value": "1"}],
                "body": b64(body.encode()),
            }, wait=False)
        else:
            cdp.send("Fetch.continueRequest", {"requestId": params["requestId"]}, wait=False)

    cdp.on("Fetch.requestPaused", paused)
    cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*/uploads/*", "requestStage": "Request"}]})

    page.choose(files("retry.png", png_bytes(source)))
    page.wait_state("ready")
    started = time.monotonic()
    page.role("upload").click()
    page.wait_state("retrying")
    assert "Injected by the test." in page.role("status").text
    assert "attempt 2" in page.role("status").text
    page.wait_state("done", timeout=30)
    assert seen.count("PUT") == 2, seen
    assert page.root.get_attribute("data-transport") == "put"   # 1 MB or less: one presigned PUT
    assert time.monotonic() - started >= 1.0          # it waited (Retry-After 1 s) before retrying
    # The first URL never reached the server, so the retry reused it: one presign.
    assert page.root.get_attribute("data-presign-count") == "1"
    assert page.role("error").text == ""
    published(page.root.get_attribute("data-avatar-url"))


def test_a_url_busy_with_another_body_is_retried_after_retry_after(page, stack, user, files, devtools):
    """nginx refuses a second body on one upload URL (429 too_many_connections, Retry-After: 5),
    as it would while the previous attempt's connection has not been seen to drop. Here the test
    holds that first body open itself, on the page's own URL, through the real nginx; the page
    waits as told and its retry goes through once the slot is free."""
    import socket
    import threading
    import urllib.parse

    page.open(token=stack.token(user))
    cdp = devtools()
    puts = []
    held = []

    def paused(params):
        request = params["request"]
        if request["method"] == "PUT":
            puts.append(time.monotonic())
            if len(puts) == 1:
                parts = urllib.parse.urlsplit(request["url"])
                length = urllib.parse.parse_qs(parts.query)["X-Cameo-Max-Bytes"][0]   # the declared size
                conn = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
                conn.sendall(f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: image/png\r\n"
                             f"Content-Length: {length}\r\n\r\n".encode() + b"\0" * 100)
                held.append(conn)
                conn.settimeout(0.3)
                try:
                    assert conn.recv(1) == b"", "nginx answered the held body"   # it closed: not expected
                except socket.timeout:
                    pass                                # admitted: nginx waits for the rest of the body
                conn.settimeout(10)
                threading.Timer(1.5, conn.close).start()  # the "previous attempt" drops
        cdp.send("Fetch.continueRequest", {"requestId": params["requestId"]}, wait=False)

    cdp.on("Fetch.requestPaused", paused)
    cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*/uploads/*", "requestStage": "Request"}]})
    page.choose(files("busy.png", png_bytes(block_image(400, 400, 100))))
    page.wait_state("ready")
    page.role("upload").click()
    page.wait_state("retrying")
    assert "already in progress" in page.role("status").text
    page.wait_state("done", timeout=30)
    assert len(puts) == 2 and puts[1] - puts[0] >= 5.0, puts     # it waited the Retry-After
    assert page.root.get_attribute("data-presign-count") == "1"   # the same URL, not a new one
    published(page.root.get_attribute("data-avatar-url"))


def test_a_used_url_after_a_lost_answer_is_followed_not_uploaded_twice(page, stack, user, files, devtools):
    """The first PUT reaches the server, but the browser sees a 503 instead of its answer: the
    retry gets 409 url_used, and the page follows the upload the server already has."""
    page.open(token=stack.token(user))
    cdp = devtools()
    puts = []

    def paused(params):
        if params["request"]["method"] == "PUT" and "responseStatusCode" in params:
            puts.append(params["responseStatusCode"])
            if len(puts) == 1:
                cdp.send("Fetch.fulfillRequest", {"requestId": params["requestId"], "responseCode": 503,
                                                  "responseHeaders": [{"name": "Content-Type", "value": "application/json"}],
                                                  "body": b64(b'{"error":{"code":"unavailable","message":"Lost."}}')}, wait=False)
                return
        cdp.send("Fetch.continueRequest", {"requestId": params["requestId"]}, wait=False)

    cdp.on("Fetch.requestPaused", paused)
    cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*/uploads/*", "requestStage": "Response"}]})
    page.choose(files("lost.png", png_bytes(block_image(400, 400, 100))))
    page.wait_state("ready")
    page.role("upload").click()
    page.wait_state("done", timeout=30)
    assert puts == [200, 409], puts
    assert page.root.get_attribute("data-presign-count") == "1"


def test_failed_status_checks_after_a_put_end_in_a_retry_that_only_checks_again(page, stack, user, files, devtools):
    """The PUT is answered 202 (scanning: the test rewrites the 200) and every status check
    then fails. The page keeps checking for its budget (the test moves the page's clock past
    it), says the server has the photo, and its Retry checks again instead of presigning and
    sending the photo again."""
    import urllib.parse

    page.open(token=stack.token(user))
    page.skewable_clock()
    cdp = devtools()
    failing = {"on": True}
    puts = []
    checks = []

    def paused(params):
        request = params["request"]
        if request["method"] == "PUT":
            puts.append(params.get("responseStatusCode"))
            media_id = urllib.parse.urlsplit(request["url"]).path.rsplit("/", 1)[1]
            body = json.dumps({"media_id": media_id, "state": "scanning"}).encode()
            cdp.send("Fetch.fulfillRequest", {"requestId": params["requestId"], "responseCode": 202,
                                              "responseHeaders": [{"name": "Content-Type", "value": "application/json"}],
                                              "body": b64(body)}, wait=False)
            return
        if "/media/" in request["url"]:
            checks.append(failing["on"])
            if failing["on"]:
                cdp.send("Fetch.failRequest", {"requestId": params["requestId"], "errorReason": "ConnectionFailed"}, wait=False)
                return
        cdp.send("Fetch.continueRequest", {"requestId": params["requestId"]}, wait=False)

    cdp.on("Fetch.requestPaused", paused)
    cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*/uploads/*", "requestStage": "Response"},
                                           {"urlPattern": "*/media/*", "requestStage": "Request"}]})
    page.choose(files("checks.png", png_bytes(block_image(500, 500, 100))))
    page.wait_state("ready")
    page.role("upload").click()
    page.wait_for(lambda _: page.state() == "retrying" and "The server has the photo" in page.role("status").text,
                  "the status checks to fail")
    page.skew_clock(120_000)
    page.wait_state("error", timeout=40)
    assert page.role("error").text.startswith("The server has the photo, but its status could not be checked:")
    assert page.role("retry").is_displayed()

    failing["on"] = False
    page.role("retry").click()
    page.wait_state("done", timeout=30)
    assert puts == [200], puts
    assert page.root.get_attribute("data-presign-count") == "1"
    assert page.presign_requests() == 1
    assert checks[-1] is False and checks.count(True) >= 2, checks
    published(page.root.get_attribute("data-avatar-url"))


def test_a_non_image_named_jpg_shows_the_servers_415_message(page, stack, user, files):
    page.open(token=stack.token(user))
    page.choose(files("holiday.jpg", b"This is not a picture at all.\n" * 200))
    page.wait_state("ready")                          # the browser cannot tell; the server decides
    assert "checked by the server" in page.role("status").text
    page.role("upload").click()
    page.wait_state("error")
    assert page.role("error").text == "Only image/jpeg, image/png, image/webp images are accepted."
    assert page.role("retry").get_attribute("hidden") is not None   # a 4xx is not retried
    assert page.presign_requests() == 1
    assert stack.current_avatar(stack.token(user)).status_code == 404


def test_cancel_stops_the_upload(page, stack, user, files):
    token = stack.token(user)
    page.open(token=token)
    page.choose(files("cancel.png", png_bytes(block_image(1000, 1000, 125), compress_level=0)))
    page.wait_state("ready")
    page.driver.execute_cdp_cmd("Network.enable", {})
    page.driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                                {"offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 200_000})
    page.role("upload").click()
    page.wait_state("uploading")
    page.role("cancel").click()
    assert page.state() == "cancelled"
    assert page.role("status").text == "Upload cancelled."
    assert page.role("upload").is_enabled()
    time.sleep(0.5)
    assert stack.current_avatar(token).status_code == 404


def test_screenshots_and_narrow_layout(page, stack, user, files, tmp_path):
    """Takes docs/upload-page-1280.png and docs/upload-page-360.png (written into docs/ only with
    CAMEO_UPDATE_SCREENSHOTS=1), and checks nothing overflows sideways at 320 px."""
    token = stack.token(user)
    # A current avatar first, so the page shows one.
    avatar = png_bytes(block_image(512, 512, 128))
    presign = requests.post(stack.base_url + "/users/me/avatar/upload", headers={"Authorization": f"Bearer {token}"},
                            json={"content_type": "image/png", "content_length": len(avatar)}).json()
    assert requests.put(presign["upload_url"], data=avatar, headers=presign["headers"]).status_code == 200
    page.open(token=token)
    page.wait_for(lambda d: page.role("current-avatar").get_attribute("hidden") is None, "the current avatar")
    page.choose(files("portrait.png", png_bytes(landscape())))
    page.wait_state("ready")
    page.role("box").send_keys("-----", Keys.ARROW_UP * 3)

    out_dir = os.path.join(repo_root(), "docs") if os.environ.get("CAMEO_UPDATE_SCREENSHOTS") == "1" else str(tmp_path)
    d = page.driver
    try:
        for width, height, name in ((1280, 900, "upload-page-1280.png"), (360, 780, "upload-page-360.png"), (320, 700, None)):
            d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                              {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})
            time.sleep(0.2)
            overflow = d.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{overflow} px of horizontal overflow at {width} px"
            for role in ("file", "box", "size", "upload"):
                element = page.role(role)
                right = d.execute_script("const r = arguments[0].getBoundingClientRect(); return r.right", element)
                assert right <= width + 1 or role == "file", f"{role} is cut off at {width} px"
            if name:
                shot = d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
                image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
                # A 128-colour palette keeps the committed files small.
                image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(os.path.join(out_dir, name), optimize=True)
    finally:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def landscape():
    """A simple picture for the screenshots: sky, sun, hills."""
    image = Image.new("RGB", (1200, 800), (120, 180, 235))
    draw = ImageDraw.Draw(image)
    for y in range(400):
        draw.line([(0, y), (1200, y)], fill=(90 + y // 8, 150 + y // 6, 230))
    draw.ellipse([760, 120, 940, 300], fill=(255, 214, 90))
    draw.polygon([(0, 560), (260, 380), (560, 600), (0, 800)], fill=(70, 140, 80))
    draw.polygon([(300, 800), (700, 420), (1200, 640), (1200, 800)], fill=(50, 115, 65))
    draw.ellipse([470, 330, 650, 510], fill=(240, 200, 170))
    draw.rectangle([520, 500, 600, 800], fill=(60, 70, 120))
    return image

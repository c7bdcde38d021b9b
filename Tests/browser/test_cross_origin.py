"""A host application's own page on another origin (the example config's shape:
app.example.com embedding avatars.example.com) uploads through Cameo from the browser: the
upload widget loaded from Cameo, its API calls sent across origins with a bearer token,
through both paths (a presigned PUT for a small photo, tus for one over 1 MB). Only CORS for
the allowed origin (auth.allowed_origins; deploy/run-tests allows one on the stack's port + 9)
makes this work: without it the browser keeps every answer from the page."""
import functools
import http.server
import io
import os
import threading
import urllib.parse

import pytest
import requests
from PIL import Image
from selenium.webdriver.common.by import By

from test_resumable_upload import noisy_jpeg

WWW = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "nginx", "www")


def serve(folder, port):
    """A static server for `folder` on 127.0.0.1:`port` (0: any free port), in a thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(server):
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def host_app(stack, tmp_path_factory):
    """The host application's page, `profile.html` in its folder, served by a server of its own
    on the second allowed origin: Cameo's page markup, its script and style loaded from Cameo,
    `data-base-url` naming Cameo. Yields the page's URL and its folder."""
    allowed = [o.strip() for o in stack.env.get("CAMEO_AUTH_ALLOWED_ORIGINS", "").split(",") if o.strip()]
    others = [o for o in allowed if o != stack.base_url]
    assert others, "deploy/run-tests allows a second origin (CAMEO_AUTH_ALLOWED_ORIGINS)"
    origin = others[0]
    folder = tmp_path_factory.mktemp("host-app")
    with open(os.path.join(WWW, "index.html")) as f:
        html = f.read()
    html = (html.replace('href="cameo-upload.css"', f'href="{stack.base_url}/avatar/cameo-upload.css"')
                .replace('src="cameo-upload.js"', f'src="{stack.base_url}/avatar/cameo-upload.js"')
                .replace("data-cameo-upload>", f'data-cameo-upload data-base-url="{stack.base_url}">'))
    (folder / "profile.html").write_text(html)
    server = serve(folder, urllib.parse.urlsplit(origin).port)
    try:
        yield origin + "/profile.html", folder
    finally:
        stop(server)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def open_host_page(page, url, token):
    page.driver.get("about:blank")
    page.driver.get(url + f"#token={token}")
    page.root = page.driver.find_element(By.ID, "cameo-upload")
    page.wait_state("idle")
    page.wait_for(lambda _: "Loading" not in page.role("current-text").text, "the current avatar")
    assert page.role("current-text").text == "You have no picture yet.", "the profile read across origins"


def cameo_requests(page, stack):
    """The URLs the page fetched from Cameo's origin (the Resource Timing entries)."""
    names = page.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [name for name in names if name.startswith(stack.base_url)]


def assert_published_from_the_other_origin(page, stack, token):
    page.wait_state("done", timeout=60)
    assert page.script_errors() == [], "no script or CSP error"
    current = requests.get(stack.url("/api/v1/profile/me/avatar"), headers={"Authorization": f"Bearer {token}"})
    assert current.status_code == 200
    served = requests.get(current.json()["avatar_url"])
    assert Image.open(io.BytesIO(served.content)).size == (512, 512)


def test_a_small_photo_goes_by_presigned_put_from_another_origin(page, stack, user, files, host_app):
    token = stack.token(user)
    open_host_page(page, host_app[0], token)
    small = io.BytesIO()
    Image.new("RGB", (600, 400), (30, 120, 200)).save(small, "JPEG", quality=90)
    page.choose(files("small.jpg", small.getvalue()))
    page.wait_state("ready")
    page.role("upload").click()
    assert_published_from_the_other_origin(page, stack, token)
    assert page.root.get_attribute("data-transport") == "put"
    used = cameo_requests(page, stack)
    assert any("/users/me/avatar/upload" in url for url in used)
    assert any("/uploads/" in url for url in used)


def test_a_large_photo_goes_by_tus_from_another_origin(page, stack, user, files, host_app):
    token = stack.token(user)
    open_host_page(page, host_app[0], token)
    _, data = noisy_jpeg()
    page.choose(files("large.jpg", data))
    page.wait_state("ready")
    page.role("upload").click()
    assert_published_from_the_other_origin(page, stack, token)
    assert page.root.get_attribute("data-transport") == "tus"
    media_id = page.root.get_attribute("data-media-id")
    assert any(url == stack.url(f"/tus/{media_id}") for url in cameo_requests(page, stack)), "the chunks went to Cameo"
    assert stack.wait_for_appended(media_id, len(data)) == len(data)


def test_a_page_on_an_origin_that_is_not_allowed_gets_nothing(page, stack, user, host_app):
    """The same page served from an origin Cameo does not allow (another port is another
    origin): the browser keeps Cameo's answers from it, so the page cannot even read the
    current picture."""
    server = serve(host_app[1], 0)
    try:
        page.driver.get("about:blank")
        page.driver.get(f"http://127.0.0.1:{server.server_address[1]}/profile.html#token={stack.token(user)}")
        page.root = page.driver.find_element(By.ID, "cameo-upload")
        page.wait_for(lambda _: "Loading" not in page.role("current-text").text, "the current avatar")
        assert page.role("current-text").text == "Your current picture could not be loaded."
    finally:
        stop(server)

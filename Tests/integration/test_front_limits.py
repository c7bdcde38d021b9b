"""nginx's limits in front of the workers, on a stack of their own where loopback counts like
any other address (nginx.exempt_loopback = false) and the limits are small enough to reach: one
body per upload URL, connections per address, upload bodies in all, header and body timeouts,
the health, callback and download throttles. Every refusal here comes before a byte of the body
is read. The module ends by reading every log the stack wrote: none holds a signature, a token
or a download link, and the refusals are logged with their error codes.

Linux routes all of 127.0.0.0/8 to loopback, so a test is "another address" by binding its
socket to 127.0.0.2, 127.0.0.3, ...
"""
import http.client
import json
import os
import socket
import time
import urllib.parse

import pytest

from conftest import IntegrationStack, make_image, until_url_slot_free

PER_IP = 3
ALL_UPLOADS = 4
BODY_TIMEOUT = 4     # longer than the connection tests hold their uploads open
HEADER_TIMEOUT = 2

# Every credential this module puts on the wire; none may appear in any log.
SECRETS = set()


@pytest.fixture(scope="module")
def strict():
    own = IntegrationStack.start(
        port=int(os.environ.get("CAMEO_PORT", "18080")) + 4,
        CAMEO_NGINX_EXEMPT_LOOPBACK="false", CAMEO_NGINX_CONNECTIONS_PER_IP=PER_IP, CAMEO_NGINX_CONCURRENT_UPLOADS=ALL_UPLOADS,
        CAMEO_NGINX_BODY_TIMEOUT_SECONDS=BODY_TIMEOUT, CAMEO_NGINX_HEADER_TIMEOUT_SECONDS=HEADER_TIMEOUT,
        CAMEO_POOL_FAST=1, CAMEO_POOL_HEAVY=1)
    try:
        yield own
    finally:
        own.stop()


_next_address = iter(range(2, 250))


def fresh_address():
    """A loopback address no other test of this module has used, so its counts start at 0."""
    return f"127.0.0.{next(_next_address)}"


def token(stack, user):
    value = stack.token(user)
    SECRETS.add(value)
    return value


def presigned(stack, user, body):
    """An upload URL for `body` (as JPEG), presigned from an address of its own."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10, source_address=(fresh_address(), 0))
    conn.request("POST", "/users/me/avatar/upload", body=f'{{"content_type":"image/jpeg","content_length":{len(body)}}}',
                 headers={"Authorization": f"Bearer {token(stack, user)}", "Content-Type": "application/json"})
    reply = conn.getresponse()
    assert reply.status == 201, reply.read()
    url = json.loads(reply.read())["upload_url"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    SECRETS.add(query["X-Amz-Signature"][0])
    return url


def open_put(stack, url, length, source, first_bytes=b"", refused=False):
    """Starts a PUT of `length` bytes from `source` and sends only its head (and
    `first_bytes`). Returns the socket and nginx's answer: when `refused`, the answer it must
    give without the body; otherwise whatever came at once, None when nginx is waiting for the
    body, as it does for an admitted upload."""
    parts = urllib.parse.urlsplit(url)
    conn = socket.create_connection(("127.0.0.1", stack.port), timeout=10, source_address=(source, 0))
    head = (f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {length}\r\n\r\n")
    conn.sendall(head.encode() + first_bytes)
    conn.settimeout(5 if refused else 0.3)
    try:
        answer = conn.recv(65536)
    except socket.timeout:
        answer = None
    conn.settimeout(10)
    return conn, (answer.decode("latin-1") if answer is not None else None)


def refused_with(answer, code):
    return answer is not None and answer.startswith("HTTP/1.1 429") and f'"code":"{code}"' in answer


def finish(conn, body):
    """Sends the rest of an admitted PUT and returns its status line and body."""
    conn.sendall(body)
    reply = b""
    while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < content_length(reply):
        chunk = conn.recv(65536)
        if not chunk:
            break
        reply += chunk
    conn.close()
    return reply.decode("latin-1")


def drain_until_closed(conn):
    """Reads until nginx ends the connection: it may answer first (408) or not, and a timed-out
    connection is reset rather than closed (reset_timedout_connection)."""
    try:
        while conn.recv(65536):
            pass
    except ConnectionResetError:
        pass


def content_length(reply):
    for line in reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_a_second_body_on_one_url_is_refused_before_buffering_and_the_slot_frees_when_the_first_drops(strict, user):
    body = make_image("JPEG")
    url = presigned(strict, user, body)
    first, answer = open_put(strict, url, len(body), fresh_address(), body[:1000])
    assert answer is None, answer                                   # admitted, nginx reads the body
    second, answer = open_put(strict, url, len(body), fresh_address(), refused=True)
    assert refused_with(answer, "too_many_connections"), answer     # without a byte of its body
    assert "Retry-After: 5" in answer
    second.close()
    # The first connection drops mid-body: nginx closes it and frees the URL's slot.
    first.close()
    time.sleep(0.5)
    third, answer = open_put(strict, url, len(body), fresh_address())
    assert answer is None, answer
    reply = finish(third, body)
    assert reply.startswith("HTTP/1.1 200"), reply
    assert '"state":"ready"' in reply


def test_connections_per_address_and_uploads_in_all_are_bounded(strict, user):
    body = make_image("JPEG")
    urls = [presigned(strict, f"{user}{i}", body) for i in range(6)]
    busy, other, third = fresh_address(), fresh_address(), fresh_address()
    held = []
    try:
        for url in urls[:PER_IP]:
            conn, answer = open_put(strict, url, len(body), busy, body[:100])
            assert answer is None, answer
            held.append(conn)
        # A fourth from the same address: refused by the per-address limit (3 open in all, so
        # the overall limit of 4 is not what refuses it).
        conn, answer = open_put(strict, urls[PER_IP], len(body), busy, refused=True)
        assert refused_with(answer, "too_many_connections"), answer
        conn.close()
        # Another address is still admitted, which fills the overall limit...
        conn, answer = open_put(strict, urls[PER_IP + 1], len(body), other, body[:100])
        assert answer is None, answer
        held.append(conn)
        # ...so a third address, with nothing open, is refused by that one.
        conn, answer = open_put(strict, urls[PER_IP + 2], len(body), third, refused=True)
        assert refused_with(answer, "too_many_connections"), answer
        conn.close()
    finally:
        for conn in held:
            conn.close()
    assert not os.listdir(os.path.join(strict.media_root, "incoming"))


def test_a_body_that_stalls_is_dropped_after_the_body_timeout_and_leaves_nothing(strict, user):
    body = make_image("JPEG")
    url = presigned(strict, user, body)
    conn, answer = open_put(strict, url, len(body), fresh_address(), body[:len(body) // 2])
    assert answer is None, answer
    started = time.monotonic()
    conn.settimeout(BODY_TIMEOUT + 10)
    drain_until_closed(conn)
    waited = time.monotonic() - started
    conn.close()
    assert BODY_TIMEOUT - 0.5 <= waited < BODY_TIMEOUT + 4, waited
    buffer = strict.config["nginx.upload_buffer_path"]
    assert os.listdir(buffer) == [] and os.listdir(os.path.join(strict.media_root, "incoming")) == []
    # The URL was never used: a whole upload on it now goes through.
    again, answer = open_put(strict, url, len(body), fresh_address())
    assert answer is None, answer
    assert finish(again, body).startswith("HTTP/1.1 200")


def test_a_request_head_that_stalls_is_dropped_after_the_header_timeout(strict):
    # With a signed query: nginx gives up on this request before any of the site's rules run,
    # and the log test at the end checks that the line it logs for it holds no signature.
    signature = os.urandom(32).hex()
    SECRETS.add(signature)
    conn = socket.create_connection(("127.0.0.1", strict.port), timeout=HEADER_TIMEOUT + 10, source_address=(fresh_address(), 0))
    conn.sendall(f"PUT /uploads/{'0' * 32}?X-Amz-Signature={signature} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
    started = time.monotonic()
    drain_until_closed(conn)
    waited = time.monotonic() - started
    conn.close()
    assert HEADER_TIMEOUT - 0.5 <= waited < HEADER_TIMEOUT + 4, waited


@pytest.mark.parametrize("method,path,allowed", [
    ("GET", "/health/avatar", 15),                                                  # 5 r/s, burst 10
    ("POST", "/media/virus-scan-callback", 45),                                     # the API's 30 r/s, burst 40
    ("GET", "/quarantine-download/" + "0" * 32 + "?expires=1&signature=x", 45),
])
def test_health_callback_and_download_are_throttled_per_address(strict, method, path, allowed):
    conn = http.client.HTTPConnection("127.0.0.1", strict.port, timeout=10, source_address=(fresh_address(), 0))
    statuses = []
    for _ in range(allowed + 20):
        conn.request(method, path, body=b"{}" if method == "POST" else None,
                     headers={"Content-Type": "application/json"} if method == "POST" else {})
        reply = conn.getresponse()
        text = reply.read().decode()
        statuses.append(reply.status)
        if reply.status == 429:
            assert '"code":"rate_limited"' in text and reply.getheader("Retry-After") == "1"
    conn.close()
    refused = statuses.count(429)
    assert refused >= 10, statuses                       # the flood is cut...
    assert statuses[0] != 429 and refused <= 20 + 5      # ...after the burst, not before


def test_a_chunked_tus_client_fits_the_per_address_limits(strict, user):
    """A 5 MB photo in 256 KB chunks is a creation, a HEAD and 20 PATCHes within a second or
    two: from one address that counts (no loopback exemption), none of them is refused."""
    import base64

    photo = make_image("JPEG", size=(1600, 1200))
    chunk = len(photo) // 20 + 1
    conn = http.client.HTTPConnection("127.0.0.1", strict.port, timeout=30, source_address=(fresh_address(), 0))
    auth = {"Authorization": f"Bearer {token(strict, user)}", "Tus-Resumable": "1.0.0"}
    conn.request("POST", "/tus/", headers=auth | {
        "Upload-Length": str(len(photo)), "Upload-Metadata": "filetype " + base64.b64encode(b"image/jpeg").decode()})
    created = conn.getresponse()
    created.read()
    assert created.status == 201
    path = urllib.parse.urlsplit(created.getheader("Location")).path
    conn.request("HEAD", path, headers=auth)
    head = conn.getresponse()
    head.read()
    assert head.status == 200 and head.getheader("Upload-Offset") == "0"
    statuses = []
    started = time.monotonic()
    for offset in range(0, len(photo), chunk):
        conn.request("PATCH", path, body=photo[offset:offset + chunk],
                     headers=auth | {"Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})
        answer = conn.getresponse()
        answer.read()
        statuses.append(answer.status)
    assert statuses == [204] * 20, statuses
    assert time.monotonic() - started < 10
    assert answer.getheader("Cameo-Media-State") == "ready"


def test_no_log_holds_a_signature_or_token_and_refusals_carry_their_code(strict, user):
    body = make_image("JPEG")
    url = presigned(strict, user, body)
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.path}?{parts.query}"

    def send(method, headers, data=None, chunked=False, path=target):
        def attempt():
            conn = http.client.HTTPConnection("127.0.0.1", strict.port, timeout=10, source_address=(fresh_address(), 0))
            conn.request(method, path, body=data() if callable(data) else data, headers=headers, encode_chunked=chunked)
            reply = conn.getresponse()
            text = reply.read().decode()
            conn.close()
            return reply.status, text
        # The URL's slot frees once nginx has seen the previous request's connection end.
        return until_url_slot_free(attempt, status_and_text=lambda result: result)

    # Refusals nginx makes before the URL is checked: a declared length over the cap, a
    # wrong method (with and without a body), then a chunked body over the cap (after the check).
    assert send("PUT", {"Content-Type": "image/jpeg", "Content-Length": str(6 * 1024 * 1024)})[0] == 413
    # A head nginx refuses before the site's rules run (a cookie over its header buffers).
    assert send("PUT", {"Content-Type": "image/jpeg", "Cookie": "session=" + "c" * 9000})[0] == 400
    assert send("POST", {"Content-Type": "image/jpeg"}, b"x")[0] == 405
    assert send("DELETE", {})[0] == 405
    status, _ = send("PUT", {"Content-Type": "image/jpeg", "Transfer-Encoding": "chunked"},
                     lambda: iter([b"\0" * (1 << 20)] * 6), chunked=True)
    assert status == 413
    # The worker's refusals: a tampered signature; then the upload itself, and its reuse.
    tampered = target[:-1] + ("0" if target[-1] != "0" else "1")
    assert send("PUT", {"Content-Type": "image/jpeg"}, body, path=tampered)[0] == 403
    assert send("PUT", {"Content-Type": "image/jpeg"}, body)[0] == 200
    assert send("PUT", {"Content-Type": "image/jpeg"}, body)[0] == 409
    # A token refused by a worker (another user's upload) and a presign body over the JSON limit.
    conn = http.client.HTTPConnection("127.0.0.1", strict.port, timeout=10, source_address=(fresh_address(), 0))
    conn.request("GET", parts.path.replace("/uploads/", "/media/"), headers={"Authorization": f"Bearer {token(strict, user + 'x')}"})
    assert conn.getresponse().status == 403
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", strict.port, timeout=10, source_address=(fresh_address(), 0))
    conn.request("POST", "/users/me/avatar/upload", body=b"{" + b" " * 20000 + b"}",
                 headers={"Authorization": f"Bearer {token(strict, user)}", "Content-Type": "application/json"})
    assert conn.getresponse().status == 413
    conn.close()

    time.sleep(1.5)   # log buffers
    logs = {}
    for folder, _, names in os.walk(strict.state_dir):
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith(".log") or "/log" in folder:
                with open(path, "rb") as f:
                    logs[path] = f.read().decode("latin-1")
    assert any(p.endswith("cameo-access.log") for p in logs) and any(p.endswith("pool-heavy.log") for p in logs)
    for path, text in logs.items():
        for secret in SECRETS:
            assert secret not in text, f"{path} holds a credential"
        assert "X-Amz-Signature" not in text, path
    access = logs[os.path.join(strict.state_dir, "log", "cameo-access.log")]
    # The refusals of this test, each logged with its code (by nginx or a worker).
    for code in ("too_large", "method_not_allowed", "bad_signature", "url_used", "forbidden"):
        assert f"error={code}" in access, code
    # The site wrote its own logs; the http level's default log (with queries) got nothing.
    assert logs[os.path.join(strict.state_dir, "log", "nginx-http-default.log")] == ""

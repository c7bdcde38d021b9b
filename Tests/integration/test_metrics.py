"""GET /metrics through nginx: the collector's counts match what happened, across recycled
workers, and only the addresses of metrics.allow may scrape."""
import http.client
import os
import re
import signal
import time

import requests

from conftest import make_image
from test_upload_flow import upload

SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def scrape(stack):
    response = requests.get(stack.metrics_url())
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in response.text.splitlines():
        match = SAMPLE.match(line)
        if match:
            labels = tuple(sorted(re.findall(r'([a-z_]+)="([^"]*)"', match["labels"] or "")))
            samples[(match["name"], labels)] = float(match["value"])
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def recycle_every_worker(stack, pool):
    """The reload signal: every worker of the pool finishes and a fresh one replaces it."""
    before = stack.pool_workers(pool)
    os.kill(stack.pid(f"pool-{pool}"), signal.SIGUSR2)
    deadline = time.time() + 10
    while time.time() < deadline:
        now = stack.pool_workers(pool)
        if now and not (now & before) and len(now) == len(before):
            return
        time.sleep(0.05)
    raise AssertionError(f"the {pool} pool's workers were not replaced")


def test_counts_survive_worker_recycles_and_match_the_uploads(stack, jpeg):
    before = scrape(stack)
    outcomes = {"ready": 0, "bad_type": 0, "bad_dimensions": 0}
    presigns = 0
    wide = make_image("PNG", size=(3000, 8))
    for round in range(3):
        for body, content_type, expected in [
            (jpeg, "image/jpeg", "ready"),
            (b"GIF89a" + os.urandom(600), "image/png", "bad_type"),
            (wide, "image/png", "bad_dimensions"),
        ]:
            user = f"metrics{round}{expected.replace('_', '')}{os.getpid()}"
            _, response = upload(stack, user, body, content_type)
            presigns += 1
            assert (response.json().get("state") == "ready") == (expected == "ready"), response.text
            outcomes[expected] += 1
        # Every worker that counted so far is gone before the next round.
        recycle_every_worker(stack, "heavy")
        recycle_every_worker(stack, "fast")

    starts_before = {pool: value(before, "cameo_worker_starts_total", pool=pool) for pool in ("fast", "heavy")}
    deadline = time.time() + 5
    while True:  # the last fresh workers announce themselves once they have read their config
        after = scrape(stack)
        started = {pool: value(after, "cameo_worker_starts_total", pool=pool) - starts_before[pool] for pool in starts_before}
        if min(started.values()) >= 6 or time.time() > deadline:
            break
        time.sleep(0.1)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("cameo_uploads_total", state="ready") == outcomes["ready"]
    assert delta("cameo_uploads_total", state="rejected") == outcomes["bad_type"] + outcomes["bad_dimensions"]
    assert delta("cameo_upload_rejections_total", reason="bad_type") == outcomes["bad_type"]
    assert delta("cameo_upload_rejections_total", reason="bad_dimensions") == outcomes["bad_dimensions"]
    assert delta("cameo_http_requests_total", pool="fast", route="presign", status="201") == presigns
    assert delta("cameo_http_requests_total", pool="heavy", route="upload", status="200") == outcomes["ready"]
    assert delta("cameo_http_requests_total", pool="heavy", route="upload", status="415") == outcomes["bad_type"]
    assert delta("cameo_http_requests_total", pool="heavy", route="upload", status="422") == outcomes["bad_dimensions"]
    assert delta("cameo_http_request_duration_seconds_count", pool="heavy", route="upload") == presigns
    assert delta("cameo_processing_duration_seconds_count") == outcomes["ready"]
    assert delta("cameo_scan_duration_seconds_count", verdict="clean") == presigns
    # Three recycles of every worker of both pools (two each): at least six fresh starts each.
    assert delta("cameo_worker_starts_total", pool="heavy") >= 6
    assert delta("cameo_worker_starts_total", pool="fast") >= 6
    # Nothing is in flight between requests, and the pools' sockets are known and empty.
    assert value(after, "cameo_pool_busy_workers", pool="heavy") == 0
    assert value(after, "cameo_pool_queue_depth", pool="heavy") == 0
    assert value(after, "cameo_pool_queue_limit", pool="heavy") > 0


def test_an_address_outside_metrics_allow_is_refused(stack):
    # The metrics server listens on 127.0.0.1; the client speaks from another loopback address,
    # which metrics.allow (127.0.0.1 and ::1 by default) does not list.
    host, port = stack.config["metrics.listen"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=("127.0.0.2", 0))
    conn.request("GET", "/metrics")
    refused = conn.getresponse()
    body = refused.read()
    conn.close()
    assert refused.status == 403
    assert refused.getheader("Content-Type") == "application/json"
    assert b'"code":"forbidden"' in body and b"cameo_" not in body
    # The same request from 127.0.0.1 is answered, and only for GET and HEAD.
    assert requests.get(stack.metrics_url()).status_code == 200
    assert requests.head(stack.metrics_url()).status_code == 200
    assert requests.post(stack.metrics_url()).status_code == 405
    # Not on the public site: a proxy in front of it (all of whose requests come from
    # loopback) cannot pass a scrape on.
    assert requests.get(stack.url("/metrics")).status_code == 404

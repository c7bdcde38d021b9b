"""Uploads over slow links, on a stack of their own whose upload URLs live 5 seconds: a body
that starts while its URL is valid is published however long it takes to arrive (the expiry is
judged at the request's start, as S3 does); one that starts later is refused."""
import os
import time

import pytest
import requests

from conftest import IntegrationStack, make_image

TTL = 5


@pytest.fixture(scope="module")
def slow():
    own = IntegrationStack.start(port=int(os.environ.get("CAMEO_PORT", "18080")) + 3, CAMEO_PRESIGN_TTL_SECONDS=TTL,
                                 CAMEO_POOL_FAST=1, CAMEO_POOL_HEAVY=1)
    try:
        yield own
    finally:
        own.stop()


def test_a_body_trickling_past_the_urls_expiry_is_published(slow, user):
    body = make_image("JPEG")
    presigned = slow.presign(slow.token(user), "image/jpeg", len(body)).json()
    started = time.monotonic()

    def trickle():
        # The first bytes go at once; the rest over about 2 × TTL, a slow mobile uplink.
        step = len(body) // 8 + 1
        for offset in range(0, len(body), step):
            yield body[offset:offset + step]
            time.sleep(2 * TTL / 8)

    response = requests.put(presigned["upload_url"], data=trickle(), headers={"Content-Type": "image/jpeg"})
    assert time.monotonic() - started > TTL + 2, "the upload did not outlast the URL"
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "ready"


def test_a_request_that_starts_after_the_expiry_is_refused(slow, user):
    body = make_image("JPEG")
    presigned = slow.presign(slow.token(user), "image/jpeg", len(body)).json()
    time.sleep(TTL + 1.5)
    response = requests.put(presigned["upload_url"], data=body, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "url_expired", response.text

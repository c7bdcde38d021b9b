"""Cameo's presigned URLs carry exactly the signature botocore's SigV4 query signer computes."""
import datetime
import random
import string
import urllib.parse
from unittest import mock

import botocore.auth
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def botocore_presign(url, content_type, key_id, secret, region, when, expires=300):
    request = AWSRequest(method="PUT", url=url, headers={"Content-Type": content_type})
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        S3SigV4QueryAuth(Credentials(key_id, secret), "s3", region, expires=expires).add_auth(request)
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))


def test_signer_matches_botocore_for_varied_inputs(stack):
    rng = random.Random(7)
    for _ in range(25):
        host = rng.choice(["127.0.0.1:8080", "avatars.example.com", "[::1]:9000"])
        path = "/uploads/" + "".join(rng.choice("0123456789abcdef") for _ in range(32))
        content_type = rng.choice(["image/jpeg", "image/png", "image/webp"])
        max_bytes = rng.randint(1, 5_242_880)
        key_id = "".join(rng.choice(string.ascii_letters) for _ in range(8))
        secret = "".join(rng.choice(string.ascii_letters + string.digits + "/+=") for _ in range(40))
        region = rng.choice(["cameo", "us-east-1", "eu-west-3"])
        when = datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=rng.randint(0, 10**8))
        epoch = int(when.replace(tzinfo=datetime.timezone.utc).timestamp())
        ours = stack.ctl("sign-url", "--host", host, "--path", path, "--content-type", content_type, "--max-bytes", str(max_bytes),
                         "--key-id", key_id, "--secret", secret, "--region", region, "--time", str(epoch))
        theirs = botocore_presign(f"http://{host}{path}?X-Cameo-Max-Bytes={max_bytes}", content_type, key_id, secret, region, when)
        assert dict(urllib.parse.parse_qsl(ours)) == theirs


def test_live_presigned_url_matches_botocore(stack, user):
    response = stack.presign(stack.token(user), "image/webp", 4321)
    url = response.json()["upload_url"]
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    when = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    key_id, secret = stack.presign_key()
    theirs = botocore_presign(f"{parts.scheme}://{parts.netloc}{parts.path}?X-Cameo-Max-Bytes=4321", "image/webp", key_id, secret, "cameo", when)
    assert query == theirs
    assert query["X-Amz-Expires"] == "300"

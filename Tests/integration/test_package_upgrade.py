"""An upgrade from the previous release's package to this tree's, as the README's "Upgrade"
says, in a booted Debian 12 root, while a client uploads without pause: every upload is
published, the schema is current, and every worker runs the new binary.

deploy/upgrade-check builds the previous release's package (CAMEO_UPGRADE_FROM_DEB) and runs
this; deploy/run-tests does not (a second release build is more than CI's budget)."""
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from test_debian_package import CACHE, HOST, ROOT, Container, first_boot_and_readme_install, put_photo, wait_healthy

OLD = os.environ.get("CAMEO_UPGRADE_FROM_DEB")
pytestmark = pytest.mark.skipif(not OLD, reason="deploy/upgrade-check runs this, with the previous release's package")

LOADER = f"""#!/bin/sh
# One upload after another through nginx, each its own user (the per-user limit), until /root/stop.
size=$(stat -c %s /root/photo.jpg)
i=0
while [ ! -e /root/stop ]; do
    i=$((i + 1))
    token=$(CAMEO_CONFIG=/etc/cameo/cameo.conf cameoctl token --user "load$i" 2>&1)
    answer=$(curl -s -H "Host: {HOST}" -H "Authorization: Bearer $token" \\
        -d "{{\\"content_type\\":\\"image/jpeg\\",\\"content_length\\":$size}}" http://127.0.0.1/users/me/avatar/upload)
    path=$(printf '%s' "$answer" | sed -n 's#.*"upload_url":"http://{HOST}\\([^"]*\\)".*#\\1#p')
    if [ -z "$path" ]; then echo "$i presign_failed $(date +%s.%N) $answer" >>/root/load.log; continue; fi
    result=$(curl -s -w ' %{{http_code}} %{{time_total}}' -H "Host: {HOST}" -X PUT -H 'Content-Type: image/jpeg' \\
        --data-binary @/root/photo.jpg "http://127.0.0.1$path")
    state=$(printf '%s' "$result" | sed -n 's/.*"state":"\\([a-z_]*\\)".*/\\1/p')
    echo "$i ${{state:-none}} $(date +%s.%N) $result" >>/root/load.log
done
"""


def uploads(box):
    lines = box.run("sh", "-c", "cat /root/load.log 2>/dev/null || true").stdout.splitlines()
    return [line.split(" ", 3) for line in lines]


def test_an_upgrade_under_load_publishes_every_upload():
    out = tempfile.mkdtemp(prefix="cameo-deb.")
    new = subprocess.run([os.path.join(ROOT, "deploy", "build-deb"), "--no-build", "--output", out], capture_output=True, text=True,
                         check=True).stdout.strip()
    root = subprocess.run([os.path.join(ROOT, "deploy", "debian-root"), CACHE], capture_output=True, text=True, check=True,
                          timeout=900).stdout.strip()
    box = Container(root)
    try:
        for name, path in (("old.deb", OLD), ("new.deb", new)):
            with open(path, "rb") as f:
                box.put_file(f"/root/{name}", f.read())
        box.run("dpkg", "-i", "/root/old.deb")
        old_version = box.run("cameoctl", "--version").stdout.strip()
        first_boot_and_readme_install(box)
        put_photo(box)
        box.put_file("/root/load.sh", LOADER.encode(), mode="0755")
        box.run("systemd-run", "--unit=loader", "--quiet", "/root/load.sh")
        for _ in range(100):
            if len(uploads(box)) >= 3:
                break
            time.sleep(0.1)
        assert len(uploads(box)) >= 3, uploads(box)

        # README, "Upgrade", on this one host.
        started = time.monotonic()
        unpacked = box.run("dpkg", "-i", "/root/new.deb").stdout
        # postinst ran the migrations of the new release; the README's own run finds none left.
        migrated = next((line for line in unpacked.splitlines() if line.startswith(("applied:", "schema is up to date"))), "no migrate line")
        assert box.sh("CAMEO_CONFIG=/etc/cameo/cameo.conf cameoctl migrate").stdout.strip() == "schema is up to date"
        box.sh("systemctl restart cameo-pool@fast cameo-pool@heavy")
        box.sh("nginx -t 2>&1 && systemctl reload nginx")
        box.sh("systemctl restart cameo-scan-retry && systemctl start cameo.target")
        upgrade_seconds = time.monotonic() - started
        during = len(uploads(box))
        time.sleep(3)                                   # and it goes on uploading on the new release
        box.run("touch", "/root/stop")
        for _ in range(100):
            if box.run("systemctl", "is-active", "loader", check=False).stdout.strip() != "active":
                break
            time.sleep(0.1)
        done = uploads(box)

        failed = [line for line in done if line[1] != "ready"]
        assert not failed, failed
        assert len(done) > during >= 3, (len(done), during)
        new_version = box.run("cameoctl", "--version").stdout.strip()
        assert new_version != old_version
        status = box.run("env", "CAMEO_CONFIG=/etc/cameo/cameo.conf", "cameoctl", "migrate", "--status", check=False)
        assert status.returncode == 0 and "schema is up to date" in status.stdout, status.stdout
        # Every worker runs the new binary (none holds a deleted, replaced executable).
        for pool in ("fast", "heavy"):
            main = box.run("systemctl", "show", "-p", "MainPID", "--value", f"cameo-pool@{pool}").stdout.strip()
            for pid in box.run("pgrep", "-P", main).stdout.split():
                exe = box.run("readlink", f"/proc/{pid}/exe").stdout.strip()
                assert exe == "/usr/bin/cameo-fcgi", exe
        wait_healthy(box)
        # What the new release added works: the collector counts the uploads made since it started.
        assert box.run("systemctl", "is-active", "cameo-metrics").stdout.strip() == "active"
        assert re.search(r'cameo_uploads_total\{state="ready"\} [1-9]', box.curl("http://127.0.0.1:9173/metrics"))
        latencies = sorted(float(line[3].split()[-1]) for line in done)
        print(f"\nupgrade {old_version} -> {new_version}: {len(done)} uploads, all published ({during} by the time the upgrade steps ended); "
              f"steps took {upgrade_seconds:.1f} s; PUT median {latencies[len(latencies) // 2]:.3f} s, max {latencies[-1]:.3f} s; "
              f"postinst's migrate: {migrated}")
    finally:
        box.stop()
        shutil.rmtree(out, ignore_errors=True)

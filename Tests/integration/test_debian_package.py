"""The Debian package in a fresh Debian 12 root booted with a real systemd (systemd-nspawn): it
installs beside Debian's own packages with no Swift toolchain there, the README's steps bring
it up (host name, database, migrations, site), `/health/avatar` answers 200 through the shipped
site while Debian's default site stays enabled, an upload is published, and a broken config
fails the unit instead of looping.

The root (debootstrap, Debian's nginx, MariaDB, clamd) is built once per machine by
deploy/debian-root and booted read-only with a throwaway overlay, so every run starts clean."""
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST = "avatars.test"
CACHE = os.environ.get("CAMEO_DEBIAN_ROOT_CACHE", "/var/tmp/cameo-package-test")


class Container:
    """A booted root: commands run inside with nsenter into its PID 1."""

    def __init__(self, root):
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        self.process = subprocess.Popen(
            ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--console=read-only", "--private-network",
             "--system-call-filter=bpf", "--volatile=overlay", "-D", root],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.pid = None
        for _ in range(300):
            children = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout.split()
            if children:
                self.pid = int(children[0])
                state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.1)
        raise AssertionError("the root did not boot")

    # A login's environment, not the test runner's: its CAMEO_* settings must not reach inside.
    ENVIRONMENT = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}

    def run(self, *command, check=True, stdin=None, timeout=120):
        done = subprocess.run(["nsenter", "-t", str(self.pid), "-a", *command], input=stdin, capture_output=True, env=self.ENVIRONMENT,
                              timeout=timeout, text=stdin is None or isinstance(stdin, str))
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {done.returncode}: {done.stdout}{done.stderr}")
        return done

    def sh(self, script, check=True):
        return self.run("/bin/sh", "-ec", script, check=check)

    def put_file(self, path, data, mode="0644"):
        self.run("/bin/sh", "-c", f"cat > {path} && chmod {mode} {path}", stdin=data)

    def curl(self, *args):
        return self.run("curl", "-s", "-H", f"Host: {HOST}", *args, check=False).stdout

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def installed():
    if shutil.which("debootstrap") is None and os.geteuid() != 0:
        pytest.skip("needs root")
    out = tempfile.mkdtemp(prefix="cameo-deb.")
    built = subprocess.run([os.path.join(ROOT, "deploy", "build-deb"), "--no-build", "--output", out], capture_output=True, text=True,
                           check=True)
    deb = built.stdout.strip()
    root = subprocess.run([os.path.join(ROOT, "deploy", "debian-root"), CACHE], capture_output=True, text=True, check=True,
                          timeout=900).stdout.strip()
    box = Container(root)
    try:
        with open(deb, "rb") as f:
            box.put_file("/root/cameo.deb", f.read())
        started = time.monotonic()
        box.run("dpkg", "-i", "/root/cameo.deb")
        box.install_seconds = time.monotonic() - started
        box.deb_bytes = os.path.getsize(deb)
        yield box
    finally:
        box.stop()
        shutil.rmtree(out, ignore_errors=True)


def test_the_binaries_run_without_a_swift_toolchain(installed):
    assert installed.run("sh", "-c", "ls /usr/bin | grep -c '^swift' || true").stdout.strip() == "0"
    for binary in ("/usr/bin/cameo-fcgi", "/usr/bin/cameoctl", "/usr/bin/cameo-metrics"):
        linked = installed.run("ldd", binary).stdout
        assert not re.search(r"libswift|libFoundation|lib_Foundation|libdispatch|not found", linked), linked
    assert installed.run("cameoctl", "--version").stdout.strip() == installed.run("dpkg-query", "-W", "-f=${Version}", "cameo").stdout


def test_the_install_made_the_user_folders_and_a_config_with_fresh_secrets(installed):
    assert installed.run("id", "-u", "cameo").returncode == 0
    modes = installed.run("stat", "-c", "%n %a %U:%G", "/etc/cameo/cameo.conf", "/var/lib/cameo/media", "/var/lib/cameo/media/quarantine",
                          "/var/lib/cameo/upload-buffer", "/etc/cameo/nginx/cameo-fastcgi-secret.conf").stdout.split("\n")
    assert "/etc/cameo/cameo.conf 640 root:cameo" in modes
    assert "/var/lib/cameo/media 710 cameo:www-data" in modes
    assert "/var/lib/cameo/media/quarantine 700 cameo:cameo" in modes
    assert "/var/lib/cameo/upload-buffer 700 www-data:www-data" in modes
    assert "/etc/cameo/nginx/cameo-fastcgi-secret.conf 600 root:root" in modes
    assert installed.run("systemctl", "is-enabled", "cameo.target").stdout.strip() == "enabled"
    # The secrets pass the start's checks: the config is valid as written.
    assert "config ok" in installed.run("env", "CAMEO_CONFIG=/etc/cameo/cameo.conf", "cameoctl", "check-config").stdout


def first_boot_and_readme_install(box):
    """What a real first boot needs and the package does not do, then the README's steps."""
    # clamd's signatures: freshclam on a real host; here the project's test database, and
    # Debian's unit told to accept it.
    with open(os.path.join(ROOT, "deploy", "clamav", "cameo-test.ndb"), "rb") as f:
        box.put_file("/var/lib/clamav/cameo-test.ndb", f.read())
    box.put_file("/etc/systemd/system/clamav-daemon.service.d/test-signatures.conf", b"[Unit]\nConditionPathExistsGlob=\n")
    box.sh("systemctl daemon-reload && systemctl start clamav-daemon")
    # The README: the host name, the database, the migrations, the site, the pools.
    box.sh(f"sed -i 's#^public_base_url = .*#public_base_url = http://{HOST}#' /etc/cameo/cameo.conf")
    password = re.search(r"^database.password = (\S+)$", box.run("cat", "/etc/cameo/cameo.conf").stdout, re.M).group(1)
    box.run("mariadb", "-e", f"CREATE DATABASE cameo; CREATE USER 'cameo'@'localhost' IDENTIFIED BY '{password}'; "
            "GRANT ALL ON cameo.* TO 'cameo'@'localhost';")
    box.sh("CAMEO_CONFIG=/etc/cameo/cameo.conf cameoctl migrate --directory /usr/share/cameo/sql")
    box.sh("CAMEO_CONFIG=/etc/cameo/cameo.conf cameoctl render-nginx --output /etc/cameo/nginx --site /etc/nginx/sites-available/cameo.conf "
           "--template /usr/share/cameo/nginx/cameo.conf.in --www-root /usr/share/cameo/www")
    box.sh("ln -s ../sites-available/cameo.conf /etc/nginx/sites-enabled/ && nginx -t 2>&1 && systemctl reload nginx")
    box.sh("systemctl restart cameo.target")
    wait_healthy(box)


def wait_healthy(box):
    health = ""
    for _ in range(100):
        health = box.curl("http://127.0.0.1/health/avatar")
        if '"status":"ok"' in health:
            return
        time.sleep(0.1)
    raise AssertionError(f"not healthy: {health}")


def put_photo(box, path="/root/photo.jpg"):
    from PIL import Image
    import io

    image = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 40, 40)).save(image, "JPEG")
    box.put_file(path, image.getvalue())


def upload_in(box, user, path="/root/photo.jpg"):
    """Presign and PUT from inside the root, as a client through nginx; the upload's answer."""
    import json

    size = int(box.run("stat", "-c", "%s", path).stdout)
    token = box.run("env", "CAMEO_CONFIG=/etc/cameo/cameo.conf", "cameoctl", "token", "--user", user).stdout.strip()
    presigned = json.loads(box.curl("-H", f"Authorization: Bearer {token}", "-d",
                                    json.dumps({"content_type": "image/jpeg", "content_length": size}),
                                    "http://127.0.0.1/users/me/avatar/upload"))
    upload_path = presigned["upload_url"].removeprefix(f"http://{HOST}")
    return json.loads(box.curl("-X", "PUT", "-H", "Content-Type: image/jpeg", "--data-binary", f"@{path}", f"http://127.0.0.1{upload_path}"))


def test_the_readme_steps_bring_it_up_beside_debians_default_site_and_an_upload_is_published(installed):
    box = installed
    first_boot_and_readme_install(box)
    assert box.run("test", "-e", "/etc/nginx/sites-enabled/default").returncode == 0
    debian = box.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{content_type}", "http://127.0.0.1/", check=False).stdout
    assert debian.startswith("200 text/html"), debian
    # An upload through the install: a token as the host application mints it, presign, PUT.
    put_photo(box)
    published = upload_in(box, "pkguser")
    assert published["state"] == "ready", published
    served = box.curl("-o", "/dev/null", "-w", "%{http_code} %{content_type}", "http://127.0.0.1/profile-media/pkguser/avatar.webp")
    assert served == "200 image/webp"
    # The collector under its unit saw it, and reads the pools' queues (netlink in its sandbox).
    metrics = box.curl("http://127.0.0.1:9173/metrics")
    assert 'cameo_uploads_total{state="ready"} 1' in metrics, metrics
    assert re.search(r'cameo_pool_queue_limit\{pool="heavy"\} [1-9]', metrics), metrics
    assert 'cameo_http_requests_total{pool="heavy",route="upload",status="200"} 1' in metrics, metrics


def test_a_backup_brings_back_the_database_and_the_avatars_after_both_are_lost(installed):
    box = installed
    published = upload_in(box, "backedup")
    assert published["state"] == "ready", published
    before = box.run("sh", "-c", f"curl -s -H 'Host: {HOST}' http://127.0.0.1/profile-media/backedup/avatar.webp | sha256sum").stdout
    backup = box.run("cameo-backup", "create", "/root/backups").stdout.strip()
    assert box.run("stat", "-c", "%a", backup).stdout.strip() == "700"
    assert sorted(box.run("ls", backup).stdout.split()) == ["config.tar.gz", "database.sql.gz", "media.tar.gz"]
    # The disaster: the database and every published file gone.
    box.sh("systemctl stop cameo.target cameo-pool@fast cameo-pool@heavy cameo-scan-retry cameo-metrics")
    box.sh("mariadb -e 'DROP DATABASE cameo' && rm -rf /var/lib/cameo/media/profile-media/*")
    restored = box.run("cameo-backup", "restore", backup)
    assert "restored" in restored.stdout, restored.stderr
    wait_healthy(box)
    after = box.run("sh", "-c", f"curl -s -H 'Host: {HOST}' http://127.0.0.1/profile-media/backedup/avatar.webp | sha256sum").stdout
    assert after == before
    shown = box.run("env", "CAMEO_CONFIG=/etc/cameo/cameo.conf", "cameoctl", "show-media", published["media_id"]).stdout
    assert re.search(r"state\s+ready", shown), shown
    assert box.run("stat", "-c", "%U:%G %a", "/var/lib/cameo/media/profile-media").stdout.strip() == "cameo:www-data 2750"
    # And it goes on: a new upload after the restore is published.
    assert upload_in(box, "afterrestore")["state"] == "ready"


def test_the_sweeper_and_the_retrier_run_in_their_sandboxes(installed):
    box = installed
    box.run("systemctl", "start", "cameo-sweep.service")          # oneshot: waits, fails if the sweep fails
    assert "sweep" in box.run("journalctl", "-u", "cameo-sweep", "--no-pager").stdout
    assert box.run("systemctl", "is-active", "cameo-scan-retry").stdout.strip() == "active"
    assert box.run("systemctl", "is-active", "cameo-pool@fast.socket", "cameo-pool@heavy.socket").stdout.split() == ["active", "active"]
    # The pools run as cameo from the start: no process of theirs is root.
    owners = box.sh("ps -o user= -C multiwatch,cameo-fcgi | sort -u").stdout.split()
    assert owners == ["cameo"], owners


def test_reload_applies_a_config_change_to_every_worker(installed):
    import json

    box = installed
    users = iter(range(100))

    def presigned_lifetime():
        # A user each: the per-user limit is 5 presigns a minute.
        token = box.run("env", "CAMEO_CONFIG=/etc/cameo/cameo.conf", "cameoctl", "token", "--user", f"reloader{next(users)}").stdout.strip()
        answer = json.loads(box.curl("-H", f"Authorization: Bearer {token}", "-d", '{"content_type":"image/png","content_length":100}',
                                     "http://127.0.0.1/users/me/avatar/upload"))
        return int(re.search(r"X-Amz-Expires=(\d+)", answer["upload_url"]).group(1))

    main = box.run("systemctl", "show", "-p", "MainPID", "--value", "cameo-pool@fast").stdout.strip()
    workers = set(box.run("pgrep", "-P", main).stdout.split())
    assert presigned_lifetime() == 300
    box.sh("echo 'presign.ttl_seconds = 120' >> /etc/cameo/cameo.conf && systemctl reload cameo-pool@fast")
    for _ in range(50):
        fresh = set(box.run("pgrep", "-P", main, check=False).stdout.split())
        if fresh and not fresh & workers:
            break
        time.sleep(0.1)
    assert fresh and not fresh & workers, "the workers were not replaced"
    assert box.run("systemctl", "show", "-p", "MainPID", "--value", "cameo-pool@fast").stdout.strip() == main   # reloaded, not restarted
    assert {presigned_lifetime() for _ in range(6)} == {120}       # every worker has the new config
    # A bad change is refused by the reload, and the pool keeps running as it was.
    box.sh("echo 'presign.ttl_seconds = 2' >> /etc/cameo/cameo.conf")
    assert box.run("systemctl", "reload", "cameo-pool@fast", check=False).returncode != 0
    assert box.run("systemctl", "is-active", "cameo-pool@fast").stdout.strip() == "active"
    box.sh("sed -i '/^presign.ttl_seconds/d' /etc/cameo/cameo.conf && systemctl reload cameo-pool@fast")


def test_a_config_broken_while_the_pool_runs_fails_the_unit_at_the_next_recycle(installed):
    """Edited without a reload: the next worker multiwatch starts cannot read it. It stops the
    pool instead of being respawned forever, and the unit's restart fails its check."""
    box = installed
    box.run("systemctl", "start", "cameo-pool@heavy")
    main = box.run("systemctl", "show", "-p", "MainPID", "--value", "cameo-pool@heavy").stdout.strip()
    for _ in range(50):
        if box.run("pgrep", "-P", main, check=False).stdout.strip():
            break
        time.sleep(0.1)
    box.sh("cp /etc/cameo/cameo.conf /root/cameo.conf.good && echo 'databse.password = x' >> /etc/cameo/cameo.conf")
    try:
        box.sh(f"pkill -TERM -P {main} cameo-fcgi")       # every worker recycles, as after worker.max_requests
        state = ""
        for _ in range(200):
            state = box.run("systemctl", "is-failed", "cameo-pool@heavy", check=False).stdout.strip()
            if state == "failed":
                break
            time.sleep(0.1)
        assert state == "failed", box.run("systemctl", "status", "cameo-pool@heavy", check=False).stdout
        journal = box.run("journalctl", "--no-pager", "--grep", "databse.password|stopping the pool", check=False).stdout
        assert "databse.password" in journal and "stopping the pool" in journal, journal
    finally:
        box.sh("cp /root/cameo.conf.good /etc/cameo/cameo.conf && systemctl reset-failed cameo-pool@heavy && systemctl start cameo-pool@heavy")
    assert box.run("systemctl", "is-active", "cameo-pool@heavy").stdout.strip() == "active"


def test_a_broken_config_fails_the_pool_instead_of_looping(installed):
    box = installed
    box.sh("cp /etc/cameo/cameo.conf /root/cameo.conf.good && echo 'scanner.mod = external' >> /etc/cameo/cameo.conf")
    try:
        restarted = box.run("systemctl", "restart", "cameo-pool@fast", check=False)
        assert restarted.returncode != 0
        state = ""
        for _ in range(150):      # three failed starts, 2 s apart, then it stays failed
            state = box.run("systemctl", "is-failed", "cameo-pool@fast", check=False).stdout.strip()
            if state == "failed":
                break
            time.sleep(0.1)
        assert state == "failed"
        time.sleep(3)
        assert box.run("systemctl", "is-failed", "cameo-pool@fast", check=False).stdout.strip() == "failed", "it started again"
        # The journal says why. (Searched whole: journald may not tie the line of a check that
        # exited at once to its unit.)
        journal = box.run("journalctl", "--no-pager", "--grep", "scanner.mod", check=False).stdout
        assert "unknown key" in journal or "scanner.mod" in journal, journal
    finally:
        box.sh("cp /root/cameo.conf.good /etc/cameo/cameo.conf && systemctl reset-failed cameo-pool@fast && systemctl start cameo-pool@fast")
    # What the note reports: the package's size, the install time, the units' exposure.
    scores = {unit: box.run("systemd-analyze", "security", unit, check=False).stdout.strip().splitlines()[-1]
              for unit in ("cameo-pool@fast", "cameo-scan-retry", "cameo-sweep", "cameo-jwks-refresh", "cameo-metrics")}
    print(f"\npackage {box.deb_bytes} bytes, dpkg -i {box.install_seconds:.1f} s; " + "; ".join(f"{u}: {s}" for u, s in scores.items()))

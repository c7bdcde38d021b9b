"""The files a sysadmin installs: the nginx site and snippets pass `nginx -t` inside Debian's
own nginx configuration, as shipped."""
import os
import shutil
import subprocess
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_site_coexists_with_debians_default_site(stack):
    """The site as an install renders it, inside a copy of Debian's own nginx configuration
    with Debian's default site still enabled: `nginx -t` passes without a warning, and, both
    sites listening on one port, a request for Cameo's host name reaches Cameo (JSON; its
    pools are not running here, so 503 `unavailable`) while any other name still gets
    Debian's page."""
    import requests

    port = int(os.environ.get("CAMEO_PORT", "18080")) + 7
    with tempfile.TemporaryDirectory() as etc:
        os.chmod(etc, 0o755)
        shutil.copytree("/etc/nginx", etc, dirs_exist_ok=True, symlinks=True)
        # load_module paths are relative to the prefix; point them at Debian's modules.
        if os.path.lexists(os.path.join(etc, "modules")):
            os.unlink(os.path.join(etc, "modules"))
        os.symlink("/usr/lib/nginx/modules", os.path.join(etc, "modules"))
        for name in os.listdir(os.path.join(ROOT, "nginx", "snippets")):
            shutil.copy(os.path.join(ROOT, "nginx", "snippets", name), os.path.join(etc, "snippets", name))
        assert os.path.exists(os.path.join(etc, "sites-enabled", "default")), "Debian's default site is not enabled here"
        media = os.path.join(etc, "media")
        os.makedirs(os.path.join(media, "incoming"))
        # Rendered as an install renders it, with its own host name; the media root must exist
        # for nginx (environment overrides of the stack's config).
        env = dict(os.environ, CAMEO_CONFIG=stack.config_path, CAMEO_MEDIA_ROOT=media, CAMEO_PUBLIC_BASE_URL="https://avatars.example.com",
                   CAMEO_NGINX_LOG_DIRECTORY=etc, CAMEO_METRICS_LISTEN=f"127.0.0.1:{port + 1000}")
        cameoctl = os.path.join(ROOT, ".build", "release", "cameoctl")
        render = [cameoctl, "render-nginx", "--output", os.path.join(etc, "cameo"), "--site", os.path.join(etc, "sites-enabled", "cameo.conf"),
                  "--template", os.path.join(ROOT, "nginx", "sites-available", "cameo.conf.in")]
        subprocess.run(render, env=env, check=True)
        main = os.path.join(etc, "nginx.conf")
        with open(main) as f:
            text = f.read().replace("include /etc/nginx/", f"include {etc}/")
        with open(main, "w") as f:
            f.write(text)
        result = subprocess.run(["nginx", "-t", "-p", etc + "/", "-c", main], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "syntax is ok" in result.stderr and "[warn]" not in result.stderr, result.stderr

        # Both sites on one loopback port, as both are on port 80 on a host; a server of our own.
        subprocess.run(render + ["--listen", f"127.0.0.1:{port}"], env=env, check=True, capture_output=True)
        default_site = os.path.join(etc, "sites-enabled", "default")
        with open(default_site) as f:
            site = f.read().replace("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;").replace(
                "listen [::]:80 default_server;", "")
        os.unlink(default_site)
        with open(default_site, "w") as f:
            f.write(site)
        with open(main) as f:
            text = f.read().replace("pid /run/nginx.pid;", f"pid {etc}/nginx.pid;").replace("/var/log/nginx/", f"{etc}/")
        with open(main, "w") as f:
            f.write(text)
        subprocess.run(["nginx", "-p", etc + "/", "-c", main], check=True, capture_output=True)
        try:
            cameo = requests.get(f"http://127.0.0.1:{port}/health/avatar", headers={"Host": "avatars.example.com"}, timeout=10)
            assert cameo.status_code == 503 and cameo.json()["error"]["code"] == "unavailable", cameo.text
            other = requests.get(f"http://127.0.0.1:{port}/", headers={"Host": "www.example.org"}, timeout=10)
            assert other.status_code == 200 and "nginx" in other.text and "text/html" in other.headers["Content-Type"]
        finally:
            subprocess.run(["nginx", "-p", etc + "/", "-c", main, "-s", "stop"], capture_output=True)
            for _ in range(50):
                if not os.path.exists(os.path.join(etc, "nginx.pid")):
                    break
                time.sleep(0.1)


def test_systemd_units_verify_without_warnings(tmp_path):
    """`systemd-analyze verify` on every shipped unit, with the binaries where this checkout
    built them: unknown keys, bad values or missing executables show up as output."""
    release = os.path.join(ROOT, ".build", "release") + "/"
    units = os.path.join(ROOT, "deploy", "systemd")
    for name in sorted(os.listdir(units)):
        with open(os.path.join(units, name)) as f:
            text = f.read()
        text = text.replace("/usr/local/bin/cameo-jwks-refresh", os.path.join(ROOT, "deploy", "cameo-jwks-refresh"))
        text = text.replace("/usr/local/bin/", release)
        target = tmp_path / name.replace("@.", "@fast.")
        target.write_text(text)
    for unit in sorted(tmp_path.iterdir()):
        result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0 and result.stdout + result.stderr == "", f"{unit.name}: {result.stdout}{result.stderr}"


PLACEHOLDERS = ["CHANGE-ME-TO-32-OR-MORE-RANDOM-BYTES", "CHANGE-ME", "x" * 40]


def test_the_example_config_ships_no_secret_and_cannot_start_a_worker(stack):
    """Copying the example as it is gives a worker that refuses to start, naming a key; no
    value in it is usable as a secret, and tokens forged with the placeholders it once held are
    refused by the running stack."""
    import jwt
    import requests

    example = os.path.join(ROOT, "deploy", "cameo.conf.example")
    release = os.path.join(ROOT, ".build", "release")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMEO_")}
    env["CAMEO_CONFIG"] = example
    worker = subprocess.run([os.path.join(release, "cameo-fcgi")], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10)
    assert worker.returncode == 78, worker.stderr
    assert "auth.algorithms" in worker.stderr
    for line in open(example):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key = line.split("=", 1)[0].strip()
            assert "secret" not in key and "password" not in key and "keys" not in key, f"the example sets {key}"
    # A placeholder put in the config by hand stops the start too, named and not echoed.
    for placeholder in PLACEHOLDERS:
        env.update(CAMEO_CONFIG=stack.config_path, CAMEO_AUTH_HS256_SECRET=placeholder)
        check = subprocess.run([os.path.join(release, "cameoctl"), "check-config"], env=env, capture_output=True, text=True)
        assert check.returncode != 0 and "auth.hs256_secret" in check.stderr and placeholder not in check.stderr
    for placeholder in PLACEHOLDERS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyJWT warns about the short key: that is the point
            forged = jwt.encode({"sub": "victim", "exp": int(time.time()) + 60}, placeholder, algorithm="HS256")
        response = requests.post(stack.url("/users/me/avatar/upload"), json={"content_type": "image/png", "content_length": 10},
                                 headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"


def test_init_config_writes_a_config_the_worker_accepts_and_never_overwrites(tmp_path):
    """A new install's config: fresh secrets that pass the start's checks, 0640, refused when
    the file exists; and generate-secret makes values that pass too."""
    cameoctl = os.path.join(ROOT, ".build", "release", "cameoctl")
    target = str(tmp_path / "cameo.conf")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMEO_")}
    subprocess.run([cameoctl, "init-config", "--public-base-url", "https://avatars.example.com", "--output", target], env=env, check=True,
                   capture_output=True)
    assert oct(os.stat(target).st_mode & 0o777) == "0o640"
    check = subprocess.run([cameoctl, "check-config"], env=dict(env, CAMEO_CONFIG=target), capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    again = subprocess.run([cameoctl, "init-config", "--public-base-url", "https://other.example", "--output", target], env=env,
                           capture_output=True, text=True)
    assert again.returncode != 0 and "https://avatars.example.com" in open(target).read()
    secrets = {subprocess.run([cameoctl, "generate-secret"], capture_output=True, text=True, check=True).stdout.strip() for _ in range(3)}
    assert len(secrets) == 3
    for secret in secrets:
        env_with = dict(env, CAMEO_CONFIG=target, CAMEO_AUTH_HS256_SECRET=secret)
        assert subprocess.run([cameoctl, "check-config"], env=env_with, capture_output=True).returncode == 0


def test_a_bad_config_value_stops_the_worker_and_names_the_key(stack):
    """The worker and `cameoctl check-config` read the same config the same way: a bad value
    stops the start (EX_CONFIG) with the key and its environment variable named, and a secret's
    value never appears in the message."""
    release = os.path.join(ROOT, ".build", "release")
    env = dict(os.environ, CAMEO_CONFIG=stack.config_path, CAMEO_LIMITS_MAX_SIDE="big")
    worker = subprocess.run([os.path.join(release, "cameo-fcgi")], env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=10)
    assert worker.returncode == 78
    assert "limits.max_side (env CAMEO_LIMITS_MAX_SIDE)" in worker.stderr
    env.pop("CAMEO_LIMITS_MAX_SIDE")
    env["CAMEO_PRESIGN_KEYS"] = "k1:too-short-secret"
    check = subprocess.run([os.path.join(release, "cameoctl"), "check-config"], env=env, capture_output=True, text=True)
    assert check.returncode != 0
    assert "presign.keys" in check.stderr and "too-short-secret" not in check.stderr
    env.pop("CAMEO_PRESIGN_KEYS")
    assert subprocess.run([os.path.join(release, "cameoctl"), "check-config"], env=env, capture_output=True).returncode == 0


def test_a_crlf_config_with_a_mistake_prints_no_secret_and_a_typo_key_is_named(tmp_path):
    """A config written on Windows (CRLF, a byte order mark) with fresh secrets reads like any
    other; one with a bad URL, a typo key or a quoted value stops the worker and check-config
    alike (exit 78) naming the line or key, and no secret of the file is in what they print."""
    cameoctl = os.path.join(ROOT, ".build", "release", "cameoctl")
    worker = os.path.join(ROOT, ".build", "release", "cameo-fcgi")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMEO_")}
    fresh = str(tmp_path / "fresh.conf")
    subprocess.run([cameoctl, "init-config", "--public-base-url", "https://avatars.example.com", "--output", fresh], env=env, check=True,
                   capture_output=True)
    lines = [line.rstrip("\n") for line in open(fresh)]
    secrets = [line.split("=", 1)[1].strip() for line in lines if "=" in line and not line.startswith("#")
               and any(word in line.split("=", 1)[0] for word in ("secret", "password", "keys"))]
    assert len(secrets) >= 3

    def run_both(text, with_worker=True):
        path = tmp_path / "cameo.conf"
        path.write_bytes(text.encode())
        results = []
        for command in ([cameoctl, "check-config"], [worker])[:2 if with_worker else 1]:
            done = subprocess.run(command, env=dict(env, CAMEO_CONFIG=str(path)), capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, timeout=10)
            for secret in secrets:
                for value in secret.split(","):
                    assert value.split(":")[-1] not in done.stdout + done.stderr, f"{command[0]} printed a secret"
            results.append(done)
        return results

    crlf = "\ufeff" + "\r\n".join(lines) + "\r\n"
    check = run_both(crlf, with_worker=False)[0]   # a worker with a good config would wait for nginx
    assert check.returncode == 0, check.stderr
    for mistake, named in [
        (crlf.replace("https://avatars.example.com", "avatars example com"), "public_base_url"),
        (crlf + "scanner.mod = external\r\n", "did you mean `scanner.mode`?"),
        (crlf + "limits.animated = \"reject\"\r\n", "in quotes"),
    ]:
        for done in run_both(mistake):
            assert done.returncode == 78, done.stderr
            assert named in done.stderr, done.stderr


def test_the_release_binaries_carry_swifts_runtime():
    """What an install runs needs no Swift toolchain: no libswift*, Foundation or libdispatch
    from outside the binary (deploy/dev-stack builds release with --static-swift-stdlib)."""
    for name in ("cameo-fcgi", "cameoctl"):
        linked = subprocess.run(["ldd", os.path.join(ROOT, ".build", "release", name)], capture_output=True, text=True, check=True).stdout
        for library in ("libswift", "libFoundation", "lib_Foundation", "libdispatch", "libBlocksRuntime"):
            assert library not in linked, f"{name} links {library}: {linked}"


def test_the_debian_package_holds_the_install(tmp_path):
    """deploy/build-deb packs the release build and the shipped files: binaries, units with the
    package's paths, site template and snippets, migrations, page, maintainer scripts. (That
    the package installs and runs in a fresh Debian root under systemd is issue 10's next
    test; this one checks what the package holds.)"""
    done = subprocess.run([os.path.join(ROOT, "deploy", "build-deb"), "--no-build", "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    deb = done.stdout.strip()
    version = subprocess.run([os.path.join(ROOT, ".build", "release", "cameoctl"), "--version"], capture_output=True, text=True).stdout.strip()
    assert os.path.basename(deb) == f"cameo_{version}_amd64.deb"
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    for path in ("./usr/bin/cameo-fcgi", "./usr/bin/cameoctl", "./usr/lib/cameo/cameo-jwks-refresh", "./lib/systemd/system/cameo-pool@.socket",
                 "./lib/systemd/system/cameo-pool@.service",
                 "./lib/systemd/system/cameo.target", "./usr/share/cameo/nginx/cameo.conf.in", "./etc/nginx/snippets/cameo-fastcgi.conf",
                 "./usr/share/cameo/sql/0005_callback_replays.sql", "./usr/share/cameo/www/index.html"):
        assert path in listing, path
    unpacked = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-R", deb, str(unpacked)], check=True)
    for unit in (unpacked / "lib" / "systemd" / "system").iterdir():
        assert "/usr/local" not in unit.read_text(), f"{unit.name} still names /usr/local"
    assert "-- /usr/bin/cameo-fcgi" in (unpacked / "lib" / "systemd" / "system" / "cameo-pool@.service").read_text()
    control = (unpacked / "DEBIAN" / "control").read_text()
    assert f"Version: {version}" in control and "multiwatch" in control and "libswift" not in control
    for script in ("postinst", "prerm", "postrm"):
        assert subprocess.run(["sh", "-n", str(unpacked / "DEBIAN" / script)]).returncode == 0, script
    # The packed worker is the release build, stripped, and still runs here.
    assert subprocess.run([str(unpacked / "usr" / "bin" / "cameo-fcgi"), "--version"], capture_output=True, text=True).stdout.strip() \
        == f"cameo-fcgi {version}"

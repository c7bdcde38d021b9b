"""Least privilege (SPEC §1): the workers run as their own user, nginx's user cannot read
Cameo's config, and a process of nginx's user that connects to a worker socket directly (as
php-fpm's pool could) gets nothing from it."""
import os
import pwd
import struct
import subprocess
import sys
import textwrap

import requests

# A minimal FastCGI client: BEGIN_REQUEST (responder), PARAMS, empty PARAMS, empty STDIN; it
# prints every byte of STDOUT the worker sends back.
CLIENT = textwrap.dedent(r'''
    import socket, struct, sys
    def record(kind, content):
        return struct.pack("!BBHHBx", 1, kind, 1, len(content), 0) + content
    def pair(name, value):
        name, value = name.encode(), value.encode()
        return bytes([len(name), len(value)]) + name + value
    params = b"".join(pair(k, v) for k, v in [
        ("REQUEST_METHOD", "GET"), ("DOCUMENT_URI", "/health/avatar"), ("REQUEST_URI", "/health/avatar"),
        ("SCRIPT_NAME", "/health/avatar"), ("CAMEO_REQUEST_ID", "direct")] + [tuple(a.split("=", 1)) for a in sys.argv[2:]])
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sys.argv[1])
    s.sendall(record(1, struct.pack("!HB5x", 1, 0)) + record(4, params) + record(4, b"") + record(5, b""))
    out, data = b"", b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    while len(data) >= 8:
        _, kind, _, length, padding = struct.unpack("!BBHHB", data[:7])
        if kind == 6:
            out += data[8:8 + length]
        data = data[8 + length + padding:]
    sys.stdout.write(out.decode("latin-1"))
''')


# The test runner's own Python may live where nginx's user cannot run it (a venv under /root).
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def as_nginx_user(*command):
    return subprocess.run(["runuser", "-u", "www-data", "--", *command], capture_output=True, text=True, timeout=20)


def test_a_direct_connection_to_a_worker_socket_as_nginxs_user_gets_nothing(stack):
    socket_path = os.path.join(stack.state_dir, "run", "fast.sock")
    # The control: through nginx the same route answers.
    assert requests.get(stack.url("/health/avatar"), timeout=10).status_code == 200
    direct = as_nginx_user(SYSTEM_PYTHON, "-c", CLIENT, socket_path)
    assert direct.returncode == 0, direct.stderr     # nginx's user can connect...
    assert direct.stdout == ""                       # ...and gets not a byte back
    guessed = as_nginx_user(SYSTEM_PYTHON, "-c", CLIENT, socket_path, "CAMEO_FRONT_SECRET=" + "0" * 64)
    assert guessed.returncode == 0 and guessed.stdout == ""
    # With the real secret (read here as root, from the root-only include) the worker answers:
    # the test can fail, and what is refused is the missing secret.
    secret = stack.config["nginx.fastcgi_secret"]
    admitted = as_nginx_user(SYSTEM_PYTHON, "-c", CLIENT, socket_path, "CAMEO_FRONT_SECRET=" + secret)
    assert "Status: 200" in admitted.stdout, admitted.stdout + admitted.stderr


def test_nginxs_user_cannot_read_the_config_the_secret_include_or_quarantine(stack):
    for path in [stack.config_path, os.path.join(stack.state_dir, "nginx", "sites", "cameo-fastcgi-secret.conf")]:
        assert os.path.exists(path)
        result = as_nginx_user("cat", path)
        assert result.returncode != 0 and "Permission denied" in result.stderr, path
    for folder in ["quarantine", "incoming"]:
        assert as_nginx_user("ls", os.path.join(stack.media_root, folder)).returncode != 0, folder
    # What it may read: the published avatars' folder.
    assert as_nginx_user("ls", os.path.join(stack.media_root, "profile-media")).returncode == 0


def test_the_workers_run_as_their_own_user_not_nginxs(stack):
    workers = stack.pool_workers("fast") | stack.pool_workers("heavy")
    assert workers
    users = {pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name for pid in workers}
    assert users == {"cameo"}
    nginx_workers = subprocess.run(["pgrep", "-u", "www-data", "-f", "nginx: worker"], capture_output=True, text=True).stdout.split()
    assert nginx_workers, "nginx's workers run as www-data"


def test_only_the_workers_reach_clamd(stack):
    clamd = os.path.join(stack.state_dir, "clamav-run", "clamd.sock")
    probe = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'zPING\\0'); print(s.recv(16))"
    refused = as_nginx_user(SYSTEM_PYTHON, "-c", probe, clamd)
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    answered = subprocess.run(["runuser", "-u", "cameo", "--", SYSTEM_PYTHON, "-c", probe, clamd], capture_output=True, text=True, timeout=20)
    assert answered.returncode == 0 and "PONG" in answered.stdout, answered.stderr

"""A Cameo stack as Python sees it: one helper for deploy/bench and both test suites.

`Stack.start(...)` brings a stack up with deploy/dev-stack in a state folder of its own (its
environment passed explicitly, never by changing this process's); `Stack.attach()` is the one
deploy/run-tests started (CAMEO_STATE_DIR, CAMEO_PORT). Either reads the stack's config once
and offers what tests and benchmarks need: URLs, tokens, cameoctl, the database as root over
its socket, the media folders, the worker pools.
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV_STACK = os.path.join(ROOT, "deploy", "dev-stack")


def read_config(path):
    """`key = value` lines of a Cameo config file (comments and blank lines skipped)."""
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def mint_token(secret, user, ttl=3600):
    """An HS256 token for `user`, as the host application's login would mint it."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": user, "exp": int(time.time()) + ttl, "jti": os.urandom(12).hex()}).encode())
    signature = b64(hmac.new(secret.encode(), header + b"." + claims, hashlib.sha256).digest())
    return (header + b"." + claims + b"." + signature).decode()


class Stack:
    def __init__(self, state_dir, port, env):
        self.state_dir = state_dir
        self.port = int(port)
        self.base_url = f"http://127.0.0.1:{self.port}"
        # The environment deploy/dev-stack gets for this stack (CAMEO_STATE_DIR, CAMEO_PORT and
        # any settings it was started with).
        self.env = env
        self.config_path = os.path.join(state_dir, "cameo.conf")
        self.config = read_config(self.config_path)
        self.media_root = self.config["media_root"]
        self.cameoctl = os.path.join(ROOT, ".build", os.environ.get("CAMEO_BUILD", "release"), "cameoctl")

    @classmethod
    def start(cls, port, state_dir=None, **settings):
        """Starts a stack on 127.0.0.1:`port`. `settings` are environment overrides for
        deploy/dev-stack and the stack's config, e.g. CAMEO_SCANNER_MODE="external"."""
        if state_dir is None:
            state_dir = tempfile.mkdtemp(prefix="cameo-stack.")
            os.chmod(state_dir, 0o755)
        env = dict(os.environ, CAMEO_STATE_DIR=state_dir, CAMEO_PORT=str(port), **{k: str(v) for k, v in settings.items()})
        started = subprocess.run([DEV_STACK, "up"], env=env, capture_output=True, text=True)
        if started.returncode != 0:
            raise RuntimeError(f"deploy/dev-stack up failed ({started.returncode}):\n{started.stdout}{started.stderr}")
        return cls(state_dir, port, env)

    @classmethod
    def attach(cls):
        """The stack deploy/run-tests started for this test run."""
        return cls(os.environ["CAMEO_STATE_DIR"], os.environ["CAMEO_PORT"], dict(os.environ))

    def up(self):
        """Starts again whatever of the stack is not running (after a test stopped a part)."""
        subprocess.run([DEV_STACK, "up"], env=self.env, check=True, capture_output=True)

    def stop(self, remove=True):
        subprocess.run([DEV_STACK, "down"], env=self.env, capture_output=True)
        if remove:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def url(self, path):
        return self.base_url + path

    def metrics_url(self):
        """The metrics server's /metrics (metrics.listen: its own port, never the site's)."""
        return f"http://{self.config.get('metrics.listen', '127.0.0.1:9173')}/metrics"

    def ctl(self, *args):
        """Runs cameoctl against this stack's config and settings, as its workers see them;
        returns its standard output."""
        env = dict(self.env, CAMEO_CONFIG=self.config_path)
        return subprocess.run([self.cameoctl, *args], env=env, check=True, capture_output=True, text=True).stdout.strip()

    def token(self, user, ttl=600):
        """A token minted by cameoctl, as the host application would."""
        return self.ctl("token", "--user", user, "--ttl", str(ttl))

    def mint_token(self, user, ttl=3600):
        """The same kind of HS256 token minted here, without a process per token (benchmarks)."""
        return mint_token(self.config["auth.hs256_secret"], user, ttl)

    def presign_key(self):
        key_id, secret = self.config["presign.keys"].split(",")[0].split(":", 1)
        return key_id, secret

    def sql(self, query):
        """Reads (or changes) the database as root over the stack's socket: test inspection only."""
        socket = os.path.join(self.state_dir, "mysql-run", "mysql.sock")
        out = subprocess.run(["mariadb", f"--socket={socket}", "-uroot", "cameo", "-N", "-B", "-e", query],
                             check=True, capture_output=True, text=True).stdout
        return [line.split("\t") for line in out.splitlines()]

    def files_under(self, sub):
        """Every file (and link) under a folder of the media root."""
        found = []
        for dirpath, _, names in os.walk(os.path.join(self.media_root, sub)):
            found += [os.path.join(dirpath, n) for n in names]
        return found

    def pid(self, name):
        """The pid in a pid file of the stack: pool-fast, pool-heavy, scan-retry (run/), or
        clamd (clamav-run/)."""
        path = os.path.join(self.state_dir, "clamav-run", "clamd.pid") if name == "clamd" else os.path.join(self.state_dir, "run", f"{name}.pid")
        with open(path) as f:
            return int(f.read().strip())

    def pool_workers(self, pool):
        """The worker processes of a pool: the children of its multiwatch."""
        out = subprocess.run(["pgrep", "-P", str(self.pid(f"pool-{pool}"))], capture_output=True, text=True).stdout.split()
        return {int(p) for p in out}

    def appended_bytes(self, media_id):
        """The workers' own count of the bytes they wrote into a resumable upload's partial
        file: the sum of `appended=N` over the pool log lines with `media=<id>` (a chunk may land
        on either pool)."""
        total = 0
        for pool in ("fast", "heavy"):
            path = os.path.join(self.state_dir, "log", f"pool-{pool}.log")
            if not os.path.exists(path):
                continue
            with open(path, errors="replace") as f:
                for line in f:
                    tokens = line.split()
                    if f"media={media_id}" in tokens:
                        total += sum(int(token[len("appended="):]) for token in tokens if token.startswith("appended="))
        return total

    def wait_for_appended(self, media_id, expected, seconds=5.0):
        """`appended_bytes` once it reaches `expected` (a worker logs a request as it ends, a
        moment after its answer), or what it is at the deadline."""
        deadline = time.time() + seconds
        while (total := self.appended_bytes(media_id)) < expected and time.time() < deadline:
            time.sleep(0.05)
        return total

    def worker_peak_rss_kb(self, pool):
        """The largest peak resident set (VmHWM) among a pool's workers."""
        peaks = []
        for pid in self.pool_workers(pool):
            with open(f"/proc/{pid}/status") as f:
                peaks += [int(line.split()[1]) for line in f if line.startswith("VmHWM:")]
        return max(peaks, default=0)

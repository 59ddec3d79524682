"""Three gateways sharing one Redis behind a real nginx (Debian's package), driven by the
OpenAI Python SDK: chat, streaming, and a key's rpm limit enforced exactly across the
three while nginx spreads the requests round robin.

nginx runs the documented config, examples/nginx-liter-llm.conf, with only its ports
replaced, inside a minimal main config whose pid, logs and temp paths are in a temp
dir; it listens on a free loopback port and runs unprivileged (as ``nobody`` when the
suite runs as root). scripts/compat.sh installs nginx when it is missing.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import openai
import pytest

from conftest import (
    BIN_DIR,
    MASTER_KEY,
    REPO,
    UPSTREAM_IDS,
    Gateway,
    Mock,
    Process,
    _child_env,
    hello,
    http_json,
)

NGINX_SITE = REPO / "examples" / "nginx-liter-llm.conf"
RPM_KEY = "vk-compat-nginx-rpm-0001"
RPM = 10

CLUSTER_CONFIG = """\
[server]
host = "127.0.0.1"
port = 0

[general]
master_key = "{master}"
max_retries = 0
redis_url = "redis://127.0.0.1:6379"
redis_namespace = "{namespace}"
redis_failure = "fail_closed"

[[models]]
name = "gpt-4o"
provider_model = "openai/gpt-4o-2024-08-06"
base_url = "{base}"
api_key = "sk-upstream"

[[keys]]
key = "{rpm_key}"
rpm = {rpm}
"""

NGINX_MAIN = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;

events {{
    worker_connections 512;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/liter-llm.conf;
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_config(gateway_ports: list[int], listen_port: int) -> str:
    """The documented site config with our ports in place of its examples."""
    text = NGINX_SITE.read_text()
    for example, port in zip(("4001", "4002", "4003"), gateway_ports):
        needle = f"server 127.0.0.1:{example};"
        assert needle in text, f"{NGINX_SITE} no longer lists {needle}"
        text = text.replace(needle, f"server 127.0.0.1:{port};")
    assert "listen 127.0.0.1:8080;" in text
    return text.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{listen_port};")


class Nginx:
    def __init__(self, gateway_ports: list[int]):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).is_file():
            raise RuntimeError("nginx is not installed: run scripts/compat.sh (it installs it)")
        self.dir = Path(tempfile.mkdtemp(prefix="liter-llm-nginx-"))
        argv = [nginx, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(self.dir / "nginx.conf")]
        if os.geteuid() == 0:
            # Unprivileged even under a root test run: the whole of nginx runs as nobody.
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, "nobody")
            argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv]
        for _attempt in range(5):
            self.port = free_port()
            (self.dir / "liter-llm.conf").write_text(site_config(gateway_ports, self.port))
            (self.dir / "nginx.conf").write_text(NGINX_MAIN.format(dir=self.dir))
            if os.geteuid() == 0:
                for name in ("liter-llm.conf", "nginx.conf"):
                    shutil.chown(self.dir / name, "nobody")
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.STDOUT)
            if self._ready():
                self.url = f"http://127.0.0.1:{self.port}"
                return
            self.stop()
        raise RuntimeError(f"nginx did not start:\n{self.errors()}")

    def _ready(self) -> bool:
        """Waits (bounded) until nginx passes a request through to a gateway."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, _, _ = http_json("GET", f"http://127.0.0.1:{self.port}/health")
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def errors(self) -> str:
        log = self.dir / "error.log"
        return log.read_text() if log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    def __init__(self, gateways: list[Gateway], nginx: Nginx):
        self.gateways = gateways
        self.nginx = nginx
        self.base_url = nginx.url + "/v1"

    def client(self, key: str = MASTER_KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0, timeout=20.0)

    def served_by(self, request_id: str) -> int:
        """Which gateway logged the request (waiting, bounded, for its log line)."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for i, gw in enumerate(self.gateways):
                if any(f'request_id="{request_id}"' in line for line in list(gw.process.lines)):
                    return i
            time.sleep(0.01)
        raise AssertionError(f"no gateway logged request {request_id}")


@pytest.fixture(scope="module")
def cluster(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    namespace = f"compat-nginx-{uuid.uuid4().hex[:12]}"
    gateways: list[Gateway] = []
    nginx = None
    try:
        for i in range(3):
            config = tmp_path_factory.mktemp(f"nginx-gw{i}") / "liter-llm-proxy.toml"
            config.write_text(CLUSTER_CONFIG.format(
                master=MASTER_KEY, namespace=namespace, base=mock.base_url, rpm_key=RPM_KEY, rpm=RPM,
            ))
            proc = Process(f"liter-llm-{i}", [str(BIN_DIR / "liter-llm"), "api", "--config", str(config)],
                           env=_child_env())
            gateways.append(Gateway(proc, config))
        ports = [int(gw.url.rsplit(":", 1)[1]) for gw in gateways]
        nginx = Nginx(ports)
        yield Cluster(gateways, nginx)
    finally:
        if nginx is not None:
            nginx.stop()
            shutil.rmtree(nginx.dir, ignore_errors=True)
        for gw in gateways:
            gw.process.stop()


def test_chat_goes_round_robin_over_the_three_gateways(cluster: Cluster, mock: Mock):
    served = []
    with cluster.client() as client:
        for i in range(6):
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=hello(f"hello number {i}"))
            answer = raw.parse()
            assert answer.choices[0].message.content == f"echo: hello number {i}"
            assert answer.model == UPSTREAM_IDS["gpt-4o"]
            served.append(cluster.served_by(raw.headers["x-request-id"]))
    assert sorted(set(served)) == [0, 1, 2], f"nginx spread the requests as {served}"
    assert len(mock.requests()) == 6


def test_streaming_passes_through_nginx_event_by_event(cluster: Cluster, mock: Mock):
    with cluster.client() as client:
        for _ in range(3):
            stream = client.chat.completions.create(
                model="gpt-4o", messages=hello("one two three four"), stream=True,
                stream_options={"include_usage": True})
            chunks = list(stream)
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == "echo: one two three four"
            assert chunks[-1].usage is not None
            assert chunks[-1].usage.completion_tokens == 5
            assert len(chunks) > 3, "the stream came as several events"


def test_a_keys_rpm_holds_exactly_across_the_three_gateways(cluster: Cluster, mock: Mock):
    def one(_: int) -> str:
        with cluster.client(RPM_KEY) as client:
            try:
                client.chat.completions.create(model="gpt-4o", messages=hello())
                return "ok"
            except openai.RateLimitError as e:
                assert e.status_code == 429
                assert e.response.headers["x-ratelimit-limit-requests"] == str(RPM)
                return "limited"

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(one, range(3 * RPM)))
    assert outcomes.count("ok") == RPM, outcomes
    assert outcomes.count("limited") == 2 * RPM
    assert len(mock.requests()) == RPM, "a refused request never reached the provider"

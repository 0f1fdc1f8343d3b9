"""docs/nginx.conf: what it must say, that nginx accepts it (``nginx -t``), and the desk behind it
for real: http:// redirected, logins over HTTPS with Secure cookies (HELPDESK_PROXY_FIX=1), and a
client that names its own X-Forwarded-For still throttled as the address nginx saw."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.live import free_port
from tests.procs import Cluster, redis_available

ROOT = Path(__file__).resolve().parents[2]
CONF = (ROOT / "docs" / "nginx.conf").read_text()


def block(text: str, head: str) -> str:
    """The body of the first ``head { ... }`` block (nested blocks included)."""
    match = re.search(rf"(?m)^\s*{re.escape(head)}\s*\{{", text)
    assert match, f"no {head} block"
    depth, start = 1, match.end()
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    raise AssertionError(f"{head} block not closed")


def servers(text: str) -> list[str]:
    found, rest = [], text
    while re.search(r"(?m)^\s*server\s*\{", rest):
        body = block(rest, "server")
        found.append(body)
        rest = rest[rest.index(body) + len(body):]
    return found


def directives(body: str) -> list[str]:
    """One line per directive, comments dropped and spaces squeezed."""
    lines = (re.sub(r"#.*", "", line).strip() for line in body.splitlines())
    return [re.sub(r"\s+", " ", line) for line in lines if line]


def test_upstream_keepalive_speaks_http11_without_connection_close():
    root = directives(block(CONF, "location /"))
    assert "keepalive 32;" in directives(block(CONF, "upstream helpdesk"))
    assert "proxy_http_version 1.1;" in root and 'proxy_set_header Connection "";' in root


def test_both_locations_pass_the_forwarded_headers_the_desk_trusts():
    for location in ("location /", "location /socket.io"):
        lines = directives(block(CONF, location))
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in lines, location
        assert "proxy_set_header X-Forwarded-Proto $scheme;" in lines, location


def test_http2_is_switched_on_by_its_own_directive_and_http_redirects_to_https():
    assert not re.search(r"(?m)^\s*listen [^;#]*\bhttp2\b", CONF), "the deprecated listen ... http2 form"
    plain, tls = servers(CONF)
    assert "listen 80;" in directives(plain) and "return 301 https://$host$request_uri;" in directives(plain)
    assert "listen 443 ssl;" in directives(tls) and "http2 on;" in directives(tls)


# ---- nginx itself --------------------------------------------------------------------------------

def nginx_version() -> tuple[int, ...]:
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=True).stderr
    return tuple(int(n) for n in re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out).groups())


@pytest.fixture
def nginx_dir():
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    # Not under pytest's 0700 tmp tree: nginx's workers run as another user when we are root.
    path = Path(tempfile.mkdtemp(prefix="helpdesk-nginx-"))
    os.chmod(path, 0o755)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(path / "desk.key"),
                    "-out", str(path / "desk.pem"), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def nginx_config(path: Path, https_port: int = 443, http_port: int = 80, upstream_port: int = 8001) -> Path:
    """docs/nginx.conf inside the http {} block of a whole nginx.conf, on the given ports."""
    conf = CONF.replace("/etc/ssl/", f"{path}/").replace("server 127.0.0.1:8002;\n", "")
    conf = conf.replace("server 127.0.0.1:8001;", f"server 127.0.0.1:{upstream_port};")
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    tls = f"listen 127.0.0.1:{https_port} ssl"
    conf = conf.replace("listen 443 ssl", tls)
    if nginx_version() < (1, 25, 1):  # before "http2 on;" existed
        conf = conf.replace("http2 on;", "").replace(tls + ";", tls + " http2;")
    temp = " ".join(f"{kind}_temp_path {path}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                       "scgi"))
    whole = path / "nginx.conf"
    whole.write_text(f"{'user root;' if os.geteuid() == 0 else ''}\nworker_processes 1;\npid {path}/nginx.pid;\n"
                     f"error_log {path}/error.log;\nevents {{ worker_connections 64; }}\n"
                     f"http {{\naccess_log off;\n{temp}\n{conf}\n}}\n")
    return whole


def test_nginx_accepts_the_configuration(nginx_dir):
    whole = nginx_config(nginx_dir)
    out = subprocess.run(["nginx", "-t", "-c", str(whole), "-p", str(nginx_dir)], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "syntax is ok" in out.stderr


def _wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing on port {port}")


@pytest.mark.slow
@pytest.mark.redis
def test_the_desk_behind_nginx(nginx_dir, tmp_path):
    if not redis_available():
        pytest.skip("needs Redis")
    # PUBLIC_URL stays at its http default: the scheme nginx saw is what makes the cookies Secure.
    with Cluster(tmp_path, sqlite=True, PROXY_FIX="1", RATELIMIT_ENABLED="true") as cluster:
        cluster.setup()
        web = cluster.start_web()
        https_port, http_port = free_port(), free_port()
        whole = nginx_config(nginx_dir, https_port, http_port, int(web.rsplit(":", 1)[1]))
        nginx = subprocess.Popen(["nginx", "-c", str(whole), "-p", str(nginx_dir), "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_port(https_port)
            plain = requests.get(f"http://127.0.0.1:{http_port}/login?x=1", allow_redirects=False, timeout=10)
            assert plain.status_code == 301 and plain.headers["Location"] == "https://127.0.0.1/login?x=1"

            desk = f"https://127.0.0.1:{https_port}"
            browser = requests.Session()
            ca = str(nginx_dir / "desk.pem")  # per request: a session's verify loses to REQUESTS_CA_BUNDLE
            browser.headers["Referer"] = desk + "/login"  # as a browser sends it from the login page

            def log_in(password: str, **headers) -> requests.Response:
                page = browser.get(desk + "/login", timeout=10, verify=ca).text
                token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
                return browser.post(desk + "/login", allow_redirects=False, timeout=10, headers=headers, verify=ca,
                                    data={"email": "e2e@example.com", "password": password, "csrf_token": token,
                                          "remember": "y"})

            ok = log_in("e2e-password")
            assert ok.status_code == 302, ok.text[:300]
            cookies = {c.name: c for c in browser.cookies}
            assert cookies["session"].secure and cookies["remember_token"].secure
            browser.cookies.clear()
            # nginx appends the address it saw; the desk takes that one, not what the client wrote.
            codes = [log_in("wrong password", **{"X-Forwarded-For": f"192.0.2.{i}"}).status_code
                     for i in range(11)]
            assert codes == [401] * 10 + [429]
        finally:
            nginx.terminate()
            nginx.wait(10)


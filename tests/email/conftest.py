"""Real mail servers for the email tests: aiosmtpd (SMTP) and Dovecot (IMAP).

Dovecot is Debian's dovecot-imapd, started per test session with a generated
config in a temp dir (passwd-file auth, maildirs in tmp, a self-signed
certificate for IMAPS/STARTTLS), as root or as an ordinary user. CI installs it
(.ci/test); a missing server fails there and as root, and skips with the reason
only on an unprivileged developer machine.
"""

from __future__ import annotations

import grp
import imaplib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests import factories as f
from tests.live import free_port, smtp_sink

_users = itertools.count(1)


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


# ------------------------------------------------------------------ TLS


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1/localhost, used as its own CA by clients."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True)
    return cert, key


# ------------------------------------------------------------------ SMTP (aiosmtpd)


@pytest.fixture
def smtp_server():
    """A plain aiosmtpd server on a free port: (sink, settings for an inbox)."""
    with smtp_sink() as (sink, port):
        yield sink, {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "plain", "smtp_timeout": 5}


# ------------------------------------------------------------------ IMAP (Dovecot)


class Dovecot:
    def __init__(self, root: Path, cert: Path, key: Path):
        self.root = root
        self.port = free_port()
        self.tls_port = free_port()
        self.passwd = root / "passwd"
        # All users up front: Dovecot notices passwd-file changes only by mtime (seconds).
        self.passwd.write_text("".join(f"support{n}@example.jp:{{PLAIN}}imap-pass\n" for n in range(1, 201)))
        (root / "mail").mkdir()
        (root / "run").mkdir()
        (root / "state").mkdir()
        if os.geteuid() == 0:
            user, group, chroot = "dovecot", "dovecot", ""
            shutil.chown(root / "mail", user, group)
        else:  # an unprivileged Dovecot runs everything as us, without chroots
            user, group = pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
            chroot = "  chroot =\n"
        os.chmod(root, 0o755)
        for p in (cert, key):
            os.chmod(p, 0o644)
        self.config = root / "dovecot.conf"
        self.config.write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
# no penalty delays after the wrong-password test
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {"dovenull" if user == "dovecot" else user}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd}
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
{chroot}}}
service anvil {{
{chroot}}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol imap {{
  mail_max_userip_connections = 1000
}}
""")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(self.config)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        try:
            _wait_port(self.port)
            _wait_port(self.tls_port)
        except RuntimeError:
            self.stop()
            log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
            raise RuntimeError(f"dovecot did not start: {log}")

    def add_user(self) -> tuple[str, str]:
        return f"support{next(_users)}@example.jp", "imap-pass"

    def client(self, user: str, password: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=5)
        try:
            imap.login(user, password)
        except Exception:
            imap.shutdown()
            raise
        return imap

    def append(self, user: str, password: str, raw: bytes, folder: str = "INBOX", flags: str | None = None) -> None:
        imap = self.client(user, password)
        try:
            typ, data = imap.append(folder, flags, None, raw)
            assert typ == "OK", data
        finally:
            imap.logout()

    def uids(self, user: str, password: str, folder: str = "INBOX", criteria: str = "ALL") -> list[bytes]:
        imap = self.client(user, password)
        try:
            typ, _ = imap.select(f'"{folder}"')
            if typ != "OK":
                return []
            typ, data = imap.uid("SEARCH", *criteria.split())
            return data[0].split()
        finally:
            imap.logout()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture(scope="session")
def dovecot_server(tmp_path_factory, tls_cert):
    if shutil.which("dovecot") is None:
        # CI and root runs install it (.ci/test), so there a missing server is a failure;
        # only a developer's unprivileged machine without the package skips.
        if os.environ.get("CI") or os.geteuid() == 0:
            pytest.fail("dovecot is not installed: apt-get install -y dovecot-imapd (see .ci/test)")
        pytest.skip("Dovecot missing: apt-get install dovecot-imapd to run the IMAP tests")
    # Not under pytest's tmp tree: its 0700 parents keep Dovecot's unprivileged
    # processes (user dovecot) out.
    root = Path(tempfile.mkdtemp(prefix="helpdesk-dovecot-"))
    try:
        server = Dovecot(root, *tls_cert)
        yield server
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mailbox(dovecot_server):
    """A fresh IMAP user: (server, user, password, inbox settings/secrets for it)."""
    user, password = dovecot_server.add_user()
    settings = {"address": user, "imap_host": "127.0.0.1", "imap_port": dovecot_server.port,
                "imap_security": "plain", "imap_user": user, "imap_timeout": 5}
    return dovecot_server, user, password, settings, {"imap_password": password}


def email_inbox(settings: dict | None = None, secrets: dict | None = None, **kw):
    base = {"address": "support@example.jp", "from_address": "support@example.jp", "from_name": "サポート窓口"}
    base.update(settings or {})
    return f.inbox(kind="email", settings=base, secrets=secrets or {}, **kw)


@pytest.fixture
def listener(app):
    """The desk's SMTP listener (aiosmtpd) on a free port; yields the port."""
    from helpdesk.services.mailbox import smtp_controller

    port = free_port()
    controller = smtp_controller(app, port=port, max_bytes=200_000)
    controller.start()
    yield port
    controller.stop()

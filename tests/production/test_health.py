"""/healthz when PostgreSQL does not answer at all: a server that accepts the connection and then
says nothing (hung, or a route that drops packets) must be reported down within the connect
timeout, not hold the probe and every request's thread for ever."""

from __future__ import annotations

import socket
import threading
import time

from tests.conftest import make_app


class SilentServer:
    """Accepts TCP connections on a port and never sends a byte."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self):
        self._stop = True
        time.sleep(0.3)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def test_a_silent_database_is_reported_down_within_the_connect_timeout(tmp_path):
    server = SilentServer()
    try:
        app = make_app(f"postgresql://helpdesk@127.0.0.1:{server.port}/helpdesk", tmp_path,
                       DATABASE_CONNECT_TIMEOUT=2)
        answer: dict = {}

        def probe():
            started = time.monotonic()
            resp = app.test_client().get("/healthz")
            answer.update(status=resp.status_code, body=resp.get_json(), took=time.monotonic() - started)

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(15)
        assert answer, "/healthz still waiting on the database after 15 s"
        assert answer["status"] == 503 and answer["body"]["checks"]["database"] == "down", answer
        assert answer["took"] < 6, answer
        assert server.accepted, "the probe never reached the silent server"
    finally:
        server.close()

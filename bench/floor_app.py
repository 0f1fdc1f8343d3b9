"""The floor for bench/ingest.py: a bare Flask-SocketIO app whose POST emits the
body to every connected client, with no database, no auth and no work."""

from __future__ import annotations

import sys

from flask import Flask, request
from flask_socketio import SocketIO

app = Flask(__name__)
socketio = SocketIO(app, async_mode="threading")


@app.get("/healthz")
def health():
    return "ok"


@app.post("/emit")
def emit():
    socketio.emit("message.created", request.get_json(), namespace="/agent")
    return {"ok": True}, 201


@socketio.on("connect", namespace="/agent")
def connect(auth=None):
    return True


if __name__ == "__main__":
    socketio.run(app, port=int(sys.argv[1]), allow_unsafe_werkzeug=True, log_output=False)

"""The floors for bench/ingest.py, on the same server as the desk (Flask-SocketIO's
threading mode under gunicorn's gthread worker, as ``flask serve`` runs it):

* ``/emit``: a bare Flask-SocketIO app whose POST emits the body to every connected
  client, with no database, no auth and no work;
* ``/emit-stored``: the same after one Flask-SQLAlchemy row insert and commit in a
  SQLite WAL file: the least any desk that keeps what it shows can do.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
import threading

from flask import Flask, request
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event

app = Flask(__name__)
_tmp = tempfile.mkdtemp(prefix="hd-floor-")
atexit.register(shutil.rmtree, _tmp, ignore_errors=True)  # gunicorn's master exits normally on SIGTERM
app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{_tmp}/floor.db"
db = SQLAlchemy(app)
socketio = SocketIO(app, async_mode="threading")
_write_lock = threading.Lock()  # one SQLite writer at a time, as the desk does (no busy-wait sleeps)


class Row(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    body = db.Column(db.Text)


with app.app_context():
    @event.listens_for(db.engine, "connect")
    def _wal(dbapi_conn, _record):
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")
        dbapi_conn.execute("PRAGMA busy_timeout=10000")

    db.create_all()


@app.get("/healthz")
def health():
    return "ok"


@app.post("/emit")
def emit():
    socketio.emit("message.created", request.get_json(), namespace="/agent")
    return {"ok": True}, 201


@app.post("/emit-stored")
def emit_stored():
    payload = request.get_json()
    row = Row(body=payload["body"])
    with _write_lock:
        db.session.add(row)
        db.session.commit()
    socketio.emit("message.created", {"id": row.id, **payload}, namespace="/agent")
    return {"ok": True}, 201


@socketio.on("connect", namespace="/agent")
def connect(auth=None):
    return True


if __name__ == "__main__":
    from helpdesk.server import GunicornApp  # the desk's own server settings

    GunicornApp(app, bind=f"127.0.0.1:{sys.argv[1]}").run()

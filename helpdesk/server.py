"""``flask serve``: the embedded setup's web server."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from .extensions import db


class EmbeddedServer(BaseApplication):
    """The app under gunicorn's threaded worker, the server the production setup runs
    (README), as one worker process (and its master): Socket.IO's websockets each hold a thread, and the
    in-process jobs run beside them. Werkzeug's development server is not for this."""

    def __init__(self, app, bind: str, threads: int = 100):
        self.app = app
        self.options = {
            "bind": bind, "workers": 1, "worker_class": "gthread", "threads": threads,
            # Open websockets never finish on their own: don't wait long for them on stop.
            "graceful_timeout": 3, "accesslog": None, "loglevel": "warning",
            "post_fork": self._post_fork, "post_worker_init": self._start_jobs,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.app

    def _post_fork(self, server, worker) -> None:
        with self.app.app_context():
            db.engine.dispose(close=False)  # the parent's connections stay the parent's

    def _start_jobs(self, worker) -> None:
        from .jobs import jobs

        if self.app.config["JOBS"] == "rq":
            return
        with self.app.app_context():
            jobs.enqueue("label_sentiment")  # anything left pending by the last run
            jobs.enqueue("poll_email")  # self-rescheduling IMAP polling (services/mailbox.py)

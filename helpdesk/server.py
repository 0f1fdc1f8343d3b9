"""``flask serve``: the embedded setup's web server."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from .extensions import db

# One worker process (and its master) with 100 threads: Socket.IO's websockets each hold a
# thread while an agent's page is open. Open websockets never finish on their own, so a
# stop does not wait long for them.
OPTIONS = {"workers": 1, "worker_class": "gthread", "threads": 100, "graceful_timeout": 3,
           "accesslog": None, "loglevel": "warning"}


class GunicornApp(BaseApplication):
    """A WSGI app under gunicorn, configured in code (``OPTIONS`` plus the given settings)."""

    def __init__(self, app, **settings):
        self.app = app
        self.options = {**OPTIONS, **settings}
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.app


class EmbeddedServer(GunicornApp):
    """The desk under gunicorn's threaded worker, the server the production setup runs
    (README), with the in-process jobs beside the requests. Werkzeug's development server
    is not for this."""

    def __init__(self, app, bind: str):
        super().__init__(app, bind=bind, post_fork=self._post_fork, post_worker_init=self._start_jobs)

    def _post_fork(self, server, worker) -> None:
        with self.app.app_context():
            db.engine.dispose(close=False)  # the parent's connections stay the parent's

    def _start_jobs(self, worker) -> None:
        from .jobs import jobs
        from .tasks import requeue_pending_sends

        if self.app.config["JOBS"] == "rq":
            return  # `flask worker` processes label, send, poll email and sweep (cli.worker)
        with self.app.app_context():
            jobs.enqueue("label_sentiment")  # anything left pending by the last run
            # Replies the last run stored but did not send: their jobs (a retry waiting out its
            # backoff, a send in flight at SIGTERM) lived in its memory, and there is no sweep.
            requeue_pending_sends()
            db.session.remove()
            jobs.enqueue("poll_email")  # self-rescheduling IMAP polling (services/mailbox.py)

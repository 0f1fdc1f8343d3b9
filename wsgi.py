"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi run``."""

import gc

from helpdesk import create_app

app = create_app()
# What is loaded so far lives as long as the process: out of the cyclic collector's
# reach, so that its full passes, which hold the GIL, need not walk it (docs/performance.md).
gc.freeze()

"""A customer's website for browser tests: plain HTML from a tiny http.server on its
own port and host name (localhost vs the desk's 127.0.0.1), so the widget runs as
a real third-party embed, under a strict CSP and hostile CSS."""

from __future__ import annotations

import html
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.live import free_port


def host_page(desk_url: str, inbox_key: str, lang: str = "ja", **attrs: str) -> str:
    extra = "".join(f' data-{k.replace("_", "-")}="{html.escape(v)}"' for k, v in attrs.items())
    return f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'self'; script-src {desk_url}; frame-src {desk_url}; style-src 'unsafe-inline'">
<title>テストショップ</title>
<style>
  /* A host page that would wreck an un-isolated widget. */
  * {{ font-size: 40px !important; color: red !important; }}
  button {{ display: none !important; }}
  iframe {{ opacity: .1; width: 5px; height: 5px; }}
</style>
</head>
<body>
<h1>テストショップ</h1>
<p>商品ページ</p>
<script src="{desk_url}/widget.js" data-inbox="{inbox_key}"{extra} async></script>
</body>
</html>"""


@contextmanager
def host_site(pages: dict[str, str]):
    """Serve ``pages`` (path -> HTML) at http://localhost:<port>."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            body = pages.get(self.path.split("?")[0])
            if body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

"""A WSGI app (served by gunicorn in the lab) that rejects uploads the way many APIs do: it looks
at Content-Length, takes its time (a slow auth or quota check), answers 413 and never reads the
body. With a large upload the receive buffer fills first, so the client sees a zero window."""
import time


def app(environ, start_response):
    if int(environ.get("CONTENT_LENGTH") or 0) > 65536:
        time.sleep(1.5)
        body = b"request body too large\n"
        start_response("413 Payload Too Large", [("Content-Length", str(len(body))), ("Connection", "close")])
        return [body]
    start_response("200 OK", [("Content-Length", "3")])
    return [b"ok\n"]

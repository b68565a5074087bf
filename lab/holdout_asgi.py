"""A minimal ASGI app for uvicorn in the holdout lab: every request gets a small HTML page."""

PAGE = b"<html><body>hello from uvicorn</body></html>\n" * 20


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html"), (b"content-length", str(len(PAGE)).encode())]})
    await send({"type": "http.response.body", "body": PAGE})

"""Running the review application: where it listens, its access token, uvicorn."""

from __future__ import annotations

import secrets

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
LOCAL_HOST_HEADERS = ("127.0.0.1", "localhost", "[::1]")


def needs_token(host: str) -> bool:
    """A server reachable from other machines (any host but the loopback) requires an access token."""
    return host not in LOCAL_HOSTS


def allowed_hosts(host: str) -> tuple[str, ...] | None:
    """The Host headers a server bound to ``host`` answers: its loopback names on localhost (a defence
    against DNS rebinding), any beyond it (the token guards those)."""
    return None if needs_token(host) else LOCAL_HOST_HEADERS


def new_token() -> str:
    """A fresh random access token (URL-safe, 32 bytes of entropy)."""
    return secrets.token_urlsafe(32)


def review_url(host: str, port: int, token: str | None) -> str:
    """The URL a reviewer opens (with ``?token=`` when the server needs one)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/queue" + (f"?token={token}" if token else "")


def serve(app, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve ``app`` with uvicorn until interrupted (one process; writes are serialised in it)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)

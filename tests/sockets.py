"""One process-wide audit hook that records socket lookups and connections while watched.

Audit hooks cannot be removed, so a single hook is installed on import and records only
inside `watch_sockets()`.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

LOOPBACK = ("localhost", "127.0.0.1", "::1", "None")
_events: list[tuple[str, str]] | None = None


def _hook(event: str, args: tuple) -> None:
    if _events is None:
        return
    if event == "socket.getaddrinfo":
        host = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
        _events.append(("getaddrinfo", host))
    elif event == "socket.connect":
        address = args[1]
        _events.append(("connect", str(address[0] if isinstance(address, tuple) else address)))


sys.addaudithook(_hook)


@contextmanager
def watch_sockets() -> Iterator[list[tuple[str, str]]]:
    """Record every (event, host) of socket.getaddrinfo / socket.connect inside the block."""
    global _events
    _events = []
    try:
        yield _events
    finally:
        _events = None


def beyond_loopback(events: list[tuple[str, str]]) -> list[str]:
    """The events that reach past this machine (not loopback, not a Unix socket path)."""
    return [
        f"{event} {host}"
        for event, host in events
        if not (host in LOOPBACK or host.startswith("127.") or "/" in host)
    ]

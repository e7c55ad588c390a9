"""The clients of bench/propagation.py: one process, N raw sockets, each holding one long poll.

    python -m bench.poll_clients PORT PATH AUTHORIZATION ETAG COUNT

Opens COUNT connections, sends ``GET PATH?wait=60`` with ``If-None-Match: ETAG`` on each, prints ``ready``,
and waits for a line on stdin. Then it reads every answer with epoll and prints one JSON line:
``{"results": [[time received, status, revision], …], "errors": [...]}``, where the time is the wall-clock time
(``time.time()``) at which the last byte of that answer arrived. Reading costs one ``recv`` per answer and
nothing else until every answer is in (parsing comes after), so that the client adds as little as possible
to what it measures. No Django here: this process is only a client.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time

DEADLINE_SECONDS = 120.0


def _request(path: str, authorization: str, etag: str) -> bytes:
    return (
        f"GET {path}?wait=60 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n"
        f"If-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    ).encode()


def _parse(data: bytes) -> tuple[int, int | None]:
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        revision = json.loads(body)["revision"] if status == 200 else None
    except ValueError:
        raise ValueError(data[:600]) from None
    return status, revision


def main(argv: list[str]) -> None:
    port, path, authorization, etag, count = argv[0], argv[1], argv[2], argv[3], int(argv[4])
    request = _request(path, authorization, etag)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", int(port)))
        sock.sendall(request)
        sock.setblocking(False)
        sockets.append(sock)
    print("ready", flush=True)
    sys.stdin.readline()

    poller = select.epoll(sizehint=count)
    by_fd = {}
    for index, sock in enumerate(sockets):
        poller.register(sock.fileno(), select.EPOLLIN)
        by_fd[sock.fileno()] = index
    chunks: list[list[bytes]] = [[] for _ in sockets]
    last = [0.0] * count
    errors = []
    open_count = count
    deadline = time.monotonic() + DEADLINE_SECONDS
    while open_count and time.monotonic() < deadline:
        for fd, _ in poller.poll(1.0):
            index = by_fd[fd]
            try:
                data = sockets[index].recv(65536)
            except ConnectionError as exc:
                errors.append(f"connection {index}: {exc}")
                data = b""
            if data:
                chunks[index].append(data)
                last[index] = time.time()
                continue
            poller.unregister(fd)
            sockets[index].close()
            open_count -= 1
    results = []
    for index in range(count):
        if not chunks[index]:
            errors.append(f"connection {index}: closed or timed out with no answer")
            continue
        status, revision = _parse(b"".join(chunks[index]))
        results.append([last[index], status, revision])
    print(json.dumps({"results": results, "errors": errors[:20], "error_count": len(errors)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""The clients of bench/memory.sh: hold N connections to a gateway open while it is measured.

    memory_clients.py streams HOST PORT N   # N streaming chat requests, held open upstream
    memory_clients.py conns HOST PORT N     # N keep-alive connections, one answered request each

Both print `ready N` on stdout once every connection has got what it waits for (the first
SSE event of its stream; its whole answer), then:

- streams: read every stream to its `data: [DONE]` (the script releases the mock's held
  streams), print `done N` and exit; a stream that fails or ends early is an error;
- conns: keep the connections open until the process is terminated.

Plain asyncio sockets and HTTP/1.1, no dependencies. Exits 1 with a message on stderr when a
request fails, so the script does not report a figure measured on fewer connections.
"""

from __future__ import annotations

import asyncio
import signal
import sys

KEY = "sk-bench-master"
CONNECT_AT_ONCE = 200  # connects in flight at once, below the listen backlog


def request(host: str, port: int, stream: bool) -> bytes:
    body = (
        '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}]'
        + (',"stream":true}' if stream else "}")
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def open_conn(host: str, port: int, gate: asyncio.Semaphore):
    async with gate:
        return await asyncio.open_connection(host, port)


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_until(reader: asyncio.StreamReader, seen: bytes, marker: bytes) -> bytes:
    while marker not in seen:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError(f"connection closed before {marker!r}")
        seen += data
    return seen


async def one_stream(host, port, gate, opened: list, all_open: asyncio.Event, n: int):
    reader, writer = await open_conn(host, port, gate)
    writer.write(request(host, port, stream=True))
    status, _ = await read_head(reader)
    if status != 200:
        raise RuntimeError(f"stream answered {status}")
    seen = await read_until(reader, b"", b"data: ")
    opened.append(1)
    if len(opened) == n:
        all_open.set()
    await read_until(reader, seen, b"data: [DONE]")
    writer.close()


async def one_conn(host, port, gate, writers: list):
    reader, writer = await open_conn(host, port, gate)
    writer.write(request(host, port, stream=False))
    status, headers = await read_head(reader)
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    else:
        await read_until(reader, b"", b"\r\n0\r\n\r\n")
    if status != 200:
        raise RuntimeError(f"request answered {status}")
    writers.append(writer)


async def streams(host: str, port: int, n: int) -> None:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    opened: list = []
    all_open = asyncio.Event()
    tasks = [asyncio.create_task(one_stream(host, port, gate, opened, all_open, n)) for _ in range(n)]
    ready = asyncio.create_task(all_open.wait())
    # Every stream open, or one ended early (its failure is raised by gather below).
    await asyncio.wait([ready, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if not all_open.is_set():
        for task in tasks:
            if task.done() and task.exception():
                raise task.exception()
        raise RuntimeError("a stream ended before every stream was open")
    print(f"ready {n}", flush=True)
    await asyncio.gather(*tasks)
    print(f"done {n}", flush=True)


async def conns(host: str, port: int, n: int) -> None:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    writers: list = []
    await asyncio.gather(*(one_conn(host, port, gate, writers) for _ in range(n)))
    print(f"ready {len(writers)}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for writer in writers:
        writer.close()


def main() -> int:
    if len(sys.argv) != 5 or sys.argv[1] not in ("streams", "conns"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    try:
        asyncio.run((streams if mode == "streams" else conns)(host, port, n))
    except Exception as err:  # one failed connection fails the scenario
        print(f"memory_clients {mode}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

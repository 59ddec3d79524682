#!/usr/bin/env python3
"""Soak test: does anything grow in a gateway that runs for a long time under mixed traffic?

Starts the mock upstream and a `liter-llm` gateway (release binaries by default), pushes
hostile behaviours into the mock for some models, then runs cycles of mixed traffic:
chat, streams, embeddings, upstream errors, client disconnects mid-stream, slow and
stalling upstreams, and once per cycle a peak of concurrent open streams. Every second
it samples the gateway's RSS, open file descriptors, threads and (from readiness) its
tokio tasks. At the end it stops the traffic, waits for the gateway to settle and
compares with the idle counts before the traffic.

Goal: nothing grows after warm-up: RSS growth under 1 MB per 10 minutes (fitted over
the samples taken at the same point of every cycle after the first), descriptors and
tasks back to their idle counts. Built with the `heap-stats` feature, the gateway also
reports its live heap bytes, sampled the same way: RSS that grows while the live heap does
not is memory the allocator keeps, not a leak. The report (markdown) and, when matplotlib is
installed, a PNG plot go to bench/results/.

    cargo build --release -p liter-llm-cli --features heap-stats -p mock-upstream
    python3 bench/soak.py                      # 30 minutes, 1,000 streams at the peak
    SOAK_SECONDS=60 SOAK_PEAK=200 python3 bench/soak.py   # the short form

Needs httpx (installed in .venv by scripts/compat.sh). Sends traffic to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("SOAK_BIN_DIR", ROOT / "target" / "release"))
SECONDS = int(os.environ.get("SOAK_SECONDS", "1800"))
CYCLE = int(os.environ.get("SOAK_CYCLE", "60"))
PEAK = int(os.environ.get("SOAK_PEAK", "1000"))
WORKERS = int(os.environ.get("SOAK_WORKERS", "24"))
LABEL = os.environ.get("SOAK_LABEL", "soak")
# After the traffic: longer than twice the upstream pool idle timeout (90 s; the pool
# checks every 90 s for connections idle longer than that), so its
# pooled keep-alive connections to the mock have closed when the final sample is taken.
SETTLE = int(os.environ.get("SOAK_SETTLE", "200"))
MASTER = "sk-soak-master"
LISTENING = re.compile(r"listening on (http://[0-9.:]+)")

CONFIG = """
[server]
host = "127.0.0.1"
port = 0
request_timeout_secs = 30

[general]
master_key = "{master}"
max_retries = 0

[[models]]
name = "chat"
provider_model = "openai/ok-model"
api_key = "sk-upstream"
base_url = "{mock}"

[[models]]
name = "broken"
provider_model = "openai/broken-model"
api_key = "sk-upstream"
base_url = "{mock}"

[[models]]
name = "slow"
provider_model = "openai/slow-model"
api_key = "sk-upstream"
base_url = "{mock}"

[[models]]
name = "stall"
provider_model = "openai/stall-model"
api_key = "sk-upstream"
base_url = "{mock}"
timeout_secs = 2

[[models]]
name = "cut"
provider_model = "openai/cut-model"
api_key = "sk-upstream"
base_url = "{mock}"

[[models]]
name = "held"
provider_model = "openai/held-model"
api_key = "sk-upstream"
base_url = "{mock}"
"""

# Behaviours of the mock for the models above, forever.
FAULTS = [
    ({"type": "status", "status": 500}, "broken-model"),
    ({"type": "delay", "ms": 1500}, "slow-model"),
    ({"type": "stall_stream", "after_chunks": 1}, "stall-model"),
    ({"type": "cut_stream", "after_chunks": 2}, "cut-model"),
    ({"type": "delay", "ms": 3000}, "held-model"),
]


def start(argv: list[str], cwd: Path) -> tuple[subprocess.Popen, str]:
    """A process and the URL from its 'listening on' line."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 30
    assert proc.stdout is not None
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = LISTENING.search(line)
        if m:
            # Keep draining its output so it never blocks on a full pipe.
            asyncio.get_event_loop().run_in_executor(None, lambda: [None for _ in proc.stdout])
            return proc, m.group(1)
    proc.kill()
    raise SystemExit(f"{argv[0]} did not start")


def sample(pid: int, ready: dict) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    field = lambda name: int(re.search(rf"^{name}:\s+(\d+)", status, re.M).group(1))  # noqa: E731
    return {
        "t": time.time(),
        "rss_kb": field("VmRSS"),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": field("Threads"),
        "tasks": ready.get("tasks"),
        # Live heap bytes: only from a binary built with the heap-stats feature.
        "heap": ready.get("heap_bytes"),
    }


def body(model: str, stream: bool = False) -> dict:
    words = " ".join(random.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(8))
    return {"model": model, "stream": stream, "max_tokens": 16,
            "messages": [{"role": "user", "content": words}]}


async def one(client: httpx.AsyncClient, url: str, counts: dict) -> None:
    """One request of the steady mix."""
    kind = random.choices(
        ["chat", "stream", "embed", "error", "disconnect", "slow", "stall", "cut"],
        weights=[30, 25, 10, 10, 10, 5, 5, 5])[0]
    headers = {"Authorization": f"Bearer {MASTER}"}
    try:
        if kind == "embed":
            r = await client.post(f"{url}/v1/embeddings", headers=headers,
                                  json={"model": "chat", "input": "soak"})
            await r.aread()
        elif kind in ("chat", "error", "slow"):
            model = {"chat": "chat", "error": "broken", "slow": "slow"}[kind]
            r = await client.post(f"{url}/v1/chat/completions", headers=headers, json=body(model))
            await r.aread()
        else:
            model = {"stream": "chat", "disconnect": "chat", "stall": "stall", "cut": "cut"}[kind]
            async with client.stream("POST", f"{url}/v1/chat/completions", headers=headers,
                                     json=body(model, stream=True)) as r:
                async for _ in r.aiter_bytes():
                    if kind == "disconnect":
                        break  # the client goes away mid-stream
        counts[kind] = counts.get(kind, 0) + 1
    except httpx.HTTPError:
        counts["client_errors"] = counts.get("client_errors", 0) + 1


async def steady(url: str, until: float, counts: dict) -> None:
    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def worker() -> None:
            while time.time() < until:
                await one(client, url, counts)
        await asyncio.gather(*(worker() for _ in range(WORKERS)))


async def peak(url: str, n: int, counts: dict) -> None:
    """`n` streams open at once (the mock holds each for 3 s before its first chunk)."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def stream() -> None:
            try:
                async with client.stream("POST", f"{url}/v1/chat/completions",
                                         headers={"Authorization": f"Bearer {MASTER}"},
                                         json=body("held", stream=True)) as r:
                    async for _ in r.aiter_bytes():
                        pass
                counts["peak_streams"] = counts.get("peak_streams", 0) + 1
            except httpx.HTTPError:
                counts["client_errors"] = counts.get("client_errors", 0) + 1
        await asyncio.gather(*(stream() for _ in range(n)))


async def readiness(client: httpx.AsyncClient, url: str) -> dict:
    try:
        r = await client.get(f"{url}/health/readiness")
        return r.json()
    except (httpx.HTTPError, ValueError):
        return {}


async def sampler(pid: int, url: str, samples: list, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            samples.append(sample(pid, await readiness(client, url)))
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass


def slope_mb_per_10min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, kB) in MB per 10 minutes."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    if var == 0:
        return 0.0
    kb_per_s = sum((p[0] - mx) * (p[1] - my) for p in points) / var
    return kb_per_s * 600 / 1000


async def run(workdir: Path) -> dict:
    mock, mock_url = start([str(BIN / "mock-upstream"), "--port", "0", "--no-record"], workdir)
    (workdir / "liter-llm-proxy.toml").write_text(CONFIG.format(master=MASTER, mock=mock_url))
    gw, url = start([str(BIN / "liter-llm"), "api"], workdir)
    try:
        async with httpx.AsyncClient() as c:
            faults = [{"kind": k, "model": m, "times": None} for k, m in FAULTS]
            (await c.post(f"{mock_url}/__mock/faults", json={"faults": faults})).raise_for_status()
        samples: list = []
        stop = asyncio.Event()
        sampling = asyncio.create_task(sampler(gw.pid, url, samples, stop))
        await asyncio.sleep(3)
        idle = samples[-1]
        counts: dict = {}
        marks = []  # a sample at the same point of each cycle: just before its peak
        start_t = time.time()
        end = start_t + SECONDS
        while time.time() < end:
            cycle_end = min(end, time.time() + CYCLE)
            await steady(url, cycle_end - min(10, CYCLE / 3), counts)
            async with httpx.AsyncClient(timeout=5) as c:
                marks.append(sample(gw.pid, await readiness(c, url)))
            await peak(url, PEAK, counts)
            await asyncio.sleep(max(0.0, cycle_end - time.time()))
        await asyncio.sleep(SETTLE)  # let every stream, settlement and connection end
        final = samples[-1]
        stop.set()
        await sampling
        return {"samples": samples, "idle": idle, "final": final, "marks": marks,
                "counts": counts, "start": start_t}
    finally:
        gw.terminate()
        mock.terminate()
        gw.wait(30)
        mock.wait(30)


def plot(result: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    s = result["samples"]
    t = [(x["t"] - s[0]["t"]) / 60 for x in s]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot(t, [x["rss_kb"] / 1000 for x in s], label="RSS")
    if any(x.get("heap") is not None for x in s):
        axes[0].plot(t, [(x.get("heap") or 0) / 1e6 for x in s], label="live heap")
        axes[0].legend()
    axes[0].set_ylabel("MB")
    axes[1].plot(t, [x["fds"] for x in s])
    axes[1].set_ylabel("open fds")
    axes[2].plot(t, [x["threads"] for x in s], label="threads")
    if any(x["tasks"] is not None for x in s):
        axes[2].plot(t, [x["tasks"] or 0 for x in s], label="tokio tasks")
    axes[2].legend()
    axes[2].set_xlabel("minutes")
    fig.suptitle(f"liter-llm soak: {LABEL}")
    fig.savefig(path, dpi=80)
    return True


def report(result: dict) -> tuple[str, bool]:
    marks = result["marks"][1:]  # the first cycle is the warm-up
    growth = slope_mb_per_10min([(m["t"], m["rss_kb"]) for m in marks])
    idle, final = result["idle"], result["final"]
    checks = [
        ("RSS growth after warm-up", "< 1 MB / 10 min", f"{growth:+.2f} MB / 10 min", growth < 1.0),
        ("open fds back to idle", f"{idle['fds']}", f"{final['fds']}", final["fds"] <= idle["fds"]),
    ]
    heap_marks = [(m["t"], m["heap"] / 1000) for m in marks if m.get("heap") is not None]
    if len(heap_marks) >= 2:
        heap_growth = slope_mb_per_10min(heap_marks)
        checks.append(("live heap growth after warm-up (leak check)", "< 1 MB / 10 min",
                       f"{heap_growth:+.2f} MB / 10 min", heap_growth < 1.0))
    if idle["tasks"] is not None and final["tasks"] is not None:
        checks.append(("tokio tasks back to idle", f"{idle['tasks']}", f"{final['tasks']}",
                       final["tasks"] <= idle["tasks"]))
    ok = all(c[3] for c in checks)
    peak_rss = max(x["rss_kb"] for x in result["samples"]) / 1000
    lines = [
        f"# liter-llm soak: {LABEL}, {datetime.date.today()}",
        "",
        f"- {SECONDS} s of mixed traffic in {CYCLE} s cycles ({WORKERS} steady workers; "
        f"{PEAK} concurrent streams at each cycle's peak), against the mock upstream; "
        f"final counts {SETTLE} s after the traffic stopped.",
        f"- RSS idle {idle['rss_kb'] / 1000:.1f} MB, highest {peak_rss:.1f} MB, "
        f"after the traffic {final['rss_kb'] / 1000:.1f} MB; threads {idle['threads']} -> {final['threads']}.",
        f"- Requests by kind: {json.dumps(result['counts'], sort_keys=True)}",
        "",
        "| Check | Goal | Measured | Result |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {g} | {m} | {'PASS' if p else 'FAIL'} |" for n, g, m, p in checks]
    lines += ["", "RSS at the same point of each cycle (before its peak), MB:",
              ", ".join(f"{m['rss_kb'] / 1000:.1f}" for m in result["marks"])]
    if all(m.get("heap") is not None for m in result["marks"]):
        lines += ["", "Live heap at the same points, MB:",
                  ", ".join(f"{m['heap'] / 1e6:.1f}" for m in result["marks"])]
        lines += ["", f"- Live heap idle {idle['heap'] / 1e6:.2f} MB, after the traffic "
                  f"{final['heap'] / 1e6:.2f} MB."]
    return "\n".join(lines) + "\n", ok


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        result = asyncio.run(run(Path(d)))
    text, ok = report(result)
    out = ROOT / "bench" / "results" / f"{datetime.date.today()}-{LABEL}"
    if os.environ.get("SOAK_WRITE", "1") == "1":
        out.with_suffix(".md").write_text(text)
        if plot(result, out.with_suffix(".png")):
            text += f"\nPlot: {out.with_suffix('.png').name}\n"
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

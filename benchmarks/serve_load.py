"""`pix2pix serve` under load: latency, throughput and memory of the real server on 127.0.0.1, and what happens past
its queue.

    python benchmarks/serve_load.py                     # demo-sized model (ngf 32), 128x128 PNGs
    python benchmarks/serve_load.py --size 32 --ngf 8 --requests 16 --clients 4 --overload-requests 24   # smoke run

The server is `pix2pix serve RUN` in its own process, as a user starts it, on a run folder with random weights
(timing does not depend on them), eval mode. Phase "load": `--clients` clients, each with its own connection,
send `--requests` multipart PNG uploads in all, each waiting for its answer before the next; with no more clients
than the queue holds, every request must succeed. Phase "overload": `--overload-clients` clients, more than the
server runs and queues at once (1 + `--queue`), send `--overload-requests` without retrying: the excess is refused
with 503 and Retry-After, at once. In both phases a separate client asks `/api/health` every 50 ms: translations run
off the event loop, so it answers fast throughout. The server's memory is its resident set (Linux VmRSS) after
each phase and its peak (VmHWM) at the end; the process must still be running.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, print_table, write_json  # noqa: E402

from pix2pix.config import RunConfig  # noqa: E402
from pix2pix.models import build_generator  # noqa: E402
from pix2pix.runs import RunDir  # noqa: E402

HEALTH_EVERY_S = 0.05


def random_run(folder: Path, size: int, ngf: int) -> Path:
    config = RunConfig().updated({"crop_size": size, "load_size": size, "ngf": ngf, "ndf": ngf})
    torch.manual_seed(0)
    run = RunDir(folder / "run")
    run.save_config(config)
    run.save_generator(build_generator(config).state_dict(), step=0)
    return run.path


def test_png(size: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(run: Path, port: int, queue: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "pix2pix", "serve", str(run), "--port", str(port), "--mode",
                                "eval", "--queue", str(queue), "--device", "cpu"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"serve_load.py: the server ended: {process.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    sys.exit("serve_load.py: the server did not answer in 120 s")


def memory_mib(pid: int, field: str) -> float:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(int(line.split()[1]) / 1024 for line in lines if line.startswith(f"{field}:"))


def client(url: str, image: bytes, count: int) -> list[tuple[int, float]]:
    """(status, seconds) of `count` uploads in a row over one connection."""
    results = []
    with httpx.Client(base_url=url, timeout=120) as http:
        for _ in range(count):
            start = time.perf_counter()
            status = http.post("/api/translate", files={"image": ("input.png", image, "image/png")}).status_code
            results.append((status, time.perf_counter() - start))
    return results


def health_probe(url: str, stop: threading.Event, seconds: list[float]) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            start = time.perf_counter()
            http.get("/api/health").raise_for_status()
            seconds.append(time.perf_counter() - start)
            stop.wait(HEALTH_EVERY_S)


def phase(name: str, url: str, image: bytes, clients: int, requests: int, pid: int) -> dict:
    shares = [requests // clients + (i < requests % clients) for i in range(clients)]
    stop, health = threading.Event(), []
    probe = threading.Thread(target=health_probe, args=(url, stop, health))
    probe.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for batch in pool.map(lambda n: client(url, image, n), shares) for r in batch]
    wall = time.perf_counter() - start
    stop.set()
    probe.join()
    ok = sorted(seconds for status, seconds in results if status == 200)
    busy = [seconds for status, seconds in results if status == 503]
    return {"phase": name, "clients": clients, "requests": len(results), "ok": len(ok), "503": len(busy),
            "other errors": len(results) - len(ok) - len(busy),
            "p50 ms": round(percentile(ok, 50) * 1000), "p95 ms": round(percentile(ok, 95) * 1000),
            "503 p95 ms": round(percentile(sorted(busy), 95) * 1000) if busy else "",
            "ok/s": round(len(ok) / wall, 1), "health p95 ms": round(percentile(sorted(health), 95) * 1000, 1),
            "rss MiB": round(memory_mib(pid, "VmRSS"))}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="side of the uploaded PNGs and the model's crop")
    parser.add_argument("--ngf", type=int, default=32, help="generator width (the demo's: 32)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--queue", type=int, default=8, help="the server's --queue")
    parser.add_argument("--overload-clients", type=int, default=32)
    parser.add_argument("--overload-requests", type=int, default=320)
    args = parser.parse_args()
    run = random_run(Path(tempfile.mkdtemp()), args.size, args.ngf)
    port = free_port()
    server = start_server(run, port, args.queue)
    url = f"http://127.0.0.1:{port}"
    image = test_png(args.size)
    try:
        client(url, image, 2)  # warm-up: the first translation builds the forward pass
        started_mib = memory_mib(server.pid, "VmRSS")
        rows = [phase("load", url, image, args.clients, args.requests, server.pid),
                phase("overload", url, image, args.overload_clients, args.overload_requests, server.pid)]
        alive = server.poll() is None and httpx.get(f"{url}/api/health").json()["pending"] == 0
        peak_mib = memory_mib(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(30)
    print_table(rows, list(rows[0]))
    print(f"\nserver: {args.size}x{args.size} PNGs, ngf {args.ngf}, queue {args.queue}; RSS after warm-up "
          f"{started_mib:.0f} MiB, peak {peak_mib:.0f} MiB; still serving after the overload: {alive}")
    path = write_json("serve_load", {"machine": machine(), "settings": vars(args), "rows": rows,
                                     "rss_after_warmup_mib": round(started_mib), "peak_rss_mib": round(peak_mib),
                                     "alive_after_overload": alive})
    print(f"\nwrote {path}")
    if rows[0]["ok"] != rows[0]["requests"] or not alive:
        sys.exit("serve_load.py: requests failed under the queue limit, or the server did not survive")


if __name__ == "__main__":
    main()

"""Running the simulator: in a background thread (tests, demo) or in the foreground (the CLI)."""
from __future__ import annotations

import asyncio
import signal
import sys
import threading

from aiohttp import web

from .ratelimit import RateLimiter
from .server import Simulator

HOST = "127.0.0.1"  # never anything else: the simulator is for local crawls only


def build_world(seed: int, users: int, videos: int, **knobs):
    """The synthetic world of pixelrec_data.synthetic (imported late: it is the heavy part)."""
    from pixelrec_data import synthetic
    return synthetic.generate_world(seed=seed, users=users, videos=videos, **knobs)


def make_simulator(seed: int, users: int = 0, videos: int = 0, faults=None, rate=None, world=None,
                   limiter_options: dict | None = None, **knobs) -> Simulator:
    world = world if world is not None else build_world(seed, users, videos, **knobs)
    limiter = RateLimiter(rate=rate, **(limiter_options or {})) if rate else None
    return Simulator(world, seed, faults=faults, limiter=limiter)  # parses a faults string itself


async def _start_site(simulator: Simulator, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(simulator.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port, reuse_address=True)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]
    return runner, bound


def start_simulator(seed: int, users: int = 0, videos: int = 0, faults=None, rate=None, world=None,
                    port: int = 0, limiter_options: dict | None = None, **knobs):
    """Serve in a background thread; returns (base_url, stop). stop() shuts down and joins the thread."""
    simulator = make_simulator(seed, users, videos, faults=faults, rate=rate, world=world,
                               limiter_options=limiter_options, **knobs)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state = {}

    def run():
        asyncio.set_event_loop(loop)
        try:
            state["runner"], state["port"] = loop.run_until_complete(_start_site(simulator, port))
        except BaseException as exc:  # reported to the caller below
            state["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(state["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="pixelrec-simulator", daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("simulator did not start within 60 s")
    if "error" in state:
        raise state["error"]

    def stop():
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)

    url = f"http://{HOST}:{state['port']}"
    stop.simulator = simulator
    return url, stop


def serve(simulator: Simulator, port: int, announce=print) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then close cleanly."""
    async def main():
        runner, bound = await _start_site(simulator, port)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        announce(f"serving http://{HOST}:{bound}")
        try:
            await stopping.wait()
        finally:
            await runner.cleanup()
        # the totals only: per-route counts ("requests /x/...") are in /__simulator/stats
        counts = ", ".join(f"{k} {v}" for k, v in sorted(simulator.stats.items())
                           if not k.startswith("requests /")) or "no requests"
        print(f"stopped ({counts})", file=sys.stderr, flush=True)

    asyncio.run(main())

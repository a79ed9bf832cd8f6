"""Rate limiting (412/-412, then -352), deterministic faults, and cover images."""
from __future__ import annotations

import http.client
import io
import time

import pytest
from PIL import Image

from pixelrec_data.simulator import start_simulator
from pixelrec_data.simulator.faults import FaultSpec
from pixelrec_data.simulator.ratelimit import BLOCKED, CHALLENGED, OK, RateLimiter
from pixelrec_data.simulator.world import SimWorld
from schemas.errors import InputError
from test_simulator_world import get_json, http_get, tiny_simulator, tiny_world


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_token_bucket_blocks_then_challenges_then_recovers():
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=2, block_s=1.0, abuse_limit=3, challenge_s=10.0, clock=clock)
    assert [limiter.check("a") for _ in range(3)] == [OK, OK, BLOCKED]
    assert limiter.check("b") == OK  # per client address
    clock.now += 1.01  # the block is over and a token came back: a patient client is served
    assert limiter.check("a") == OK
    assert [limiter.check("a") for _ in range(5)] == [OK, BLOCKED, BLOCKED, BLOCKED, CHALLENGED]
    clock.now += 5.0
    assert limiter.check("a") == CHALLENGED
    clock.now += 5.1
    assert limiter.check("a") == OK


def test_server_answers_412_then_352_and_keeps_covers_open():
    with tiny_simulator(rate=1.0, limiter_options={"block_s": 30.0, "abuse_limit": 3}) as (url, world):
        aid = world.videos.column("aid")[0].as_py()
        answers = [get_json(f"{url}/x/web-interface/view?aid={aid}") for _ in range(6)]
        assert [(s, b["code"]) for s, b in answers] == [(200, 0), (412, -412), (412, -412),
                                                        (412, -412), (200, -352), (200, -352)]
        assert answers[-1][1]["data"]["v_voucher"].startswith("voucher_")
        cover = world.videos.column("cover_url")[0].as_py()
        assert http_get(f"{url}/bfs/archive/{cover}.jpg")[0] == 200
        stats = get_json(f"{url}/__simulator/stats")[1]
        assert (stats["requests"], stats["blocked_412"], stats["challenged_352"]) == (7, 3, 2)
        assert (stats["requests /x/web-interface/view"], stats["requests /bfs/archive/{name}"]) == (6, 1)


def _statuses(url, paths, tries):
    out = []
    for path in paths:
        for _ in range(tries):
            try:
                status = http_get(url + path)[0]
            except (http.client.IncompleteRead, ConnectionError) as exc:
                status = type(exc).__name__
            out.append(status)
    return out


def test_faults_are_deterministic_and_retries_succeed():
    world = tiny_world()
    aids = world.videos.column("aid").to_pylist()
    root = int(SimWorld(world, seed=3).threads(0).root_rpid[0])
    paths = [f"/x/web-interface/view?aid={a}" for a in aids] + [
        f"/x/v2/reply?type=1&oid={aids[0]}&pn=1", f"/x/v2/reply/reply?type=1&oid={aids[0]}&root={root}&pn=1"]
    runs = []
    for seed in (3, 3, 4):
        url, stop = start_simulator(seed=seed, world=tiny_world(), faults="5xx=0.3,truncate=0.3")
        try:
            runs.append(_statuses(url, paths, tries=4))
        finally:
            stop()
    assert runs[0] == runs[1] and runs[0] != runs[2]
    kinds = set(runs[0])
    assert 200 in kinds and "IncompleteRead" in kinds and kinds & {500, 502, 503, 504}
    # per URL, a later attempt gets a fresh draw: every URL was served whole within its tries
    per_url = [runs[0][k:k + 4] for k in range(0, len(runs[0]), 4)]
    assert sum(200 in attempts for attempts in per_url) >= len(per_url) - 1


def test_challenge_faults_answer_both_forms():
    with tiny_simulator(faults="challenge=0.5,voucher=0.5") as (url, world):
        aid = world.videos.column("aid")[0].as_py()
        bodies = [get_json(f"{url}/x/web-interface/view?aid={aid}")[1] for _ in range(12)]
    codes = {b["code"] for b in bodies}
    assert codes == {-352, 0}
    vouchers = [b for b in bodies if b["code"] == 0 and set(b["data"]) == {"v_voucher"}]
    assert vouchers and all(b["data"]["v_voucher"].startswith("voucher_") for b in bodies if b["data"].get("v_voucher"))


def test_slow_fault_delays_and_spec_is_validated():
    with tiny_simulator(faults="slow=1,slow_s=0.3") as (url, world):
        start = time.perf_counter()
        assert get_json(f"{url}/x/web-interface/view?aid={world.videos.column('aid')[0].as_py()}")[0] == 200
        assert time.perf_counter() - start >= 0.3
    for bad in ("5xx", "5xx=2", "boom=0.1", "slow=x"):
        with pytest.raises(InputError):
            FaultSpec.parse(bad)


@pytest.fixture(scope="module")
def covers():
    with tiny_simulator() as (url, world):
        yield url, world.videos.column("cover_url").to_pylist()


def _image(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def test_covers_are_jpegs_and_honour_the_resize_suffix(covers):
    url, hashes = covers
    status, headers, original = http_get(f"{url}/bfs/archive/{hashes[0]}.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert _image(original).format == "JPEG" and _image(original).size == (640, 400)
    for suffix, size in (("@160w_100h.jpg", (160, 100)), ("@320w.jpg", (320, 200)),
                         ("@100h", (160, 100)), ("@224w_224h_1c.jpg", (224, 224))):
        status, _, body = http_get(f"{url}/bfs/archive/{hashes[0]}.jpg{suffix}")
        assert status == 200 and _image(body).size == size, suffix
    assert _image(http_get(f"{url}/bfs/archive/{hashes[0]}.jpg@160w.webp")[2]).format == "WEBP"
    assert http_get(f"{url}/bfs/archive/{hashes[0]}.jpg")[2] == original  # same bytes again
    assert len({http_get(f"{url}/bfs/archive/{h}.jpg@64w.jpg")[2] for h in hashes}) == len(hashes)
    assert http_get(f"{url}/bfs/archive/{'0' * 40}.jpg")[0] == 404
    assert http_get(f"{url}/bfs/archive/{hashes[0]}.jpg@9999w.jpg")[0] == 400


def test_cover_renders_are_deterministic_across_servers(covers):
    url, hashes = covers
    with tiny_simulator() as (other, _):
        for h in hashes[:4]:
            assert http_get(f"{url}/bfs/archive/{h}.jpg")[2] == http_get(f"{other}/bfs/archive/{h}.jpg")[2]


def test_corrupt_and_missing_covers_stay_broken():
    with tiny_simulator(faults="corrupt_cover=0.4,missing_cover=0.3") as (url, world):
        hashes = world.videos.column("cover_url").to_pylist()
        outcome = {}
        for h in hashes:
            results = []
            for suffix in ("", "", "@160w_100h.jpg"):
                status, _, body = http_get(f"{url}/bfs/archive/{h}.jpg{suffix}")
                try:
                    results.append("ok" if status == 200 and _image(body) else status)
                except OSError:
                    results.append("corrupt")
            assert len(set(results)) == 1, results  # a broken cover is broken on every attempt
            outcome[h] = results[0]
        assert set(outcome.values()) == {"ok", "corrupt", 404}

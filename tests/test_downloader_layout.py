"""fetch-covers reruns reuse verified covers whatever the --shard-size of the earlier run."""
from __future__ import annotations

from pixelrec_data.covers.fetch import FetchOptions, fetch_release_covers
from test_downloader import covers_by_id, write_items
from test_downloader_server import HITS, LocalServer, cover_app, make_image


def test_another_shard_size_fetches_nothing_again(tmp_path):
    images = {f"{n}.jpg": make_image(n) for n in range(12)}
    with LocalServer(cover_app(images)) as server:
        hits = server.app[HITS]
        urls = {f"i{n}": f"{server.url}/img/{n}.jpg" for n in range(11)}
        urls["i11"] = f"{server.url}/missing/11.jpg"  # a final error: kept, not asked again
        write_items(tmp_path, urls)
        options = dict(rate=0, retries=0, timeout=5.0, allow_private_hosts=True)
        first = fetch_release_covers(tmp_path, FetchOptions(**options, shard_size=5))
        table = (tmp_path / "covers.parquet").read_bytes()
        before = sum(hits.values())
        for size in (3, 7, 12):
            again = fetch_release_covers(tmp_path, FetchOptions(**options, shard_size=size))
            assert again["fetched_this_run"] == 0 and sum(hits.values()) == before, size
        assert first["fetched_this_run"] == 12
        assert [r["status"] for r in covers_by_id(tmp_path).values()] == ["ok"] * 11 + ["http_404"]
        fetch_release_covers(tmp_path, FetchOptions(**options, shard_size=5))
        assert (tmp_path / "covers.parquet").read_bytes() == table  # same rows, same bytes
        # a changed URL: that item is fetched again (its old shard no longer describes the data)
        write_items(tmp_path, {**urls, "i4": f"{server.url}/img/11.jpg"})
        changed = fetch_release_covers(tmp_path, FetchOptions(**options, shard_size=4))
        assert hits["/img/11.jpg"] == 1 and 1 <= changed["fetched_this_run"] < 12

"""The official subsets' published counts (`verify`, `download --counts`) and the default mirror.

Releases here are small real folders (Parquet tables + a manifest written by pipelines.manifest).
Where a release must *match* the published counts, the registry entry is lowered to the release's
size in-process: the checks run unchanged on real files, only the reference figures are smaller.
"""
from __future__ import annotations

import pyarrow as pa
import pytest

from pipelines.manifest import write_manifest
from pipelines.published import check_published_counts
from pixelrec_data.mirror import default_mirror, download, publish
from schemas.errors import InputError
from schemas.io import write_table
from schemas.official_subsets import OFFICIAL_SUBSETS, OfficialSubset, official_subset
from schemas.tables import INTERACTIONS, ITEMS
from test_downloader_server import LocalServer
from test_mirror import pixelrec, static_app


def make_release(data, name, users=4, items=3, catalog=None, source="official", counts=None):
    """A release of `users` users, each with every one of `items` items (ids i0.., u0..)."""
    release = data / name
    write_table(pa.Table.from_pylist([{"item_id": f"i{n}"} for n in range(catalog or items)],
                                     schema=ITEMS), release / "items.parquet", "items")
    rows = [{"item_id": f"i{i}", "user_id": f"u{u}", "timestamp": i, "source": "comment"}
            for u in range(users) for i in range(items)]
    write_table(pa.Table.from_pylist(rows, schema=INTERACTIONS), release / "interactions.parquet",
                "interactions")
    build = {"seed": 1} if source is None else {"seed": 1, "source": source}
    write_manifest(release, name, build, counts or {"users": users, "items": catalog or items,
                                                    "interactions": users * items})
    return release


@pytest.fixture
def tiny_pixel200k(monkeypatch):
    """Pretend the paper published Pixel200K with 4 users, 3 items, 12 interactions."""
    monkeypatch.setitem(OFFICIAL_SUBSETS, "pixel200k", OfficialSubset("pixel200k", "Pixel200K", 4, 3, 12))


def test_registry_holds_the_papers_counts():
    assert {n: s.counts() for n, s in OFFICIAL_SUBSETS.items()} == {
        "pixel50k": {"users": 50_000, "items": 82_865, "interactions": 989_494},
        "pixel200k": {"users": 200_000, "items": 96_282, "interactions": 3_965_656},
        "pixel1m": {"users": 1_001_822, "items": 100_541, "interactions": 19_886_579},
        "pixel8m": {"users": 8_886_078, "items": 407_082, "interactions": 158_488_652},
        "pixelrec": {"users": 29_845_039, "items": 408_374, "interactions": 195_755_320}}
    assert official_subset("Pixel1M").title == "Pixel1M" and official_subset("mine") is None


def test_verify_command_by_source_and_mode(tmp_path):
    official = make_release(tmp_path, "pixel200k")
    proc = pixelrec("verify", "--release", official)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "counts users = 4, the published Pixel200K count is 200,000" in proc.stderr
    assert "build.source is 'official'" in proc.stderr
    proc = pixelrec("verify", "--release", official, "--counts", "off")
    assert proc.returncode == 0 and "not checked (--counts off)" in proc.stdout
    built = make_release(tmp_path / "b", "pixel200k", source="raw")
    proc = pixelrec("verify", "--release", built)
    assert proc.returncode == 0, proc.stderr
    assert "built from raw/ by this toolkit: published counts not required" in proc.stdout
    assert "4 users, 3 items, 12 interactions" in proc.stdout
    proc = pixelrec("verify", "--release", built, "--counts", "strict")
    assert proc.returncode == 2 and "required by --counts strict" in proc.stderr
    proc = pixelrec("verify", "--release", make_release(tmp_path, "mine", source=None))
    assert proc.returncode == 0 and "published" not in proc.stdout and "note" not in proc.stdout


def test_manifest_without_source_or_counts_claims_official(tmp_path, tiny_pixel200k):
    release = make_release(tmp_path, "pixel200k", source=None, counts={"users": 4, "interactions": 12})
    with pytest.raises(InputError, match=r"no counts.items; .*\(build.source is absent"):
        check_published_counts(release)


def test_files_are_counted_not_only_the_manifest(tmp_path, tiny_pixel200k):
    assert check_published_counts(make_release(tmp_path, "pixel200k")) == (
        "published Pixel200K: 4 users, 3 items, 12 interactions: match")
    # a catalog larger than the interacted items is fine (the paper counts interacted items)
    assert "match" in check_published_counts(make_release(tmp_path / "c", "pixel200k", catalog=5))
    # the manifest claims the published counts, the files disagree: 6 users x 2 items
    lying = make_release(tmp_path / "l", "pixel200k", users=6, items=2,
                         counts={"users": 4, "items": 3, "interactions": 12})
    with pytest.raises(InputError, match=r"interactions.parquet: 6 distinct users, the published "
                                         r"Pixel200K count is 4 \(build.source is 'official'"):
        check_published_counts(lying)
    with pytest.raises(InputError, match="counts items = 2 .*fewer than the published"):
        check_published_counts(make_release(tmp_path / "s", "pixel200k", catalog=2, items=2,
                                            counts={"users": 4, "items": 2, "interactions": 12}))


def test_download_refuses_an_official_release_with_wrong_counts(tmp_path):
    data = tmp_path / "data"
    make_release(data, "pixel200k")
    make_release(data, "pixel1m", source="raw")
    publish(data, tmp_path / "mirror", publisher=True)  # a rogue mirror of official data
    requests: list = []
    with LocalServer(static_app(tmp_path / "mirror", requests)) as server:
        proc = pixelrec("download", "--subset", "pixel200k", "--root", tmp_path / "dl",
                        "--mirror", server.url)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1
        assert "pixel200k: manifest.json counts users = 4, the published Pixel200K count is 200,000" \
            in proc.stderr
        # refused from the manifest alone: no release file was fetched
        assert sorted(p for p, _ in requests) == ["/index.json", "/pixel200k/manifest.json"]
        assert not (tmp_path / "dl/pixel200k").exists()
        proc = pixelrec("download", "--subset", "pixel1m", "--root", tmp_path / "dl", "--mirror", server.url)
        assert proc.returncode == 0, proc.stderr
        assert "built from raw/ by this toolkit" in proc.stdout and (tmp_path / "dl/pixel1m").is_dir()


def test_download_checks_the_fetched_files_before_the_release_appears(tmp_path, tiny_pixel200k):
    data = tmp_path / "data"
    make_release(data, "pixel200k", users=6, items=2, counts={"users": 4, "items": 3, "interactions": 12})
    publish(data, tmp_path / "mirror", publisher=True)
    seen = []

    def check(folder, label):
        seen.append(label)
        return check_published_counts(folder, "auto", where=label)

    with pytest.raises(InputError, match="mirror/pixel200k/interactions.parquet: 6 distinct users"):
        download("pixel200k", str(tmp_path / "mirror"), tmp_path / "dl", check_release=check)
    assert seen and not (tmp_path / "dl/pixel200k").exists()
    folder = download("pixel200k", str(tmp_path / "mirror"), tmp_path / "dl", counts="off",
                      check_release=lambda f, label: check_published_counts(f, "off", label))
    assert (folder / "interactions.parquet").is_file()


# --- the default mirror: --mirror > $PIXELREC_MIRROR > config file > error ------------------------
@pytest.fixture
def no_mirror_env(monkeypatch, tmp_path):
    for name in ("PIXELREC_MIRROR", "PIXELREC_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home/.config/pixelrec/config.toml"


def test_default_mirror_sources_in_order(no_mirror_env, monkeypatch, tmp_path):
    with pytest.raises(InputError, match=r"pass --mirror URL, set PIXELREC_MIRROR, or write mirror = "
                                         r"\"URL\" in .*home/.config/pixelrec/config.toml"):
        default_mirror()
    no_mirror_env.parent.mkdir(parents=True)
    no_mirror_env.write_text('# the team mirror\nmirror = "https://mirror.example/pixelrec"\n')
    assert default_mirror() == "https://mirror.example/pixelrec"
    monkeypatch.setenv("PIXELREC_MIRROR", "/srv/mirror")
    assert default_mirror() == "/srv/mirror"
    monkeypatch.delenv("PIXELREC_MIRROR")
    other = tmp_path / "other.toml"
    other.write_text('mirror = "file:///x"\n')
    monkeypatch.setenv("PIXELREC_CONFIG", str(other))
    assert default_mirror() == "file:///x"
    for text, words in (('mirror = "', "not valid TOML"), ("mirror = 3", "non-empty string")):
        other.write_text(text)
        with pytest.raises(InputError, match=words):
            default_mirror()
    monkeypatch.setenv("PIXELREC_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(InputError, match=r"missing.toml: no such file \(named by \$PIXELREC_CONFIG\)"):
        default_mirror()


def test_download_command_takes_the_mirror_from_the_config_file(no_mirror_env, tmp_path):
    make_release(tmp_path / "data", "mine", source=None)
    publish(tmp_path / "data", tmp_path / "mirror")
    no_mirror_env.parent.mkdir(parents=True)
    no_mirror_env.write_text(f'mirror = "{tmp_path / "mirror"}"\n')
    env = {"HOME": str(tmp_path / "home")}
    proc = pixelrec("download", "--subset", "mine", "--out", tmp_path / "dl", env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dl/mine/interactions.parquet").is_file()
    # the environment overrides the file, --mirror overrides both
    env["PIXELREC_MIRROR"] = str(tmp_path / "nowhere")
    proc = pixelrec("download", "--subset", "mine", "--out", tmp_path / "dl", env=env)
    assert proc.returncode == 2 and "nowhere: no such folder" in proc.stderr
    proc = pixelrec("download", "--subset", "mine", "--out", tmp_path / "dl2", "--mirror",
                    tmp_path / "mirror", env=env)
    assert proc.returncode == 0, proc.stderr


def test_no_mirror_anywhere_is_one_line(no_mirror_env, tmp_path):
    # (an official subset's name goes to its publisher instead: tests/test_official_download.py)
    proc = pixelrec("download", "--subset", "mine", "--out", tmp_path / "dl",
                    env={"HOME": str(tmp_path / "home")})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "pass --mirror URL, set PIXELREC_MIRROR, or write mirror" in proc.stderr

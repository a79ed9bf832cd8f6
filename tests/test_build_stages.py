"""build-release: per-stage report, --memory-limit, sequences and manifest written once in the build."""
from __future__ import annotations

import json

import pytest

from pipelines.engine import check_memory_limit, default_memory_limit, session
from pipelines.stages import STAGES, StageClock, format_stages
from schemas.errors import InputError
from test_pipeline_build import KEY
from test_release_cli import assert_input_error, good_raw, pixelrec


def test_cli_reports_every_stage_and_takes_a_memory_limit(tmp_path):
    raw = good_raw(tmp_path / "raw")
    (tmp_path / "key").write_bytes(KEY)
    proc = pixelrec("build-release", "--raw", raw, "--out", tmp_path / "data", "--key-file", tmp_path / "key",
                    "--subset", "all=all", "--subset", "six=6", "--memory-limit", "512MB")
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("stages (seconds, peak RSS of the stage):")[1]
    for stage in STAGES:
        assert f"  {stage} " in table, stage
    assert "  total " in table
    release = tmp_path / "data" / "six"
    # sequences are written inside the build and listed by the one manifest it writes
    listed = {f["path"] for f in json.loads((release / "manifest.json").read_text())["files"]}
    assert {"sequences/train.parquet", "sequences/validation.parquet", "sequences/test.parquet"} <= listed
    assert pixelrec("verify", "--release", release).returncode == 0
    assert (release / "README.md").is_file() and (tmp_path / "data" / "README.md").is_file()


def test_cli_refuses_a_bad_memory_limit(tmp_path):
    proc = pixelrec("build-release", "--raw", good_raw(tmp_path / "raw"), "--out", tmp_path / "data",
                    "--key-file", tmp_path / "key", "--memory-limit", "lots")
    assert_input_error(proc, "memory limit", "4GB")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("text,duckdb", [("4GB", "3.7 GiB"), ("3.5GiB", "3.5 GiB"), ("700mb", "667.5 MiB")])
def test_memory_limit_reaches_duckdb(tmp_path, text, duckdb):
    with session(tmp_path, memory_limit=text) as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == duckdb
        spill = con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
        assert spill.startswith(str(tmp_path))


def test_memory_limit_parsing(monkeypatch):
    assert check_memory_limit("8") == "8GB"
    for bad in ("", "GB", "-1GB", "1PB", "10MB"):
        with pytest.raises(InputError):
            check_memory_limit(bad)
    monkeypatch.setenv("PIXELREC_DUCKDB_MEMORY", "2GB")
    assert default_memory_limit() == "2GB"
    monkeypatch.delenv("PIXELREC_DUCKDB_MEMORY")
    assert default_memory_limit().endswith("MiB")


def test_stage_clock_adds_repeated_stages():
    clock = StageClock()
    for _ in range(2):
        with clock.stage("splits"):
            bytearray(1 << 20)
    with clock.stage("ingest"):
        pass
    report = clock.report()
    assert list(report) == ["ingest", "splits"]  # the build's order, not the calls'
    assert report["splits"]["seconds"] >= 0 and report["splits"]["peak_rss_mib"] > 0
    lines = format_stages(report)
    assert lines[-1].split()[0] == "total" and len(lines) == 4

"""train.log is written as the run goes (timestamped lines, flushed per line) and the run folder
records its provenance."""
import json
import re
from datetime import datetime

import pytest
import torch

import toy
from pixelrec_data.baselines.trainer.train import Run, train

TINY = {"embedding_size": 16, "n_heads": 2, "n_layers": 1, "learning_rate": 1e-3, "train_batch_size": 64}
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S")
# the keys every provenance.json carries
PROVENANCE_KEYS = ("release_path", "manifest_sha256", "toolkit_version", "torch_version",
                   "python_version", "device", "seed", "started_at", "epoch_wall_s", "wall_s")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("chains") / "chains"
    return toy.write_release(folder, toy.chain_sequences(60, 24, n_chains=3, noise=0.1, seed=0), 24)


def test_epoch_line_is_in_train_log_before_the_run_ends(release, tmp_path, monkeypatch):
    seen = {}
    original = Run.train_epoch

    def train_epoch(self, epoch):
        if epoch == 1:  # epoch 1 has finished and the run is still going: read the log now
            seen["log"] = (self.folder / "train.log").read_text()
            seen["provenance"] = json.loads((self.folder / "provenance.json").read_text())
        return original(self, epoch)

    monkeypatch.setattr(Run, "train_epoch", train_epoch)
    folder = train(release, "sasrec", out=tmp_path, overrides={**TINY, "epochs": 2})
    lines = seen["log"].splitlines()
    assert any(" epoch 1: loss " in line for line in lines), seen["log"]
    assert all(LINE.match(line) for line in lines), seen["log"]
    assert len(seen["provenance"]["epoch_wall_s"]) == 1

    record = json.loads((folder / "provenance.json").read_text())
    assert set(PROVENANCE_KEYS) <= set(record)
    assert record["release_path"] == str(release.resolve()) and record["seed"] == 2020
    assert record["manifest_sha256"] is None or len(record["manifest_sha256"]) == 64
    assert record["torch_version"] == torch.__version__ and record["device"].startswith("cpu")
    assert len(record["epoch_wall_s"]) == 2 and record["wall_s"] >= sum(record["epoch_wall_s"])
    datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))
    final = (folder / "train.log").read_text().splitlines()
    assert final[:len(lines)] == lines and "final test" in final[-1]


def test_resumed_run_keeps_its_start_and_epoch_times(release, tmp_path):
    first = train(release, "sasrec", out=tmp_path, overrides={**TINY, "epochs": 1})
    started = json.loads((first / "provenance.json").read_text())["started_at"]
    again = train(release, "sasrec", out=tmp_path, overrides={**TINY, "epochs": 2})
    record = json.loads((again / "provenance.json").read_text())
    assert again == first and record["started_at"] == started and len(record["epoch_wall_s"]) == 2
    assert "resuming" in (again / "train.log").read_text()

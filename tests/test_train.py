"""The trainer end to end on small synthetic releases: ordering of baselines, resume, DDP, errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import toy
from pixelrec_data.baselines.trainer.train import train

ROOT = Path(__file__).resolve().parent.parent
TINY_SASREC = {"embedding_size": 16, "n_heads": 2, "n_layers": 1, "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def chain_release(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("chains") / "chains"
    return toy.write_release(folder, toy.chain_sequences(240, 48, n_chains=4, noise=0.1, seed=0), 48)


def final(folder, split="validation"):
    return json.loads((Path(folder) / "metrics.json").read_text())["final"][split]


def test_sasrec_beats_pop_beats_random(chain_release, tmp_path):
    runs = {}
    for model, overrides in (("random", {}), ("pop", {}),
                             ("sasrec", {**TINY_SASREC, "embedding_size": 32, "epochs": 12})):
        runs[model] = train(chain_release, model, out=tmp_path, overrides=overrides)
    ndcg = {m: final(f)["ndcg@10"] for m, f in runs.items()}
    assert ndcg["sasrec"] > ndcg["pop"] > ndcg["random"], ndcg
    folder = runs["sasrec"]
    for name in ("config.yaml", "metrics.json", "groups.json", "train.log", "best.pt"):
        assert (folder / name).exists(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert len(metrics["per_epoch"]) == 12 and set(metrics["per_epoch"][0]["test"]) == {
        "recall@5", "ndcg@5", "recall@10", "ndcg@10"}
    groups = json.loads((folder / "groups.json").read_text())
    assert len(groups["figure7_recall_by_target_popularity"]) == 10


def test_resume_equals_uninterrupted_run(chain_release, tmp_path):
    settings = {**TINY_SASREC, "train_batch_size": 32}
    straight = train(chain_release, "sasrec", out=tmp_path / "a", overrides={**settings, "epochs": 3})
    # a run stopped after epoch 1 (as a kill after its checkpoint would leave it), then rerun
    first = train(chain_release, "sasrec", out=tmp_path / "b", overrides={**settings, "epochs": 1})
    assert json.loads((first / "metrics.json").read_text())["epochs_run"] == 1
    resumed = train(chain_release, "sasrec", out=tmp_path / "b", overrides={**settings, "epochs": 3})
    assert resumed.name == straight.name
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((resumed / "metrics.json").read_text())
    assert a["per_epoch"] == [dict(e, train_seconds=x["train_seconds"])
                              for e, x in zip(b["per_epoch"], a["per_epoch"])]
    assert a["final"] == b["final"]


def test_crash_mid_epoch_then_rerun_resumes_identically(chain_release, tmp_path, monkeypatch):
    from pixelrec_data.baselines.trainer import train as T
    settings = {**TINY_SASREC, "train_batch_size": 32, "epochs": 3}
    straight = train(chain_release, "sasrec", out=tmp_path / "a", overrides=settings)
    original = T.Run.batches

    def dies_in_epoch_2(self, epoch):
        for number, item in enumerate(original(self, epoch)):
            if epoch == 1 and number == 2:  # two optimizer steps of epoch 2 are lost
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(T.Run, "batches", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(chain_release, "sasrec", out=tmp_path / "b", overrides=settings)
    monkeypatch.setattr(T.Run, "batches", original)
    resumed = train(chain_release, "sasrec", out=tmp_path / "b", overrides=settings)
    log = (resumed / "train.log").read_text()
    assert "resuming" in log and "after epoch 1" in log
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((resumed / "metrics.json").read_text())
    assert [e["validation"] for e in a["per_epoch"]] == [e["validation"] for e in b["per_epoch"]]
    assert a["final"] == b["final"]


def test_sigkill_then_rerun_gives_the_uninterrupted_metrics(chain_release, tmp_path):
    import signal
    import time
    settings = {**TINY_SASREC, "train_batch_size": 16, "epochs": 25, "test_each_epoch": False}
    straight = train(chain_release, "sasrec", out=tmp_path / "a", overrides=settings)
    args = ["train", "--release", str(chain_release), "--model", "sasrec", "--out", str(tmp_path / "b")]
    for key, value in settings.items():
        args += ["--epochs", str(value)] if key == "epochs" else ["--set", f"{key}={value}"]
    proc = subprocess.Popen([sys.executable, "-m", "pixelrec_data.cli", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    checkpoint = tmp_path / "b" / straight.name / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (checkpoint.parent / "metrics.json").exists(), "the run ended before the kill"
    resumed = train(chain_release, "sasrec", out=tmp_path / "b", overrides=settings)
    assert "resuming" in (resumed / "train.log").read_text()
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((resumed / "metrics.json").read_text())
    assert [e["validation"] for e in a["per_epoch"]] == [e["validation"] for e in b["per_epoch"]]
    assert a["final"] == b["final"]


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pixelrec_data.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_ddp_two_processes_equal_one_process(chain_release, tmp_path):
    common = ["train", "--release", str(chain_release), "--model", "sasrec", "--epochs", "2",
              "--set", "embedding_size=16", "--set", "n_heads=2", "--set", "n_layers=1",
              "--set", "learning_rate=0.001", "--set", "hidden_dropout_prob=0.0",
              "--set", "attn_dropout_prob=0.0"]
    single = train(chain_release, "sasrec", out=tmp_path / "one", overrides={
        **TINY_SASREC, "epochs": 2, "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0,
        "train_batch_size": 64})
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "pixelrec_data.cli", *common, "--set", "train_batch_size=32",
         "--out", str(tmp_path / "two")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-5000:]  # the rank's own error precedes torchrun's report
    two = next((tmp_path / "two").iterdir())
    one = json.loads((single / "metrics.json").read_text())
    ddp = json.loads((two / "metrics.json").read_text())
    for split in ("validation", "test"):
        for key, value in one["final"][split].items():
            assert ddp["final"][split][key] == pytest.approx(value, abs=2e-6), (split, key)
    assert [e["loss"] for e in ddp["per_epoch"]] == pytest.approx([e["loss"] for e in one["per_epoch"]],
                                                                  rel=1e-4)


def test_nan_loss_stops_with_step_and_exit_2(chain_release, tmp_path):
    result = _cli("train", "--release", str(chain_release), "--model", "mf", "--epochs", "2",
                  "--set", "embedding_size=8", "--set", "learning_rate=1e30", "--out", str(tmp_path))
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: training loss is ") and " at step " in line, line


@pytest.mark.parametrize("case", ["unknown_model", "no_splits", "no_items"])
def test_bad_input_is_one_line_exit_2(chain_release, tmp_path, case, capsys):
    import shutil
    release = tmp_path / "rel"
    shutil.copytree(chain_release, release)
    model = "sasrec"
    if case == "unknown_model":
        model = "nosuchmodel"
    elif case == "no_splits":
        shutil.rmtree(release / "splits")
    else:
        (release / "items.parquet").unlink()
    from pixelrec_data.cli import main
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--release", str(release), "--model", model, "--out", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err


def test_cpu_runs_use_deterministic_kernels_unless_told_not_to():
    from pixelrec_data.baselines.trainer.train import deterministic_kernels
    from schemas.errors import InputError

    before = torch.are_deterministic_algorithms_enabled()
    try:
        deterministic_kernels("auto", torch.device("cpu"))
        assert torch.are_deterministic_algorithms_enabled()
        deterministic_kernels("auto", torch.device("cuda"))   # a GPU run keeps the fast kernels
        assert not torch.are_deterministic_algorithms_enabled()
        deterministic_kernels("yes", torch.device("cuda"))
        assert torch.are_deterministic_algorithms_enabled()
        deterministic_kernels("no", torch.device("cpu"))
        assert not torch.are_deterministic_algorithms_enabled()
        with pytest.raises(InputError):
            deterministic_kernels("sometimes", torch.device("cpu"))
    finally:
        torch.use_deterministic_algorithms(before)

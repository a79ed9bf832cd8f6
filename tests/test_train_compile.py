"""The compiled training/scoring path (`compile`, compile.py) against the eager path, on CPU.

torch.compile runs with backend aot_eager: Dynamo capture, AOTAutograd forward/backward graphs and
the trainer's padding/weighting wrapper are all exercised, without inductor's C++ code generation
(which takes minutes on this machine). Dropout is 0 so that the extra padding rows, which consume
random numbers, cannot change the draws of later steps.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from pixelrec_data.baselines.trainer import compile as C
from pixelrec_data.baselines.evaluation import metrics as E
import toy
from pixelrec_data.baselines.config import resolve_config
from pixelrec_data.baselines.data.interactions import load_interactions
from pixelrec_data.baselines.models import model_class
from pixelrec_data.baselines.data.samples import make_samples, pad_rows
from pixelrec_data.baselines.trainer.train import run_id, train
from schemas.errors import InputError

# batch sizes that leave a short last batch (checked in the test): 25 windows, 100 pairs
RUNS = {
    "sasrec": {"embedding_size": 16, "n_heads": 2, "n_layers": 1, "learning_rate": 1e-3,
               "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0, "epochs": 2,
               "train_batch_size": 25, "eval_batch_size": 50},
    "mf": {"embedding_size": 16, "learning_rate": 1e-2, "epochs": 2, "train_batch_size": 100,
           "eval_batch_size": 50},
}
COMPILED = {"compile": "default", "compile_backend": "aot_eager"}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("compile") / "chains"
    return toy.write_release(folder, toy.chain_sequences(120, 40, seed=1), 40)


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.mark.parametrize("model", sorted(RUNS))
def test_compiled_training_matches_eager(release, tmp_path, model):
    data = load_interactions(release)
    cls = model_class(model)
    samples = make_samples(cls.train_format, data)
    assert len(samples) % RUNS[model]["train_batch_size"]  # the last training batch is short
    torch._dynamo.reset()
    counters.clear()
    eager = metrics(train(release, model, out=tmp_path, overrides=RUNS[model]))
    assert counters["stats"]["unique_graphs"] == 0
    compiled = metrics(train(release, model, out=tmp_path, overrides={**RUNS[model], **COMPILED}))
    # one graph for the training forward, one for the scorer: the padded short batches of training
    # and evaluation cause no recompilation (which would mean a new CUDA graph per shape on a GPU)
    assert counters["stats"]["unique_graphs"] == 2
    assert compiled["run"] != eager["run"]  # compile settings other than the default are in the id
    for a, b in zip(eager["per_epoch"], compiled["per_epoch"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)
    for split in ("validation", "test"):
        for key, value in eager["final"][split].items():
            # float reassociation in the padded batch may flip a near-tie: 2 users of 120 at most
            assert compiled["final"][split][key] == pytest.approx(value, abs=2 / 120 + 1e-7), key


def test_padded_last_eval_batch_scores_every_user_identically(release):
    data = load_interactions(release)
    torch.manual_seed(0)
    config = resolve_config("sasrec", RUNS["sasrec"])
    model = model_class("sasrec")(config, data)
    assert data.n_users % 50 != 0  # a short last batch exists
    for split in ("validation", "test"):
        plain = E.score_users(model, data, split, torch.device("cpu"), batch_size=50)
        padded = E.score_users(model, data, split, torch.device("cpu"), batch_size=50, pad_last=True)
        scored = []
        padded_compiled = E.score_users(model, data, split, torch.device("cpu"), batch_size=50,
                                        pad_last=True, scorer=lambda b: scored.append(len(b["user"]))
                                        or model.full_scores(b))
        assert set(scored) == {50}  # every scorer call saw the fixed batch size
        for other in (padded, padded_compiled):
            np.testing.assert_array_equal(plain[0], other[0])
            np.testing.assert_array_equal(plain[1], other[1])
        assert (plain[0][1:] > 0).all()  # every user ranked
        assert E.metrics_from_ranks(plain[0][1:]) == E.metrics_from_ranks(padded[0][1:])


def test_padding_rows_weigh_nothing():
    batch = {"user": torch.tensor([3, 5, 7]), "pos": torch.tensor([[1, 2], [3, 4], [5, 6]])}
    padded, real = pad_rows(batch, 5)
    assert real == 3 and padded["pos"].shape == (5, 2)
    assert padded["user"].tolist() == [3, 5, 7, 3, 3]
    assert C.row_weights(real, 5, "cpu").tolist() == [1, 1, 1, 0, 0]
    assert pad_rows(batch, 3)[0] is batch


def test_speed_keys_at_defaults_keep_run_ids(tmp_path):
    config = resolve_config("sasrec")
    legacy = {k: v for k, v in config.items() if k not in ("compile", "compile_backend", "eval_precision")}
    assert run_id(tmp_path, config) == run_id(tmp_path, legacy)
    assert run_id(tmp_path, {**config, "eval_precision": "bf16"}) != run_id(tmp_path, config)


@pytest.mark.parametrize("setting", [{"compile": "turbo"}, {"compile_backend": "nope", "compile": "default"},
                                     {"eval_precision": "fp8"}])
def test_bad_speed_settings_are_input_errors(release, tmp_path, setting):
    with pytest.raises(InputError):
        train(release, "mf", out=tmp_path, overrides={**RUNS["mf"], "epochs": 1, **setting})

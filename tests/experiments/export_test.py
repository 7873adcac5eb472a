"""experiments.export: a trained run, exported, gives the same outputs in a PyTorch twin."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from attn_audit import data, training
from attn_audit.models import ModelConfig
from tests.reference.torch_model import load_torch_model

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("encoder", ["lstm", "cnn", "average"])
def test_export_matches_pytorch_twin_on_real_sst(tmp_path, real_data_dir, encoder):
    dataset = data.load_dataset("sst", real_data_dir)
    config = training.TrainConfig(encoder=encoder, epochs=1, embed_dim=16, hidden_size=8)
    training.run_training(config, tmp_path / "run", dataset=dataset)
    subprocess.run(
        [sys.executable, "-m", "experiments.export", f"--workdir={tmp_path / 'run'}",
         f"--out={tmp_path / 'out'}"],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    exported = json.loads((tmp_path / "out" / "config.json").read_text())
    state_dict = dict(np.load(tmp_path / "out" / "model.npz"))
    assert all(v.dtype == np.float32 for v in state_dict.values())
    assert all(k.startswith(("encoder.", "decoder.")) for k in state_dict)
    fields = {k: exported[k] for k in ModelConfig.__dataclass_fields__}
    twin = load_torch_model(state_dict, fields)

    # Encode real test sentences with nothing but the exported vocabulary and settings.
    index = {token: i for i, token in enumerate(exported["vocab"])}
    specials = exported["special_ids"]
    sentences = dataset.splits["test"][:64]
    sequences = [
        [specials["SOS"], *(index.get(t, specials["UNK"]) for t in e.tokens), specials["EOS"]]
        for e in sentences
    ]
    width = max(map(len, sequences))
    token_ids = np.zeros((len(sequences), width), np.int64)
    for row, sequence in enumerate(sequences):
        token_ids[row, : len(sequence)] = sequence
    lengths = np.asarray([len(s) for s in sequences])
    with torch.no_grad():
        torch_probabilities, torch_attention = twin(
            torch.from_numpy(token_ids), torch.from_numpy(lengths)
        )

    from attn_audit.training.run_folder import load_run

    run = load_run(tmp_path / "run")
    jax_probabilities, jax_attention = training.predict_batch(
        run.params,
        {"token_ids": token_ids.astype(np.int32), "lengths": lengths.astype(np.int32)},
        model_config=run.model_config,
    )
    # float32 on both sides; 1e-5 absorbs summation-order differences.
    np.testing.assert_allclose(torch_probabilities.numpy(), jax_probabilities, atol=1e-5)
    np.testing.assert_allclose(torch_attention.numpy(), jax_attention, atol=1e-5)


def test_export_of_a_missing_run_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.export", f"--workdir={tmp_path / 'none'}",
         f"--out={tmp_path / 'out'}"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0 and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr

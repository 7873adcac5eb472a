"""bAbI 1 BiLSTM + tanh: is our τ_g (0.33) above JW's (paper 0.23, JW's run 0.251) because of
how we train, or would JW's own loop give it too?

Every model here is measured by one τ_g code, a PyTorch transcription of JW's
``Question_Answering.Model.gradient_mem`` and ``PlottingQA.plot_grads``: the gradient of the
predicted answer's softmax probability with the attention detached, taken at the passage
encoder's embedding output; ``|Σ_d g·e|`` per token; Kendall τ-b (scipy) between it and the
attention over the passage without <SOS> and <EOS>; the mean over all test questions.

A model is one of

- ``torch:S``: the PyTorch twin of our model (``tests/reference/torch_model.py``, JW's
  modules) from PyTorch's initialisation with seed S, trained by JW's loop
  (``torch_jw_train.train``: AMSGrad, JW's noisy length-sorted batches, 100 epochs, best dev
  epoch kept);
- ``jax:S``: the same loop from our initialisation of seed S;
- ``ours:S``: our library's training (``training.run_training`` with the paper's defaults,
  seed S), its selected parameters loaded into the twin (``interop.to_torch_state_dict``).

Rows are appended to ``tau_by_trainer.csv`` beside this file.

    python results/isolating/babi1_lstm_tau/tau_by_trainer.py MODEL...   # e.g. torch:0 ours:0
"""

import pathlib
import subprocess
import sys

import numpy as np
import scipy.stats
import torch

from attn_audit import data, training
from attn_audit.data import pipeline
from attn_audit.interop import to_torch_state_dict

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))
sys.path.insert(0, str(HERE.parent / "babi_answer_layer"))
from ablate import append_row  # noqa: E402
from torch_jw_train import accuracy, padded, train  # noqa: E402

from tests.reference.torch_model import TorchModel  # noqa: E402

DATASET, ENCODER, ATTENTION = "babi1", "lstm", "tanh"


def jw_gradient_tau(model: TorchModel, split: pipeline.EncodedSplit) -> np.ndarray:
    """Kendall τ-b per question between attention and JW's |Σ_d g·e| (``[N]``)."""
    captured = []

    def as_leaf(module, inputs, output):  # the passage's embedding output, JW's `embedding`
        captured.append(output.detach().requires_grad_(True))
        return captured[-1]

    hook = model.encoder.embedding.register_forward_hook(as_leaf)
    try:
        return np.array(
            [tau for batch in _batches(split) for tau in _taus(model, captured, *batch)]
        )
    finally:
        hook.remove()


def _batches(split: pipeline.EncodedSplit):
    for start in range(0, len(split), 50):
        part = slice(start, start + 50)
        yield (*padded(split.token_ids[part]), *padded(split.question_ids[part]))


def _taus(model, captured, tokens, lengths, questions, question_lengths) -> list[float]:
    states, _ = model.encoder(tokens, lengths)
    embedded = captured.pop()
    _, question = model.question_encoder(questions, question_lengths)
    decoder = model.decoder
    positions = torch.arange(tokens.shape[1])[None, :]
    real = (positions >= 1) & (positions <= lengths[:, None] - 2)
    scores = decoder.attention(states, question).masked_fill(~real, -np.inf)
    attention = torch.softmax(scores, dim=-1).detach()  # JW: batch_data.detach = True
    context = (attention[..., None] * states).sum(1)
    logits = decoder.linear_2(torch.tanh(decoder.linear_1p(context) + decoder.linear_1q(question)))
    torch.softmax(logits, dim=-1).max(dim=-1).values.sum().backward()
    importance = (embedded.grad * embedded).sum(-1).abs().detach().numpy()
    return [
        scipy.stats.kendalltau(
            attention[row, 1 : length - 1].numpy(), importance[row, 1 : length - 1]
        ).statistic
        for row, length in enumerate(lengths.tolist())
    ]


def ours(dataset: data.TextDataset, seed: int) -> tuple[TorchModel, dict, pipeline.EncodedSplit]:
    config = training.TrainConfig(
        dataset=DATASET, encoder=ENCODER, attention=ATTENTION, seed=seed,
        **training.paper_defaults(DATASET),
    )  # fmt: skip
    workdir = f"runs/isolating/babi1_lstm_tanh_s{seed}"
    history = training.run_training(config, workdir, dataset=dataset)
    run = training.load_run(workdir)
    model = TorchModel(run.model_config)
    state = to_torch_state_dict(run.params, run.model_config)
    model.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=True)
    test = pipeline.encode_split(dataset, "test", run.vocab)
    return model, {"test": history["test"]["accuracy"], "epoch": history["best_epoch"]}, test


def main(specs: list[str]) -> None:
    dataset = data.load_dataset(DATASET)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
    ).stdout.strip()
    for spec in specs:
        trainer, seed = spec.split(":")
        if trainer == "ours":
            model, best, test = ours(dataset, int(seed))
        else:
            test = pipeline.encode_split(dataset, "test", pipeline.vocabulary_for(dataset))
            best = train(dataset, ENCODER, ATTENTION, int(seed), trainer == "jax", keep_state=True)
            model = TorchModel(best["config"])
            model.load_state_dict(best["state"])
        model.eval()
        taus = jw_gradient_tau(model, test)
        row = {
            "model": spec, "test_accuracy": round(accuracy(model, test), 3),
            "reported_accuracy": best["test"], "best_epoch": best["epoch"],
            "tau_g_mean": round(float(np.nanmean(taus)), 3),
            "tau_g_std": round(float(np.nanstd(taus)), 3), "n": int(np.sum(~np.isnan(taus))),
            "commit": commit,
        }  # fmt: skip
        append_row(HERE / "tau_by_trainer.csv", row)
        print(row, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

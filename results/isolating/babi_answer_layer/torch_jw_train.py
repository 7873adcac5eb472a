"""JW's QA training loop in PyTorch, on the PyTorch twin of our model: is a collapse ours?

``tests/reference/torch_model.py`` is JW's modules (checked equal to our JAX model on the
same weights); this trains it the way JW's ``Question_Answering.Model.train`` does:
PyTorch's default initialisation, one AMSGrad Adam (lr 1e-3, weight decay 1e-5) over every
parameter, cross-entropy, batches of 50 cut from the training set sorted by passage length
with 10% noise and visited in shuffled order, 100 epochs, the epoch (after the first) with
the best dev accuracy kept. The data are the loader's, in the variants of ``ablate.py``.
Rows are appended to ``torch_jw_train.csv`` beside this file.

    python results/isolating/babi_answer_layer/torch_jw_train.py DATASET ENCODER ATTENTION \
        VARIANT SEED...      # VARIANT: one of ablate.VARIANTS' keys, e.g. "36 answers, no ?"

A seed written ``jax:S`` starts from our JAX initialisation of seed S instead (the weights
``training.run_training`` starts from with ``seed=S``, loaded through
``interop.to_torch_state_dict``), with the loop's own randomness seeded by S: JW's loop on
our starting point. Its rows say so in ``variant``.
"""

import pathlib
import sys

import jax
import numpy as np
import torch

from attn_audit import data, models
from attn_audit.data import pipeline
from attn_audit.interop import to_torch_state_dict

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ablate import VARIANTS, append_row, variant  # noqa: E402

from tests.reference.torch_model import TorchModel  # noqa: E402

BATCH, EPOCHS, NOISE = 50, 100, 0.1


def padded(sequences: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = np.array([len(s) for s in sequences])
    ids = np.zeros((len(sequences), lengths.max()), np.int64)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
    return torch.tensor(ids), torch.tensor(lengths)


def accuracy(model: TorchModel, split: pipeline.EncodedSplit) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(split), 100):
            part = slice(start, start + 100)
            tokens, lengths = padded(split.token_ids[part])
            questions, question_lengths = padded(split.question_ids[part])
            probabilities, _ = model(tokens, lengths, questions, question_lengths)
            correct += int((probabilities.argmax(-1).numpy() == split.labels[part]).sum())
    model.train()
    return correct / len(split)


def train(
    dataset: data.TextDataset,
    encoder: str,
    attention: str,
    seed: int,
    jax_init: bool = False,
    keep_state: bool = False,
) -> dict:
    """The best dev epoch's ``{"dev", "test", "epoch"}`` (+ ``"state"``, ``"config"``)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vocab = pipeline.vocabulary_for(dataset)
    splits = {name: pipeline.encode_split(dataset, name, vocab) for name in dataset.splits}
    config = models.ModelConfig(
        vocab_size=len(vocab), num_classes=dataset.num_classes, encoder=encoder,
        attention=attention, task="qa", embed_dim=50, hidden_size=32, cnn_filters=8,
    )  # fmt: skip
    model = TorchModel(config)
    if jax_init:  # as training.loop: init_key, embedding_key = split(key(seed))
        init_key, _ = jax.random.split(jax.random.key(seed))
        state = to_torch_state_dict(models.init(init_key, config), config)
        model.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5, amsgrad=True)
    train_split = splits["train"]
    lengths = np.array([len(ids) for ids in train_split.token_ids])
    best = {"dev": 0.0, "test": None, "epoch": None}
    for epoch in range(EPOCHS):
        # JW's get_sorting_index_with_noise_from_lengths, then shuffled batch starts.
        noisy = lengths + rng.uniform(-NOISE, NOISE, len(lengths)) * lengths
        order = np.argsort(noisy)
        starts = rng.permutation(np.arange(0, len(order), BATCH))
        for start in starts:
            chosen = order[start : start + BATCH]
            tokens, token_lengths = padded([train_split.token_ids[i] for i in chosen])
            questions, question_lengths = padded([train_split.question_ids[i] for i in chosen])
            probabilities, _ = model(tokens, token_lengths, questions, question_lengths)
            loss = torch.nn.functional.nll_loss(
                torch.log(probabilities.clamp_min(1e-30)),
                torch.tensor(train_split.labels[chosen], dtype=torch.int64),
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        dev = accuracy(model, splits["dev"])
        if dev > best["dev"] and epoch > 0:
            best = {"dev": dev, "test": accuracy(model, splits["test"]), "epoch": epoch + 1}
            if keep_state:
                best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best["config"] = config
        print(f"epoch {epoch + 1}: loss {loss.item():.4f} dev {dev:.4f}", flush=True)
    return best


def main(name: str, encoder: str, attention: str, variant_name: str, seeds: list[str]):
    wide, question_mark = VARIANTS[variant_name]
    dataset = variant(data.load_dataset(name), wide, question_mark)
    out = pathlib.Path(__file__).with_name("torch_jw_train.csv")
    for written in seeds:
        jax_init = written.startswith("jax:")
        seed = int(written.removeprefix("jax:"))
        best = train(dataset, encoder, attention, seed, jax_init)
        row = {
            "dataset": name, "model": f"{encoder}+{attention}", "seed": seed,
            "variant": variant_name + (", our JAX init" if jax_init else ""),
            "test_accuracy": best["test"], "best_epoch": best["epoch"],
            "dev_accuracy": best["dev"],
        }  # fmt: skip
        append_row(out, row)
        print(row, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5], sys.argv[5:])

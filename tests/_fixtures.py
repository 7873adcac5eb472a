"""Helpers that several test files share: toy SST files, tiny models and batches, attention
maps and audit records. Imported as ``from tests._fixtures import ...``; fixtures proper
live in ``tests/conftest.py`` (and ``tests/report/conftest.py``)."""

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np

from attn_audit import models
from attn_audit.audits import JWModel

# ------------------------------------------------------------------ SST files

TREES = [
    "(3 (2 It) (4 (2 's) (4 (3 a) (4 (2 -LRB-) (4 (4 great) (2 -RRB-)) (2 film)))))",
    "(2 (2 Neutral) (2 root))",
    "(1 (1 Dull) (2 (2 and) (1 (1 slow) (2 .))))",
    "(0 (0 Awful) (2 2002))",
]


def write_sst(folder, trees=TREES):
    (folder / "sst").mkdir(parents=True, exist_ok=True)
    for name in ("train.txt", "dev.txt", "test.txt"):
        (folder / "sst" / name).write_text("\n".join(trees) + "\n")
    return folder


FILLER = ["the", "film", "plot", "actor", "scene", "story", "music", "cast"]


def toy_trees(n, seed):
    """SST-style trees whose label is carried by one of four sentiment words."""
    rng = np.random.default_rng(seed)
    trees = []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        cue = rng.choice(["great", "superb"] if label else ["awful", "dull"])
        words = list(rng.choice(FILLER, int(rng.integers(6, 12))))
        words.insert(int(rng.integers(0, len(words))), cue)
        leaves = " ".join(f"(2 {w})" for w in words)
        trees.append(f"({4 if label else 0} {leaves})")
    return trees


def write_toy_sst(folder, n=96):
    folder = write_sst(folder, toy_trees(n, seed=0))
    (folder / "sst" / "dev.txt").write_text("\n".join(toy_trees(n // 2, seed=1)) + "\n")
    (folder / "sst" / "test.txt").write_text("\n".join(toy_trees(n // 2, seed=2)) + "\n")
    return folder


TINY = {"embed_dim": 8, "hidden_size": 6, "batch_size": 16}


# ------------------------------------------------------------------ JW's models (tiny)

SOS, EOS, PAD = 2, 3, 0


VOCAB_SIZE = 20


# (task, num_classes): binary gives one sigmoid output, 3 a softmax; qa has 4 candidates.
# (task, num_classes): binary gives one sigmoid output, 3 a softmax; qa has 4 candidates.
TASKS = [("classification", 2), ("classification", 3), ("qa", 4)]


def tiny_config(encoder="lstm", attention="tanh", task="classification", num_classes=2):
    """A fast model: E=8, 6 LSTM units per direction, 3 filters per CNN kernel."""
    return models.ModelConfig(
        vocab_size=VOCAB_SIZE,
        num_classes=num_classes,
        encoder=encoder,
        attention=attention,
        task=task,
        embed_dim=8,
        hidden_size=6,
        cnn_filters=3,
    )


def padded(real_tokens, num_positions):
    """``[SOS] + real_tokens + [EOS]`` padded with PAD to ``num_positions``: (ids, length)."""
    sequence = [SOS, *real_tokens, EOS]
    ids = np.full(num_positions, PAD, np.int32)
    ids[: len(sequence)] = sequence
    return ids, np.int32(len(sequence))


# Jitted once here: JAX shares compiled code between equal configs and shapes, and eager
# execution of the scans and gradients is many times slower than compiling them.
forward_batch = jax.jit(models.forward_batch, static_argnums=1)


@functools.cache
def initial_params(config, seed=0):
    """``models.init`` per (config, seed), shared by the tests; JAX arrays are immutable."""
    return models.init(jax.random.key(seed), config)


def bucketed_batches(config, seed):
    """One instance alone at T=8 (question Tq=6), and first in a batch of 3 at T=13 (Tq=9).

    The batch of 3 also holds a random instance and a data-layer padding row
    (length 0, all PAD), as the last batch of a split has.
    """
    real_tokens, question_tokens = [5, 9, 4, 17, 11], [6, 8]
    rng = np.random.default_rng(seed)
    batches = {}
    for batch_size, num_positions, question_positions in ((1, 8, 6), (3, 13, 9)):
        rows = [padded(real_tokens, num_positions)]
        questions = [padded(question_tokens, question_positions)]
        if batch_size == 3:
            rows += [padded(rng.integers(4, VOCAB_SIZE, 11), num_positions)]
            rows += [(np.zeros(num_positions, np.int32), np.int32(0))]
            questions += [padded(rng.integers(4, VOCAB_SIZE, 3), question_positions)]
            questions += [(np.zeros(question_positions, np.int32), np.int32(0))]
        columns = map(np.stack, zip(*rows, strict=True))
        batch = dict(zip(("token_ids", "lengths"), columns, strict=True))
        if config.task == "qa":
            question_columns = map(np.stack, zip(*questions, strict=True))
            batch.update(zip(("question_ids", "question_lengths"), question_columns, strict=True))
        batches[batch_size] = batch
    return batches


# ------------------------------------------------------------------ the transformer (tiny)


def tiny_transformer_config(num_classes=2, pooling="cls", num_heads=3, num_layers=2, embed_dim=12):
    """Width 12, 3 heads of 4, feed-forward 16, 2 blocks, 16 positions."""
    return models.ModelConfig(
        vocab_size=VOCAB_SIZE, num_classes=num_classes, encoder="transformer",
        attention="self", embed_dim=embed_dim, hidden_size=12, num_heads=num_heads,
        num_layers=num_layers, ff_dim=16, max_positions=16, pooling=pooling,
    )  # fmt: skip


def batch_of(rows, num_positions):
    """rows: lists of real tokens, or None for a data-layer padding row (length 0)."""
    pairs = [
        padded(r, num_positions) if r is not None else (np.zeros(num_positions, np.int32), 0)
        for r in rows
    ]
    ids, lengths = zip(*pairs, strict=True)
    return {"token_ids": np.stack(ids), "lengths": np.asarray(lengths, np.int32)}


REAL = [5, 9, 4, 17, 11]


# ------------------------------------------------------------------ audited models (tiny)

AUDITS_VOCAB_SIZE = 23


def tiny_model(encoder="lstm", attention="tanh", task="classification", num_classes=2, seed=0):
    config = models.ModelConfig(
        vocab_size=AUDITS_VOCAB_SIZE, num_classes=num_classes, encoder=encoder, attention=attention,
        task=task, embed_dim=6, hidden_size=4, cnn_filters=3,
    )  # fmt: skip
    params = models.init(jax.random.key(seed), config)
    # Larger output weights make the outputs depend visibly on every token.
    params["decoder"] = jax.tree.map(lambda w: 3.0 * w, params["decoder"])
    return JWModel(config), params


def tiny_batch(lengths=(7, 4, 9), width=12, seed=1, questions=False):
    """Rows ``[SOS] + real tokens + [EOS]`` padded to ``width``; ``lengths`` count SOS/EOS."""
    rng = np.random.default_rng(seed)
    token_ids = np.zeros((len(lengths), width), np.int32)
    for row, n in enumerate(lengths):
        token_ids[row, :n] = [2, *rng.integers(4, AUDITS_VOCAB_SIZE, n - 2), 3]
    batch = {"token_ids": token_ids, "lengths": np.asarray(lengths, np.int32)}
    if questions:
        batch["question_ids"] = np.asarray([[2, 5, 6, 3, 0]] * len(lengths), np.int32)
        batch["question_lengths"] = np.full(len(lengths), 4, np.int32)
    return batch


def instance_of(batch, row):
    instance = {"token_ids": jnp.asarray(batch["token_ids"][row]),
                "length": jnp.asarray(batch["lengths"][row])}  # fmt: skip
    if "question_ids" in batch:
        instance["question_ids"] = jnp.asarray(batch["question_ids"][row])
        instance["question_length"] = jnp.asarray(batch["question_lengths"][row])
    return instance


def forward_probabilities(model, params, token_ids, length, question=None):
    """The model's output through ``models.forward`` (not the audit code path)."""
    extra = (
        {} if question is None else {"question_ids": question[0], "question_length": question[1]}
    )
    logits, aux = models.forward(params, model.config, jnp.asarray(token_ids), length, **extra)
    return np.asarray(models.probabilities(logits, model.config)), np.asarray(aux["attention"])


CASES = [
    ("lstm", "tanh", "classification", 2), ("cnn", "dot", "classification", 2),
    ("average", "tanh", "classification", 3), ("lstm", "dot", "qa", 4),
]  # fmt: skip


def padded_batch(lengths, width, first_index=0):
    batch = tiny_batch(lengths, width)
    batch["index"] = np.arange(first_index, first_index + len(lengths), dtype=np.int32)
    return batch


# ------------------------------------------------------------------ attention maps


def random_attention(seed, layers, n, heads=3, concentration=0.3):
    """``[layers, heads, n, n]`` float32 rows drawn from a Dirichlet: peaked for small alpha."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(n, concentration), size=(layers, heads, n)).astype(np.float32)


def peaked_attention(seed, layers, n, heads=4):
    """Attention as trained transformers show it: heads on [CLS], [SEP], the previous token and
    the token itself, softmax of sharp scores plus noise."""
    rng = np.random.default_rng(seed)
    targets = [np.zeros(n, int), np.full(n, n - 1), np.maximum(np.arange(n) - 1, 0), np.arange(n)]
    scores = rng.normal(scale=1.0, size=(layers, heads, n, n))
    for head in range(heads):
        scores[:, head, np.arange(n), targets[head % 4]] += 6.0
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)).astype(np.float32)


def numpy_residual(attention):
    averaged = np.asarray(attention, np.float64).mean(axis=1)
    augmented = 0.5 * averaged + 0.5 * np.eye(averaged.shape[-1])
    return augmented / augmented.sum(-1, keepdims=True)


# ------------------------------------------------------------------ audit records

LABELS = ["negative", "positive"]


WORDS = ["the", "film", "was", "a", "remarkably", "dull", "superb", "plot", "!", "$5", "it's"]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


AUDIT_FIELDS = {
    "loo": ("loo", "tau_loo", "p_loo", "tau_gradient_loo", "p_gradient_loo"),
    "permutation": ("permutation_median_tvd",),
    "adversarial": ("adversarial_attention", "adversarial_max_jsd", "adversarial_tvd"),
}


# Attention whose max sits exactly on a bin edge: 0.25, 0.5, 0.75 and 1.0.
EDGE_ATTENTION = [[0.25] * 4, [0.5, 0.5], [0.75, 0.25], [1.0]]


def make_records(num=40, seed=0):
    """Seeded records of two classes with varied lengths, some null τ and null adversaries."""
    rng = np.random.default_rng(seed)
    records = []
    for number in range(num):
        if number < len(EDGE_ATTENTION):
            attention = np.array(EDGE_ATTENTION[number])
        else:
            attention = rng.dirichlet(np.full(int(rng.integers(3, 45)), 0.3))
        length = len(attention)
        positive = float(rng.random())
        record = {
            "id": f"ex{number}",
            "index": number,
            "tokens": [str(w) for w in rng.choice(WORDS, length)],
            "label": int(rng.integers(0, 2)),
            "prediction": [1 - positive, positive],
            "predicted_class": int(positive > 0.5),
            "attention": attention.tolist(),
            "gradient": rng.dirichlet(np.ones(length)).tolist(),
            "loo": rng.random(length).tolist(),
            "max_attention": float(attention.max()),
            "permutation_median_tvd": float(rng.random() * 0.3),
        }
        for tau_field, p_field, every in [
            ("tau_gradient", "p_gradient", 7),
            ("tau_loo", "p_loo", 5),
            ("tau_gradient_loo", "p_gradient_loo", 9),
        ]:
            undefined = number % every == 3
            record[tau_field] = None if undefined else float(rng.uniform(-0.5, 0.9))
            record[p_field] = None if undefined else float(rng.random() ** 3)
        if number % 6 == 1:
            record.update(adversarial_attention=None, adversarial_max_jsd=0.0, adversarial_tvd=0.0)
        else:
            record.update(
                adversarial_attention=rng.dirichlet(np.full(length, 0.3)).tolist(),
                adversarial_max_jsd=float(rng.uniform(0.3, 0.69)),
                adversarial_tvd=float(rng.uniform(0.0, 0.05)),
            )
        records.append(record)
    return records


def without(records, *audits):
    """``records`` with the fields of ``audits`` removed, as if those audits were not run."""
    records = copy.deepcopy(records)
    for record in records:
        for audit in audits:
            for field in AUDIT_FIELDS[audit]:
                record.pop(field, None)
    return records


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) < 200_000, (path, len(data))


@functools.cache
def _command_flags(name: str):
    """Imports ``experiments.<name>`` with its flags kept apart: ``(module, {flag: Flag})``.

    Commands reuse flag names (``--results_dir``, ``--epochs``), and absl refuses a second
    definition in one process. The module is imported with the flags already defined hidden;
    its own flags are then set aside and only put in place while it runs (``command_runner``).
    Flags that its imports define (libraries) stay defined for everyone.
    """
    import importlib

    from absl import flags

    registry = flags.FLAGS._flags()
    before = dict(registry)
    registry.clear()
    try:
        module = importlib.import_module(f"experiments.{name}")
    finally:
        defined = dict(registry)
        registry.clear()
        registry.update(before)
    own = {id(f) for f in flags.FLAGS.flags_by_module_dict().get(module.__name__, [])}
    mine = {n: f for n, f in defined.items() if id(f) in own}
    for flag_name, flag in defined.items():
        if flag_name not in mine:
            registry.setdefault(flag_name, flag)
    return module, mine


def command_runner(name: str):
    """``(module, run)``: ``run(*flags)`` runs ``experiments.<name>``'s ``main`` in this process
    with those flags (its own flags in place of other commands' of the same name), then puts
    the flags back. Uses the test session's compilation cache (``tests/conftest.py``)."""
    from absl import flags

    module, mine = _command_flags(name)

    def run(*arguments):
        registry = flags.FLAGS._flags()
        saved = dict(registry)
        registry.update(mine)
        try:
            flags.FLAGS([f"experiments.{name}", *arguments])
            module.main([])
        finally:
            flags.FLAGS.unparse_flags()
            registry.clear()
            registry.update(saved)

    return module, run


def tiny_paper_recipe(monkeypatch):
    """The paper's training recipe (``training.paper_defaults``) at the sizes of the other toy
    runs: random 8-d embeddings, 6 units, batches of 16. Commands that train with the recipe
    then compile in seconds, and share their programs with the other toy runs."""
    from attn_audit import training

    paper_defaults = training.paper_defaults

    def tiny(dataset_name):
        return {**paper_defaults(dataset_name), **TINY, "embeddings": "random"}

    monkeypatch.setattr(training, "paper_defaults", tiny)


# experiments.audit, killed (SIGKILL) as it is about to write its `die_at`-th part of a batch
# (``KILLED_AT_PART.format(repo=..., die_at=N)`` is a script; its arguments are the command's).
KILLED_AT_PART = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from absl import app
from attn_audit import batch_runner
from experiments import audit

written, write_records = [0], batch_runner.write_records

def write_or_die(path, records):
    if str(path).endswith(".tmp"):
        written[0] += 1
        if written[0] == {die_at}:
            os.kill(os.getpid(), signal.SIGKILL)
    write_records(path, records)

batch_runner.write_records = write_or_die
app.run(audit.main, argv=["audit", *sys.argv[1:]])
"""

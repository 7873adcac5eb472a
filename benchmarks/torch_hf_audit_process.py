r"""JW's four audits of a Hugging Face folder in eager PyTorch, as one process (end-to-end timing).

  python -m benchmarks.torch_hf_audit_process --model=EXPORTED_FOLDER --out=eager.npz \
      [--dataset=sst --split=test --limit=N --batch_size=32 --seed=0 --data_dir=DIR \
       --threads=gradient:2,loo:2,permutation:1,adversarial:1]

What a PyTorch user with the folder would run: loads it with ``transformers``
(``BertForSequenceClassification``, eager attention, eval mode) and its own tokenizer
(``AutoTokenizer``), reads the split's texts (attn_audit's loader and length filter,
numpy only: no JAX in this process), batches the instances sorted by length (batches of
``--batch_size``, each padded to its own longest), and runs gradient, leave-one-out,
permutation and adversarial audits (``benchmarks/torch_hf_audits.py``), each with its
``--threads`` ATen threads. Writes the per-instance results to ``--out`` (``.npz``) and prints
the seconds of each stage as JSON.
"""

import json
import time

START = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from absl import app, flags  # noqa: E402
from transformers import AutoTokenizer, BertForSequenceClassification  # noqa: E402

from attn_audit import data  # noqa: E402
from attn_audit.data import pipeline, wordpiece  # noqa: E402
from benchmarks.torch_hf_audits import HFAudits, length_sorted_batches  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "Hugging Face folder (export --format=hf).")
_OUT = flags.DEFINE_string("out", None, "Where the per-instance results go (.npz).")
_DATASET = flags.DEFINE_string("dataset", "sst", "Data set.")
_SPLIT = flags.DEFINE_string("split", "test", "Split.")
_LIMIT = flags.DEFINE_integer("limit", None, "First N instances.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Instances per batch.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the shuffles and the adversary's start.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data folder (default $ATTN_AUDIT_DATA).")
_THREADS = flags.DEFINE_list(
    "threads", [], "ATen intra-op threads per audit, e.g. gradient:2,loo:2,adversarial:1 "
    "(default: torch's own count for every audit).",
)  # fmt: skip
STAGES = ("gradient", "loo", "permutation", "adversarial")


def texts_of(dataset_name: str, split: str, data_dir, limit) -> list[str]:
    """The split's texts after JW's length filter (what ``experiments.audit`` audits)."""
    dataset = data.load_dataset(dataset_name, data_dir)
    examples = pipeline.kept_examples(dataset, split)[:limit]
    return [wordpiece.example_text(example) for example in examples]


def main(argv):
    del argv
    model = BertForSequenceClassification.from_pretrained(
        _MODEL.value, attn_implementation="eager"
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(_MODEL.value)
    texts = texts_of(_DATASET.value, _SPLIT.value, _DATA_DIR.value, _LIMIT.value)
    pieces = tokenizer(texts)["input_ids"]
    audits = HFAudits(model)
    default_threads = torch.get_num_threads()
    threads = {stage: default_threads for stage in ("predict", *STAGES)}
    threads.update({k: int(v) for k, v in (item.split(":") for item in _THREADS.value)})
    generator = torch.Generator().manual_seed(_SEED.value)
    seconds = {"startup": time.perf_counter() - START, **dict.fromkeys(STAGES, 0.0)}
    widths = [len(ids) for ids in pieces]
    results = {
        "lengths": np.asarray(widths, np.int64),
        "token_ids": np.concatenate([np.asarray(ids, np.int64) for ids in pieces]),
        "probabilities": np.zeros((len(pieces), model.config.num_labels), np.float32),
        "attention": np.zeros(sum(widths), np.float32),
        "gradient": np.zeros(sum(widths), np.float32),
        "loo": np.zeros(sum(widths), np.float32),
        "permutation_median_tvd": np.zeros(len(pieces), np.float32),
        "adversarial_max_jsd": np.zeros(len(pieces), np.float32),
    }
    offsets = np.concatenate([[0], np.cumsum(widths)])
    for indices, token_ids, lengths in length_sorted_batches(pieces, _BATCH_SIZE.value):
        torch.set_num_threads(threads["predict"])
        begin = time.perf_counter()
        probabilities, attention = audits.predict(token_ids, lengths)
        found = {"probabilities": probabilities, "attention": attention}
        seconds["predict"] = seconds.get("predict", 0.0) + time.perf_counter() - begin
        for stage in STAGES:
            torch.set_num_threads(threads[stage])
            begin = time.perf_counter()
            if stage == "permutation":
                found[stage] = audits.permutation(token_ids, lengths, generator=generator)
            elif stage == "adversarial":
                found[stage] = audits.adversarial(token_ids, lengths, generator=generator)
            else:
                found[stage] = getattr(audits, stage)(token_ids, lengths)
            seconds[stage] += time.perf_counter() - begin
        for row, index in enumerate(indices):
            piece_slice = slice(offsets[index], offsets[index + 1])
            width = widths[index]
            results["probabilities"][index] = found["probabilities"][row].numpy()
            for name in ("attention", "gradient", "loo"):
                results[name][piece_slice] = found[name][row, :width].detach().numpy()
            results["permutation_median_tvd"][index] = float(found["permutation"][row])
            results["adversarial_max_jsd"][index] = float(found["adversarial"]["max_jsd"][row])
    np.savez(_OUT.value, **results)
    seconds["total"] = time.perf_counter() - START
    print(
        json.dumps(
            {
                "instances": len(pieces),
                "batches": -(-len(pieces) // _BATCH_SIZE.value),
                "torch_threads": threads,
                "seconds": seconds,
            }
        )
    )


if __name__ == "__main__":
    flags.mark_flags_as_required(["model", "out"])
    app.run(main)

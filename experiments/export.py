r"""Exports a trained run for PyTorch users.

  python -m experiments.export --workdir=runs/sst_lstm_tanh --out=export/sst_lstm_tanh

Writes ``OUT/model.npz`` (float32; keys are the state-dict names of JW's PyTorch
code, prefixed ``encoder.`` / ``decoder.``, see ``attn_audit/interop/export.py``)
and ``OUT/config.json`` (encoder, attention, task, sizes, the vocabulary as a list
index → token, the special ids and the tokenizer settings). Takes a second.

  python -m experiments.export --workdir=runs/sst_mymodel --out=export/sst_mymodel --format=hf

writes a run of an imported Hugging Face-layout checkpoint (``--encoder=pretrained``)
back in that layout: ``config.json`` (the original, with the data set's labels),
``model.safetensors`` and the tokenizer files. ``transformers``'
``AutoModelForSequenceClassification.from_pretrained(OUT)`` loads it and gives the same
logits (``attn_audit/pretrained/hf.py``).
"""

import json
import pathlib
import sys

import numpy as np
from absl import app, flags

from attn_audit import interop
from attn_audit.pretrained import hf
from attn_audit.training.run_folder import load_run
from experiments._setup import USER_ERRORS

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder to export.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output folder.", required=True)
_FORMAT = flags.DEFINE_enum(
    "format", "npz", ["npz", "hf"],
    "npz: JW's PyTorch state-dict names; hf: the Hugging Face layout of an imported checkpoint.",
)  # fmt: skip


def export_hf(run, out: pathlib.Path) -> pathlib.Path:
    """Writes a ``--encoder=pretrained`` run as a Hugging Face-layout folder."""
    if run.config["tokenizer"].get("kind") != "checkpoint":
        raise ValueError(
            f"{run.workdir} is not a run of an imported checkpoint (--encoder=pretrained); "
            "--format=hf writes only those back. Use --format=npz."
        )
    source = run.workdir / "checkpoint"
    hf_config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    labels = tuple(run.config["data"]["label_names"])
    return hf.save_checkpoint(out, run.params, run.model_config, hf_config, labels, source)


def main(argv):
    del argv
    try:
        run = load_run(_WORKDIR.value)
        if _FORMAT.value == "hf":
            folder = export_hf(run, pathlib.Path(_OUT.value))
            print(f"Wrote {folder} (config.json, model.safetensors, tokenizer files).")
            return
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")
    out = pathlib.Path(_OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    state_dict = interop.to_torch_state_dict(run.params, run.model_config)
    np.savez(out / "model.npz", **state_dict)
    config = {
        **run.model_config.to_dict(),
        "state_dim": run.model_config.state_dim,
        "binary_output": run.model_config.binary,
        "label_names": run.config["data"]["label_names"],
        "vocab": list(run.vocab.tokens),
        "special_ids": run.config["tokenizer"]["special_ids"],
        "tokenizer": run.config["tokenizer"],
        "selected_epoch": run.best_epoch,
        "source_run": str(run.workdir),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, allow_nan=False))
    print(f"Wrote {out / 'model.npz'} ({len(state_dict)} tensors) and {out / 'config.json'}.")


if __name__ == "__main__":
    app.run(main)

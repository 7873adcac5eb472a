r"""Exports a trained run for PyTorch users.

  python -m experiments.export --workdir=runs/sst_lstm_tanh --out=export/sst_lstm_tanh

Writes ``OUT/model.npz`` (float32; keys are the state-dict names of JW's PyTorch
code, prefixed ``encoder.`` / ``decoder.``, see ``attn_audit/interop/export.py``)
and ``OUT/config.json`` (encoder, attention, task, sizes, the vocabulary as a list
index → token, the special ids and the tokenizer settings). Takes a second.
"""

import json
import pathlib
import sys

import numpy as np
from absl import app, flags

from attn_audit import interop
from attn_audit.training.run_folder import load_run
from experiments._setup import USER_ERRORS

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder to export.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output folder.", required=True)


def main(argv):
    del argv
    try:
        run = load_run(_WORKDIR.value)
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

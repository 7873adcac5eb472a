"""A run folder (``--workdir``): what one training run writes, and how to read it back.

```
<workdir>/config.json     the training config, the model config, the data set and tokenizer
<workdir>/vocab.json      the vocabulary (index → token), JW's models
<workdir>/checkpoint/     an imported Hugging Face-layout model's config.json and tokenizer files
<workdir>/metrics.json    per-epoch metrics, the selected epoch, and a "test" entry
<workdir>/checkpoints/    orbax: latest/ (to resume) and best/ (the selected epoch)
```
"""

import dataclasses
import json
import os
import pathlib
from typing import Any

import jax

from attn_audit import models
from attn_audit.data import wordpiece
from attn_audit.data.vocab import UNK, Vocabulary
from attn_audit.training.checkpoint import RunCheckpoints


def write_json(path: pathlib.Path, content: Any) -> None:
    """Writes JSON atomically (temporary file, then rename), so a crash never leaves half a file."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=2, allow_nan=False)  # NaN is not JSON
    os.replace(temporary, path)


def read_json(path: pathlib.Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} does not exist: is {path.parent} a run folder written by "
            "python -m experiments.train?"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is corrupt ({error}). Delete the run folder and train again."
        ) from None


@dataclasses.dataclass
class Run:
    """A trained run, loaded: its configs, vocabulary and the selected parameters.

    ``vocab`` is None for word-piece runs: MiniLM's (``encoder="minilm"``) tokenizer is
    ``attn_audit.data.wordpiece.load_tokenizer()``; an imported checkpoint's
    (``encoder="pretrained"``) is ``tokenizer``, read from ``<workdir>/checkpoint/``.
    """

    workdir: pathlib.Path
    config: dict
    model_config: models.ModelConfig
    vocab: Vocabulary | None
    params: dict | None
    best_epoch: int | None
    metrics: dict
    tokenizer: object = None

    def split_encoder(self):
        """``encode(dataset, split) -> EncodedSplit`` with this run's vocabulary or tokenizer."""
        return wordpiece.split_encoder(self.vocab, self.tokenizer)

    @property
    def mask_token_id(self) -> int:
        """What explainers and metrics put in place of a token by default: JW's UNK, MiniLM's
        [UNK], an imported checkpoint's own mask token ([MASK], <mask>; SPEC §10)."""
        if self.tokenizer is not None:
            return self.tokenizer.mask_id
        return UNK if self.vocab is not None else wordpiece.UNK_ID


def load_run(workdir: str | pathlib.Path, restore_params: bool = True) -> Run:
    """Loads the best (dev-selected) parameters of a finished or interrupted run.

    ``restore_params=False`` reads only the configs, vocabulary and metrics (``params`` and
    ``best_epoch`` None): enough to encode the data as the run did, for commands that read
    records and run no model.
    """
    workdir = pathlib.Path(workdir).resolve()
    if not workdir.is_dir():
        raise FileNotFoundError(
            f"The run folder {workdir} does not exist. Train first: "
            f"python -m experiments.train --workdir={workdir}"
        )
    config = read_json(workdir / "config.json")
    model_config = models.ModelConfig.from_dict(config["model"])
    vocab = tokenizer = None  # a word-piece run has its tokenizer, not a vocab.json
    kind = config.get("tokenizer", {}).get("kind")
    if kind == "checkpoint":
        from attn_audit.data.hf_tokenizer import load_tokenizer_folder

        tokenizer = load_tokenizer_folder(
            workdir / "checkpoint", model_config.vocab_size,
            model_config.max_positions - model_config.position_offset,
            config["train"].get("long_inputs", "error"),
        )  # fmt: skip
    elif kind != "wordpiece":
        vocab = Vocabulary.load(workdir / "vocab.json")
    if vocab is not None and len(vocab) != model_config.vocab_size:
        raise ValueError(
            f"{workdir}: vocab.json has {len(vocab)} ids but the model expects "
            f"{model_config.vocab_size}. The run folder is inconsistent; train again."
        )
    best_epoch = params = None
    if restore_params:
        # Shapes and dtypes only: initialising for real would compile a program per layer.
        template = jax.eval_shape(lambda key: models.init(key, model_config), jax.random.key(0))
        checkpoints = RunCheckpoints(workdir)
        try:
            best_epoch, params = checkpoints.restore("best", template)
        finally:
            checkpoints.close()
    metrics = read_json(workdir / "metrics.json") if (workdir / "metrics.json").exists() else {}
    return Run(workdir, config, model_config, vocab, params, best_epoch, metrics, tokenizer)

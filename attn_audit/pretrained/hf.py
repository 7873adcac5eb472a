"""Hugging Face-layout sequence classifiers (BERT, DistilBERT, RoBERTa, ELECTRA) in
``models.transformer``, and back (SPEC §10).

A checkpoint folder holds ``config.json``, ``model.safetensors`` (or
``pytorch_model.bin``, read only where torch is installed, with ``weights_only=True``)
and the tokenizer files (``data.hf_tokenizer``). Nothing is downloaded: a hub name
instead of a folder is an error that says how to fetch the folder first.

Every family maps onto the same pure-functional transformer (its config says what
differs, see ``ModelConfig``): stacked blocks ``encoder.layers.*[L]``, the word,
position and token-type embeddings, ELECTRA's projection after the embedding norm,
RoBERTa's position offset (``padding_idx + 1``), and the head — a ``D -> D`` layer
(``decoder.pre_classifier``: BERT's pooler + tanh, DistilBERT's ``pre_classifier`` +
ReLU, RoBERTa's ``classifier.dense`` + tanh, ELECTRA's + GELU) then the classifier
(``decoder.linear_1``). Two classes are two softmax logits, as in ``transformers``.
Token ids follow attn_audit's PAD = 0: where the checkpoint's pad id is not 0
(RoBERTa: 1), the embedding rows 0 and pad swap places, as the tokenizer's ids do.
"""

import dataclasses
import json
import pathlib
import shutil

import jax
import numpy as np
from absl import logging

from attn_audit.data.hf_tokenizer import PieceTokenizer, load_tokenizer_folder
from attn_audit.models import transformer
from attn_audit.models.config import ModelConfig
from attn_audit.pretrained.bert import BLOCK_TENSORS
from attn_audit.pretrained.minilm import file_sha256

FAMILIES = ("bert", "distilbert", "roberta", "electra")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Tokenizer and configuration files copied along with a checkpoint (run folders, export).
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
    "vocab.json", "merges.txt",
)  # fmt: skip

# Block tensors: the family's name inside ``<layers>.{i}.`` -> our layer name.
_BERT_BLOCK = BLOCK_TENSORS
_DISTILBERT_BLOCK = {
    "attention.q_lin": "query",
    "attention.k_lin": "key",
    "attention.v_lin": "value",
    "attention.out_lin": "attention_output",
    "sa_layer_norm": "attention_norm",
    "ffn.lin1": "intermediate",
    "ffn.lin2": "output",
    "output_layer_norm": "output_norm",
}


@dataclasses.dataclass(frozen=True)
class Family:
    """Where a family keeps its tensors (without the ``<prefix>.`` of its task models)."""

    prefix: str  # "bert": BertForSequenceClassification names "bert.embeddings..."
    layers: str  # "encoder.layer" or "transformer.layer"
    block: dict
    token_types: bool
    pre_classifier: str  # the head's D -> D layer (unprefixed), or the base model's pooler
    classifier: str
    classifier_activation: str
    architecture: str
    # Tensors of other heads (masked LM, pretraining): ignored, a new classifier is made.
    other_heads: tuple[str, ...]


FAMILY_LAYOUTS = {
    "bert": Family(
        "bert", "encoder.layer", _BERT_BLOCK, True, "bert.pooler.dense", "classifier", "tanh",
        "BertForSequenceClassification", ("cls.",),
    ),
    "distilbert": Family(
        "distilbert", "transformer.layer", _DISTILBERT_BLOCK, False, "pre_classifier",
        "classifier", "relu", "DistilBertForSequenceClassification",
        ("vocab_transform.", "vocab_layer_norm.", "vocab_projector."),
    ),
    "roberta": Family(
        "roberta", "encoder.layer", _BERT_BLOCK, True, "classifier.dense", "classifier.out_proj",
        "tanh", "RobertaForSequenceClassification", ("lm_head.", "pooler."),
    ),
    "electra": Family(
        "electra", "encoder.layer", _BERT_BLOCK, True, "classifier.dense", "classifier.out_proj",
        "gelu", "ElectraForSequenceClassification",
        ("generator_predictions.", "generator_lm_head.", "discriminator_predictions."),
    ),
}  # fmt: skip
# config.json's hidden_act -> ModelConfig.hidden_act ("gelu_fast" is the same tanh formula).
_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
}


@dataclasses.dataclass
class Checkpoint:
    """An imported checkpoint.

    Attributes:
      params: the parameter tree of ``models.transformer`` (float32 numpy), with a
        classifier (``has_classifier`` False: a new one, seeded by ``load_checkpoint``'s key).
      config: its ``ModelConfig``.
      tokenizer: the folder's tokenizer in attn_audit's ids.
      family: ``"bert"``, ``"distilbert"``, ``"roberta"`` or ``"electra"``.
      has_classifier: the checkpoint brought its own trained head.
      label_names: ``config.json``'s ``id2label`` in id order.
      hf_config: ``config.json`` as read.
      source: the folder, the weights file and its SHA-256.
    """

    params: dict
    config: ModelConfig
    tokenizer: PieceTokenizer
    family: str
    has_classifier: bool
    label_names: tuple[str, ...]
    hf_config: dict
    source: dict


def checkpoint_folder(folder: str | pathlib.Path) -> pathlib.Path:
    """The folder as a path, or an error that says how to get one (no network here)."""
    path = pathlib.Path(folder).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} has no config.json: a Hugging Face-layout checkpoint folder holds "
                "config.json, model.safetensors and the tokenizer files (model.save_pretrained"
                "(folder) and tokenizer.save_pretrained(folder) write them)."
            )
        return path
    if path.exists():
        raise NotADirectoryError(f"{path} is a file; pass the checkpoint's folder.")
    hint = ""
    if not str(folder).startswith((".", "/", "~")) and str(folder).count("/") <= 1:
        hint = (
            f" If {folder!r} is a Hugging Face hub name: attn_audit reads no network at run "
            f"time; download it first, e.g. `huggingface-cli download {folder} --local-dir "
            f"DIR` (or save_pretrained(DIR) the model and its tokenizer), then pass DIR."
        )
    raise FileNotFoundError(f"The checkpoint folder {path} does not exist.{hint}")


def _read_weights(folder: pathlib.Path) -> tuple[dict, pathlib.Path]:
    """Tensor name -> float32 array, from model.safetensors (or pytorch_model.bin with torch)."""
    path = folder / "model.safetensors"
    if path.is_file():
        from safetensors.numpy import load_file

        try:
            weights = load_file(str(path))
        except Exception as error:  # safetensors raises its own error types
            raise ValueError(f"{path} is damaged or not a safetensors file: {error}") from None
        return weights, path
    path = folder / "pytorch_model.bin"
    if path.is_file():
        try:
            import torch
        except ImportError:
            raise ImportError(
                f"{folder} holds pytorch_model.bin only; reading it needs torch (pip install "
                "torch), or convert it to model.safetensors (model.save_pretrained(folder, "
                "safe_serialization=True))."
            ) from None
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for damaged files
            raise ValueError(f"{path} cannot be read with weights_only=True: {error}") from None
        return {name: tensor.float().numpy() for name, tensor in state.items()}, path
    if (folder / "model.safetensors.index.json").is_file():
        raise ValueError(
            f"{folder} holds a sharded checkpoint; save it as one file first "
            "(model.save_pretrained(folder, max_shard_size='100GB'))."
        )
    raise FileNotFoundError(f"{folder} has no weights: it needs one of {', '.join(WEIGHT_FILES)}.")


def _family(hf_config: dict, path: pathlib.Path) -> str:
    family = hf_config.get("model_type")
    if family not in FAMILIES:
        raise ValueError(
            f"{path} has model_type={family!r}; attn_audit imports {', '.join(FAMILIES)} "
            "sequence classifiers."
        )
    return family


def model_config(hf_config: dict, family: str, num_classes: int) -> ModelConfig:
    """The ``ModelConfig`` of a checkpoint's ``config.json`` with ``num_classes`` classes."""
    get = hf_config.get
    if family == "distilbert":
        if get("sinusoidal_pos_embds"):
            logging.info("DistilBERT's sinusoidal positions are read from the weights.")
        sizes = {
            "hidden_size": get("dim", 768), "num_layers": get("n_layers", 6),
            "num_heads": get("n_heads", 12), "ff_dim": get("hidden_dim", 3072),
            "layer_norm_eps": 1e-12, "activation": get("activation", "gelu"), "types": 0,
        }  # fmt: skip
    else:
        sizes = {
            "hidden_size": get("hidden_size", 768), "num_layers": get("num_hidden_layers", 12),
            "num_heads": get("num_attention_heads", 12), "ff_dim": get("intermediate_size", 3072),
            "layer_norm_eps": get("layer_norm_eps", 1e-12), "activation": get("hidden_act", "gelu"),
            "types": get("type_vocab_size", 2),
        }  # fmt: skip
    if sizes["activation"] not in _ACTIVATIONS:
        raise ValueError(
            f"config.json's activation {sizes['activation']!r} is not one attn_audit runs "
            f"({', '.join(_ACTIVATIONS)})."
        )
    embed_dim = get("embedding_size", sizes["hidden_size"]) if family == "electra" else None
    return ModelConfig(
        vocab_size=get("vocab_size"), num_classes=num_classes, encoder="transformer",
        attention="self", embed_dim=embed_dim or sizes["hidden_size"],
        hidden_size=sizes["hidden_size"], num_layers=sizes["num_layers"],
        num_heads=sizes["num_heads"], ff_dim=sizes["ff_dim"],
        max_positions=get("max_position_embeddings", 512),
        layer_norm_eps=float(sizes["layer_norm_eps"]),
        hidden_act=_ACTIVATIONS[sizes["activation"]],
        classifier_activation=FAMILY_LAYOUTS[family].classifier_activation,
        token_types=sizes["types"] if FAMILY_LAYOUTS[family].token_types else 0,
        position_offset=get("pad_token_id", 1) + 1 if family == "roberta" else 0,
        projection_after_norm=bool(embed_dim and embed_dim != sizes["hidden_size"]),
        two_class_output="softmax",
    )  # fmt: skip


def label_names(hf_config: dict) -> tuple[str, ...]:
    """``id2label`` in id order (``LABEL_0`` ... when the config has none)."""
    id2label = hf_config.get("id2label")
    if id2label:
        return tuple(id2label[key] for key in sorted(id2label, key=int))
    return tuple(f"LABEL_{i}" for i in range(hf_config.get("num_labels", 2)))


class _Tensors:
    """The checkpoint's tensors by unprefixed name; remembers which were used."""

    def __init__(self, weights: dict, family: Family, path: pathlib.Path):
        self.path, self.used = path, set()
        self.weights = {}
        for name, value in weights.items():
            # Old checkpoints name layer norms gamma / beta.
            name = name.replace("LayerNorm.gamma", "LayerNorm.weight")
            name = name.replace("LayerNorm.beta", "LayerNorm.bias")
            if name.startswith(family.prefix + ".") and not name.startswith(family.pre_classifier):
                name = name[len(family.prefix) + 1 :]
            self.weights[name] = value
        # The base model (BertModel) saves its pooler without the prefix.
        if "pooler.dense.weight" in self.weights and family.prefix == "bert":
            for tensor in ("weight", "bias"):
                self.weights[f"bert.pooler.dense.{tensor}"] = self.weights.pop(
                    f"pooler.dense.{tensor}"
                )

    def __contains__(self, name):
        return name in self.weights

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in self.weights:
            raise ValueError(f"{self.path} lacks the tensor {name!r} (shape {shape}).")
        value = np.asarray(self.weights[name], np.float32)
        if value.shape != tuple(shape):
            raise ValueError(
                f"{self.path}: tensor {name!r} has shape {value.shape}, but config.json "
                f"asks for {tuple(shape)}."
            )
        self.used.add(name)
        return value

    def unused(self, ignored: tuple[str, ...]) -> list[str]:
        buffers = ("position_ids", "token_type_ids")
        return sorted(
            name for name in set(self.weights) - self.used
            if not name.startswith(ignored) and not name.endswith(buffers)
        )  # fmt: skip


def _swap_rows(matrix: np.ndarray, pad_id: int) -> np.ndarray:
    """Rows 0 and ``pad_id`` exchanged (the identity for pad_id 0)."""
    order = np.arange(matrix.shape[0])
    order[[0, pad_id]] = order[[pad_id, 0]]
    return matrix[order]


def params_from_tensors(
    weights: dict, family_name: str, config: ModelConfig, pad_id: int, path: pathlib.Path
) -> tuple[dict, bool]:
    """The ``models.transformer`` tree of a checkpoint's tensors.

    Returns:
      ``(params, has_classifier)``; without the checkpoint's own classifier the tree
      has no ``decoder.linear_1`` (``pre_classifier`` is kept where the checkpoint has it).

    Raises:
      ValueError: a tensor is missing, mis-shaped, or belongs to no known part.
    """
    family = FAMILY_LAYOUTS[family_name]
    tensors = _Tensors(weights, family, path)
    template = jax.eval_shape(lambda key: transformer.init(key, config), jax.random.key(0))
    shape = lambda *keys: _shape(template, keys)  # noqa: E731
    encoder = {
        "embedding": {
            "weight": _swap_rows(
                tensors.take("embeddings.word_embeddings.weight", shape("encoder", "embedding",
                                                                        "weight")), pad_id)
        },
        "position_embedding": {
            "weight": tensors.take("embeddings.position_embeddings.weight",
                                   shape("encoder", "position_embedding", "weight"))
        },
        "embedding_norm": {
            tensor: tensors.take(f"embeddings.LayerNorm.{tensor}",
                                 shape("encoder", "embedding_norm", tensor))
            for tensor in ("weight", "bias")
        },
    }  # fmt: skip
    if config.token_types:
        encoder["token_type_embedding"] = {
            "weight": tensors.take(
                "embeddings.token_type_embeddings.weight",
                shape("encoder", "token_type_embedding", "weight"),
            )
        }
    if config.embed_dim != config.hidden_size:
        encoder["embedding_projection"] = {
            tensor: tensors.take(f"embeddings_project.{tensor}",
                                 shape("encoder", "embedding_projection", tensor))
            for tensor in ("weight", "bias")
        }  # fmt: skip
    encoder["layers"] = {
        ours: {
            tensor: np.stack([
                tensors.take(f"{family.layers}.{i}.{theirs}.{tensor}",
                             shape("encoder", "layers", ours, tensor)[1:])
                for i in range(config.num_layers)
            ])
            for tensor in ("weight", "bias")
        }
        for theirs, ours in family.block.items()
    }  # fmt: skip
    decoder = {}
    if f"{family.pre_classifier}.weight" in tensors:
        decoder["pre_classifier"] = {
            tensor: tensors.take(f"{family.pre_classifier}.{tensor}",
                                 shape("decoder", "pre_classifier", tensor))
            for tensor in ("weight", "bias")
        }  # fmt: skip
    has_classifier = f"{family.classifier}.weight" in tensors
    if has_classifier:
        decoder["linear_1"] = {
            tensor: tensors.take(f"{family.classifier}.{tensor}",
                                 shape("decoder", "linear_1", tensor))
            for tensor in ("weight", "bias")
        }  # fmt: skip
    others = [name for name in tensors.weights if name.startswith(family.other_heads)]
    if others:
        logging.warning(
            "%s: ignoring %d tensors of another head (%s ...); a new classifier is made.",
            path, len(others), others[0],
        )  # fmt: skip
    unexpected = tensors.unused(family.other_heads)
    if unexpected:
        raise ValueError(
            f"{path}: unexpected tensors {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''} "
            f"for a {config.num_layers}-layer {family_name} model; does config.json belong to "
            "these weights?"
        )
    return {"encoder": encoder, "decoder": decoder}, has_classifier


def _shape(tree, keys) -> tuple[int, ...]:
    for key in keys:
        tree = tree[key]
    return tuple(tree.shape)


def load_checkpoint(
    folder: str | pathlib.Path,
    num_classes: int | None = None,
    key: jax.Array | None = None,
    long_inputs: str = "error",
) -> Checkpoint:
    """Imports a Hugging Face-layout checkpoint folder.

    Args:
      folder: the checkpoint folder (``config.json``, weights, tokenizer files).
      num_classes: the classes wanted. ``None`` keeps the checkpoint's head (an error if
        it has none). A number different from the checkpoint's ``num_labels``, or a
        checkpoint without a classifier, gets a new head (``transformer.init_classifier``,
        key ``key``; BERT's pooler is kept), with a warning when a trained head is dropped.
      key: initialises a new head; default ``jax.random.key(0)``.
      long_inputs: texts longer than the model reads: ``"error"`` or ``"window"``
        (``data.hf_tokenizer.PieceTokenizer``).

    Returns:
      a ``Checkpoint``.

    Raises:
      FileNotFoundError, ValueError: with the file and tensor at fault.
    """
    folder = checkpoint_folder(folder)
    config_path = folder / "config.json"
    try:
        hf_config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path} is not valid JSON ({error}).") from None
    family = _family(hf_config, config_path)
    if hf_config.get("problem_type") in ("regression", "multi_label_classification") or (
        hf_config.get("num_labels") == 1 or len(hf_config.get("id2label") or [0, 1]) == 1
    ):
        raise ValueError(
            f"{config_path}: problem_type={hf_config.get('problem_type')!r} with "
            f"{len(label_names(hf_config))} label(s); attn_audit audits single-label classifiers."
        )
    names = label_names(hf_config)
    weights, weights_path = _read_weights(folder)
    checkpoint_classes = len(names)
    config = model_config(hf_config, family, checkpoint_classes)
    pad_id = int(hf_config.get("pad_token_id", 0) or 0)
    params, has_classifier = params_from_tensors(weights, family, config, pad_id, weights_path)
    wanted = checkpoint_classes if num_classes is None else num_classes
    if num_classes is None and not has_classifier:
        raise ValueError(
            f"{weights_path} has no classifier ({FAMILY_LAYOUTS[family].classifier}.weight); "
            "fine-tune it first (python -m experiments.train --encoder=pretrained "
            f"--checkpoint={folder} ...)."
        )
    if has_classifier and wanted != checkpoint_classes:
        logging.warning(
            "%s classifies %d labels %s; the data set has %d classes, so a new classifier "
            "is trained.", folder, checkpoint_classes, list(names), wanted,
        )  # fmt: skip
        has_classifier = False
        del params["decoder"]["linear_1"]
    config = dataclasses.replace(config, num_classes=wanted)
    if not has_classifier:
        key = jax.random.key(0) if key is None else key
        new_head = jax.tree.map(np.asarray, transformer.init_classifier(key, config))
        params["decoder"] = {**new_head, **params["decoder"]}  # keeps a trained pooler
        names = tuple(f"LABEL_{i}" for i in range(wanted))
    tokenizer = load_tokenizer_folder(
        folder, config.vocab_size, config.max_positions - config.position_offset, long_inputs
    )
    if tokenizer.hf_ids["pad"] != pad_id:
        raise ValueError(
            f"{folder}: the tokenizer's pad token has id {tokenizer.hf_ids['pad']} but "
            f"config.json's pad_token_id is {pad_id}; the tokenizer does not match the model."
        )
    source = {
        "folder": str(folder),
        "weights": weights_path.name,
        "weights_sha256": file_sha256(weights_path),
    }
    return Checkpoint(params, config, tokenizer, family, has_classifier, names, hf_config, source)


# ---------------------------------------------------------------- export


def tensors_from_params(params: dict, family_name: str, config: ModelConfig, pad_id: int) -> dict:
    """The inverse of ``params_from_tensors``: the family's names (task-model prefix) to arrays."""
    family = FAMILY_LAYOUTS[family_name]
    params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
    encoder, prefix = params["encoder"], family.prefix + "."
    state = {
        "embeddings.word_embeddings.weight": _swap_rows(encoder["embedding"]["weight"], pad_id),
        "embeddings.position_embeddings.weight": encoder["position_embedding"]["weight"],
        "embeddings.LayerNorm.weight": encoder["embedding_norm"]["weight"],
        "embeddings.LayerNorm.bias": encoder["embedding_norm"]["bias"],
    }
    if "token_type_embedding" in encoder:
        state["embeddings.token_type_embeddings.weight"] = encoder["token_type_embedding"]["weight"]
    if "embedding_projection" in encoder:
        for tensor in ("weight", "bias"):
            state[f"embeddings_project.{tensor}"] = encoder["embedding_projection"][tensor]
    for theirs, ours in family.block.items():
        for tensor in ("weight", "bias"):
            for i in range(config.num_layers):
                state[f"{family.layers}.{i}.{theirs}.{tensor}"] = encoder["layers"][ours][tensor][i]
    state = {prefix + name: value for name, value in state.items()}
    decoder = params["decoder"]
    for tensor in ("weight", "bias"):
        if "pre_classifier" in decoder:
            state[f"{family.pre_classifier}.{tensor}"] = decoder["pre_classifier"][tensor]
        state[f"{family.classifier}.{tensor}"] = decoder["linear_1"][tensor]
    return {name: np.ascontiguousarray(value) for name, value in state.items()}


def copy_folder_files(source: pathlib.Path, target: pathlib.Path) -> list[str]:
    """Copies a checkpoint's ``config.json`` and tokenizer files; returns their names."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in ("config.json", *TOKENIZER_FILES):
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
            copied.append(name)
    return copied


def save_checkpoint(
    folder: str | pathlib.Path,
    params: dict,
    config: ModelConfig,
    hf_config: dict,
    labels: tuple[str, ...],
    tokenizer_folder: str | pathlib.Path,
) -> pathlib.Path:
    """Writes a fine-tuned model back as a Hugging Face-layout folder.

    ``config.json`` is the original one with the new labels and the task model's
    architecture; the tokenizer files are copied from ``tokenizer_folder``. The
    ``transformers`` class of the family loads it (``from_pretrained(folder)``) and gives
    the same logits.

    Returns:
      the folder.
    """
    from safetensors.numpy import save_file

    folder = pathlib.Path(folder)
    family = _family(hf_config, folder / "config.json")
    pad_id = int(hf_config.get("pad_token_id", 0) or 0)
    copy_folder_files(pathlib.Path(tokenizer_folder), folder)
    out_config = {
        **hf_config,
        "architectures": [FAMILY_LAYOUTS[family].architecture],
        "id2label": {str(i): name for i, name in enumerate(labels)},
        "label2id": {name: i for i, name in enumerate(labels)},
        "problem_type": "single_label_classification",
    }
    out_config.pop("num_labels", None)
    (folder / "config.json").write_text(json.dumps(out_config, indent=2), encoding="utf-8")
    tensors = tensors_from_params(params, family, config, pad_id)
    save_file(tensors, str(folder / "model.safetensors"))
    return folder

"""JAX parameters <-> PyTorch state-dict names of JW's model, as float32 numpy arrays.

The JAX parameters are stored in PyTorch layout already (``attn_audit.models``),
so export is a rename. Names follow JW's code (``Transparency``): an encoder
module with ``embedding`` and ``rnn`` / ``convolutions`` / ``projection``, and a
decoder module that owns the attention:

    encoder.embedding.weight
    encoder.rnn.{weight_ih,weight_hh,bias_ih,bias_hh}_l0[_reverse]   (lstm)
    encoder.convolutions.{i}.{weight,bias}                           (cnn, i-th kernel size)
    encoder.projection.{weight,bias}                                 (average)
    decoder.linear_1.{weight,bias}                                   (classification)
    decoder.linear_1p / linear_1q / linear_2 .{weight,bias}          (qa)
    decoder.attention.attn1.{weight,bias}, decoder.attention.attn2.weight   (tanh)
    decoder.attention.attn1.weight                                   (dot, classification)
    decoder.attention.attn1p / attn1q .{weight,bias}, .attn2.weight  (tanh, qa)
    question_encoder.*                                               (qa, as encoder.*)

``tests.reference.torch_model`` builds modules with exactly these names.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from attn_audit.models import init
from attn_audit.models.config import ModelConfig

Params = dict
ParamPath = tuple[str, ...]

_LSTM_TENSORS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_LSTM_DIRECTION_SUFFIXES = {"forward": "", "backward": "_reverse"}


def torch_parameter_paths(config: ModelConfig) -> dict[str, ParamPath]:
    """Maps every PyTorch state-dict name to the path of its JAX parameter.

    Returns:
      ``{"encoder.embedding.weight": ("encoder", "embedding", "weight"), ...}``
      in a fixed order, covering every parameter of ``init(key, config)``.
    """
    paths = {}
    encoder_names = ["encoder"] + (["question_encoder"] if config.task == "qa" else [])
    for encoder_name in encoder_names:
        paths.update(_encoder_paths(config, encoder_name))
    for name, layer, has_bias in _attention_layers(config):
        paths[f"decoder.attention.{name}.weight"] = ("attention", layer, "weight")
        if has_bias:
            paths[f"decoder.attention.{name}.bias"] = ("attention", layer, "bias")
    decoder_layers = (
        ("linear_1",) if config.task == "classification" else ("linear_1p", "linear_1q", "linear_2")
    )
    for layer in decoder_layers:
        for tensor in ("weight", "bias"):
            paths[f"decoder.{layer}.{tensor}"] = ("decoder", layer, tensor)
    return paths


def _encoder_paths(config: ModelConfig, encoder_name: str) -> dict[str, ParamPath]:
    paths = {f"{encoder_name}.embedding.weight": (encoder_name, "embedding", "weight")}
    if config.encoder == "lstm":
        for direction, suffix in _LSTM_DIRECTION_SUFFIXES.items():
            for tensor in _LSTM_TENSORS:
                paths[f"{encoder_name}.rnn.{tensor}_l0{suffix}"] = (
                    encoder_name,
                    "rnn",
                    direction,
                    tensor,
                )
    elif config.encoder == "cnn":
        for index, kernel_size in enumerate(config.cnn_kernel_sizes):
            for tensor in ("weight", "bias"):
                paths[f"{encoder_name}.convolutions.{index}.{tensor}"] = (
                    encoder_name,
                    "convolutions",
                    f"kernel_{kernel_size}",
                    tensor,
                )
    else:
        for tensor in ("weight", "bias"):
            paths[f"{encoder_name}.projection.{tensor}"] = (encoder_name, "projection", tensor)
    return paths


def _attention_layers(config: ModelConfig) -> list[tuple[str, str, bool]]:
    """(torch name, JAX key, has bias) of each attention layer."""
    if config.attention == "uniform":
        return []
    if config.attention == "dot":
        return [] if config.task == "qa" else [("attn1", "attn1", False)]
    first_layers = ["attn1p", "attn1q"] if config.task == "qa" else ["attn1"]
    return [(name, name, True) for name in first_layers] + [("attn2", "attn2", False)]


def to_torch_state_dict(params: Params, config: ModelConfig) -> dict[str, np.ndarray]:
    """The PyTorch state dict of ``params``: ``{torch name: float32 array}``.

    Save it with ``np.savez(path, **state_dict)``; load it into
    ``tests.reference.torch_model.TorchModel`` with ``strict=True``.

    Raises:
      ValueError: if ``params`` does not have exactly the leaves ``config`` implies.
    """
    paths = torch_parameter_paths(config)
    expected = set(paths.values())
    found = {
        tuple(key.key for key in key_path)
        for key_path, _ in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    if found != expected:
        raise ValueError(
            f"params do not match the {config.encoder}/{config.attention}/{config.task} model: "
            f"missing {sorted(expected - found)}, unexpected {sorted(found - expected)}. "
            "Export the params with the config they were initialised with."
        )
    return {name: np.array(_get(params, path), dtype=np.float32) for name, path in paths.items()}


def from_torch_state_dict(state_dict: Mapping[str, object], config: ModelConfig) -> Params:
    """The inverse of ``to_torch_state_dict``: JAX params from a PyTorch state dict.

    Args:
      state_dict: ``{torch name: array}``; numpy arrays, torch tensors or an
        ``np.load``-ed ``.npz`` all work.
      config: the model configuration.

    Returns:
      the parameter tree of ``attn_audit.models.init``, float32.

    Raises:
      ValueError: on missing or unexpected names, or a shape that does not fit ``config``.
    """
    paths = torch_parameter_paths(config)
    names = set(state_dict.keys())
    if names != set(paths):
        raise ValueError(
            f"The state dict does not match the {config.encoder}/{config.attention}/"
            f"{config.task} model: missing {sorted(set(paths) - names)}, unexpected "
            f"{sorted(names - set(paths))}."
        )
    reference = jax.eval_shape(lambda: init(jax.random.key(0), config))
    params: Params = {}
    for name, path in paths.items():
        value = _to_numpy(state_dict[name])
        expected_shape = _get(reference, path).shape
        if value.shape != expected_shape:
            raise ValueError(
                f"{name} has shape {value.shape}; the config expects {expected_shape}."
            )
        _set(params, path, jnp.asarray(value, dtype=jnp.float32))
    # init always builds these keys; a parameter-free attention (dot, qa) is an empty dict.
    params.setdefault("attention", {})
    return params


def _to_numpy(value: object) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _get(tree: Params, path: ParamPath):
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: Params, path: ParamPath, value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value

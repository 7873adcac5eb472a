"""A user's Flax model (``flax.linen`` or ``flax.nnx``) as an ``AuditableModel``, its code
untouched (SPEC §10 "Flax models").

``flax_model(module, variables, embed=..., logits=..., attention=..., output=...)`` gives
``(model, params)``: ``model`` is hashable (a static argument of the audits' programs) and
``params`` the pytree the audits pass back to it (linen: the variables; nnx: the state of
``nnx.split``). The user names two methods of the module, where the audits intervene
(STYLE "The functional core", after Flax's sst2 example):

- ``embed``: token ids ``[B, T]`` → embeddings ``[B, T, E]``;
- ``logits``: embeddings → logits ``[B, C]``, given the lengths and/or the padding mask
  as keyword arguments that the user names (``lengths=``, ``padding_mask=``);

and the attention to audit, either

- the path of a submodule whose ``__call__`` returns the attention distribution ``[B, T]``
  (e.g. ``"classifier/attention"``; nnx: an attribute path, ``"layers/1/attention"`` or
  ``"layers.1.attention"``); the audited α is its output renormalised over the real tokens;
- or a transformer's multi-head attention: the class ``nn.MultiHeadDotProductAttention`` /
  ``nnx.MultiHeadAttention`` (the LAST such layer called) or the path of one such layer. The
  audited α is that layer's first (CLS) query row averaged over heads and renormalised over
  the real tokens, as ``TransformerModel``'s; a new α re-weights the heads with
  ``transformer_model.mix_heads``.

How the attention is read (``encode``) and replaced (``decode``), the module never edited:

- linen (``module.apply``): a submodule's α is captured with ``capture_intermediates`` at
  its path and replaced through ``nn.intercept_methods`` (the call returns the new α).
  Multi-head weights are sown: an interceptor calls each such layer with
  ``sow_weights=True``. The CLS rows are replaced by interceptors on the layer's ``value``
  (records v) and ``out`` submodules (row 0 of out's input becomes ``Σ_t A'_h[t] v_{t,h}``).
- nnx (a merged copy of ``nnx.split``'s state, so the user's object is never touched): the
  submodule's attribute is replaced by a wrapper that records or replaces its output. Each
  multi-head layer's ``attention_fn`` is wrapped to pass ``module=`` the layer, which sows
  the weights (``nnx.Intermediate``, read with ``nnx.capture``), or to recompute row 0 of
  its output from the new rows as above.

Cost: ``decode`` re-runs the whole ``logits`` method with the attention replaced (JW's
models re-run only the decoder), so the permutation test costs one forward pass per shuffle
and the adversarial search one forward and backward pass per candidate and step.

The instance convention is the protocol's: ``token_ids [T] = [SOS/CLS] + tokens +
[EOS/SEP]`` then PAD (0), ``length`` the non-PAD positions; the model sees them with a
leading batch axis of 1 (``batched=False``: without it).
"""

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from attn_audit import models
from attn_audit.audits.protocol import original_pass
from attn_audit.audits.transformer_model import HEAD_MIXINGS, mix_heads
from attn_audit.models import real_token_mask, transformer, valid_mask

OUTPUTS = ("softmax", "sigmoid")
MULTI_HEAD_ATTENTIONS = (nn.MultiHeadDotProductAttention, nnx.MultiHeadAttention)
# The two-class view of one sigmoid output (SPEC §6) is ``models.probabilities`` of a binary
# model; this config gives it (only ``binary`` and ``output_dim`` are read).
_ONE_SIGMOID = models.ModelConfig(vocab_size=5, num_classes=2)


@dataclasses.dataclass(frozen=True)
class FlaxModel:
    """A Flax model whose attention is one submodule's output, as an ``AuditableModel``.

    Built by ``flax_model``. ``states`` is ``{"embedded": [T, E], "own": [T]}``: the
    embeddings (``decode`` re-runs the logits method on them) and the submodule's own
    output. ``decode(α)`` replaces that output by ``spread_as(own, α, length)``: the model's
    own mass off the real tokens, ``α`` times its mass on them (exactly ``α`` for an
    attention that lives on the real tokens only).

    Attributes:
      module: the linen module, or the nnx ``GraphDef``.
      embed_method, logits_method: the user's method names.
      attention_path: the audited submodule's path (names; nnx: names and list indices).
      output: ``"softmax"`` or ``"sigmoid"``.
      lengths, padding_mask: the logits method's keyword arguments that take the lengths
        ``[B]`` and the padding mask ``[B, T]`` (True on non-PAD positions); None: not passed.
      batched: the methods take and return a leading batch axis (of 1, here).
      embed_kwargs, logits_kwargs: further keyword arguments, as sorted ``(name, value)`` pairs.
      map_paths: the multi-head layers in call order (``FlaxTransformerModel``); else ().
      head_mixing: ``"reweighted"`` or ``"shared"`` (``mix_heads``; multi-head layers only).
    """

    module: Any
    embed_method: str
    logits_method: str
    attention_path: tuple
    output: str = "softmax"
    lengths: str | None = None
    padding_mask: str | None = None
    batched: bool = True
    embed_kwargs: tuple = ()
    logits_kwargs: tuple = ()
    map_paths: tuple = ()
    head_mixing: str = "reweighted"

    @property
    def is_linen(self) -> bool:
        return isinstance(self.module, nn.Module)

    @property
    def multi_head(self) -> bool:
        return bool(self.map_paths)

    # ---------------------------------------------------------------- the protocol

    def embed(self, params, instance):
        token_ids = _batched(instance["token_ids"], self.batched)
        kwargs = dict(self.embed_kwargs)
        if self.is_linen:
            embedded = self.module.apply(
                _without_intermediates(params), token_ids, method=self.embed_method, **kwargs
            )
        else:
            root = nnx.merge(self.module, params)
            embedded = getattr(root, self.embed_method)(token_ids, **kwargs)
        embedded = _unbatched(embedded, self.batched)
        if embedded.ndim != 2 or embedded.shape[0] != token_ids.shape[-1]:
            raise ValueError(
                f"{self.embed_method} must give embeddings [{_batch_prefix(self.batched)}T, E] "
                f"for token ids [{_batch_prefix(self.batched)}T]; got "
                f"{_batched(embedded, self.batched).shape} for {token_ids.shape}."
            )
        return embedded

    def encode(self, params, instance, embedded):
        _, found = self._read(params, instance, embedded)
        if self.multi_head:
            maps = found[self.map_paths.index(self.attention_path)]
            return {"embedded": embedded, "cls_rows": maps[:, 0, :]}  # [H, T]
        return {"embedded": embedded, "own": found}

    def attention(self, params, instance, states):
        rows = states["cls_rows"] if self.multi_head else states["own"][None, :]
        return transformer.audited_attention(rows[:, None, :], instance["length"])

    def decode(self, params, instance, states, alpha):
        length = instance["length"]
        if self.multi_head:
            own = jax.lax.stop_gradient(states["cls_rows"])
            new = mix_heads(own, alpha, length, self.head_mixing)
        else:
            own = jax.lax.stop_gradient(states["own"])
            new = spread_as(own, alpha, length)
        logits = self._replaced(params, instance, states["embedded"], new.astype(own.dtype))
        return self._probabilities(logits)

    def forward(self, params, instance, embedded):
        """The user's logits method on ``e``, nothing replaced or held: ``[C]`` probabilities
        (what the gradient explainers differentiate)."""
        logits, _ = self._read(params, instance, embedded)
        return self._probabilities(logits)

    # ---------------------------------------------------------------- the user's methods

    def _logits_kwargs(self, instance, num_positions: int) -> dict:
        kwargs = dict(self.logits_kwargs)
        if self.lengths is not None:
            kwargs[self.lengths] = _batched(instance["length"], self.batched)
        if self.padding_mask is not None:
            mask = valid_mask(instance["length"], num_positions)
            kwargs[self.padding_mask] = _batched(mask, self.batched)
        return kwargs

    def _probabilities(self, logits):
        shape = logits.shape
        logits = _unbatched(logits, self.batched)
        if logits.ndim != 1:
            hint = (
                "a model written for one instance (no batch axis) needs batched=False"
                if self.batched
                else "a model written for batches needs batched=True"
            )
            raise ValueError(
                f"{self.logits_method} must give logits [{_batch_prefix(self.batched)}C]; got "
                f"shape {shape}: {hint}."
            )
        if self.output == "sigmoid" and logits.shape[0] != 1:
            raise ValueError(
                f"output='sigmoid' needs one logit; {self.logits_method} gave {logits.shape[0]}: "
                "pass output='softmax' for softmax classes."
            )
        if self.output == "softmax" and logits.shape[0] == 1:
            raise ValueError(
                f"output='softmax' needs two or more logits; {self.logits_method} gave one: "
                "pass output='sigmoid' for one sigmoid unit."
            )
        if self.output == "sigmoid":
            return models.probabilities(logits, _ONE_SIGMOID)
        return jax.nn.softmax(logits)

    def _read(self, params, instance, embedded):
        """``(logits, found)``: ``found`` the submodule's output ``[T]``, or every multi-head
        layer's weights ``[L, H, T, T]`` in ``map_paths`` order."""
        num_positions = embedded.shape[0]
        inputs = _batched(embedded, self.batched)
        kwargs = self._logits_kwargs(instance, num_positions)
        read = _linen_read if self.is_linen else _nnx_read
        logits, found = read(self, params, inputs, kwargs)
        if self.multi_head:
            maps = jnp.stack([self._checked_weights(w, path, num_positions) for w, path in
                              zip(found, self.map_paths, strict=True)])  # fmt: skip
            return logits, maps
        return logits, self._checked_attention(found, num_positions)

    def _replaced(self, params, instance, embedded, new):
        """The logits with the audited attention replaced by ``new``: ``[T]`` or rows ``[H, T]``."""
        inputs = _batched(embedded, self.batched)
        kwargs = self._logits_kwargs(instance, embedded.shape[0])
        replaced = _linen_replaced if self.is_linen else _nnx_replaced
        return replaced(self, params, inputs, kwargs, new)

    def _checked_attention(self, output, num_positions: int):
        expected = (1, num_positions) if self.batched else (num_positions,)
        if output is None or output.shape != expected:
            got = "nothing" if output is None else f"shape {output.shape}"
            raise ValueError(
                f"The attention submodule {_path_text(self.attention_path)} must return the "
                f"attention distribution {list(expected)} over the positions; it returned "
                f"{got}. Point attention= at the submodule whose output is that distribution "
                "(or at the nn.MultiHeadDotProductAttention / nnx.MultiHeadAttention layer)."
            )
        return _unbatched(output, self.batched)

    def _checked_weights(self, weights, path, num_positions: int):
        heads = weights.shape[-3] if weights.ndim >= 3 else None
        expected = (heads, num_positions, num_positions)
        expected = (1, *expected) if self.batched else expected
        if weights.shape != expected:
            raise ValueError(
                f"The multi-head attention layer {_path_text(path)} gave weights of shape "
                f"{weights.shape}; the audits need self-attention over the sequence, "
                f"[{_batch_prefix(self.batched)}heads, T, T] with T = {num_positions}."
            )
        return _unbatched(weights, self.batched)


@dataclasses.dataclass(frozen=True)
class FlaxTransformerModel(FlaxModel):
    """A Flax transformer (multi-head attention layers) as an ``AuditableModel``.

    α is the audited layer's CLS row averaged over heads over the real tokens, as
    ``TransformerModel``'s; ``states`` is ``{"embedded": [T, E], "cls_rows": [H, T]}``, and
    ``decode(α)`` re-runs the logits method with that layer's CLS rows replaced by
    ``mix_heads(cls_rows, α, length, head_mixing)`` (the other rows and layers as the
    model computes them). ``attention_maps`` gives every layer's weights for rollout and flow.
    """

    def attention_maps(self, params, instance) -> jax.Array:
        """Every multi-head layer's attention ``[L, H, T, T]`` (rows queries), in call order."""
        return self._read(params, instance, self.embed(params, instance))[1]


def spread_as(own: jax.Array, alpha: jax.Array, length: jax.Array) -> jax.Array:
    """An attention output ``own [T]`` whose mass ``m`` on the real tokens is spread as ``alpha``.

    ``own'_t = own_t · α_t / α̂_t = m · α_t`` on the real tokens (``α̂ = own / m``, the audited
    α), ``own_t`` elsewhere. The ratio form gives back ``own`` bit for bit at ``α = α̂`` (the
    gradient audit's held attention); a real token where ``α̂_t = 0`` gets ``m · α_t``. One
    head of ``mix_heads``, exact at the model's own α.
    """
    real = real_token_mask(length, own.shape[0])
    own_alpha = transformer.audited_attention(own[None, None, :], length)
    real_mass = jnp.sum(jnp.where(real, own, 0.0))
    positive = real & (own_alpha > 0)
    ratio = alpha / jnp.where(positive, own_alpha, 1.0)
    return jnp.where(positive, own * ratio, jnp.where(real, real_mass * alpha, own))


# -------------------------------------------------------------------- linen


def _linen_read(model: FlaxModel, variables, inputs, kwargs):
    """``(logits, found)`` of one ``apply``: the submodule's output captured
    (``capture_intermediates``), or every multi-head layer's weights sown (``sow_weights``)."""

    def sow_weights(next_fun, args, call_kwargs, context):
        if context.method_name == "__call__" and context.module.path in model.map_paths:
            call_kwargs = {**call_kwargs, "sow_weights": True}
        return next_fun(*args, **call_kwargs)

    def capture(module, method_name):
        return method_name == "__call__" and module.path == model.attention_path

    options = {} if model.multi_head else {"capture_intermediates": capture}
    with nn.intercept_methods(sow_weights) if model.multi_head else contextlib.nullcontext():
        logits, state = model.module.apply(
            _without_intermediates(variables), inputs, method=model.logits_method,
            mutable=["intermediates"], **kwargs, **options,
        )  # fmt: skip
    intermediates = state.get("intermediates", {})
    if model.multi_head:
        return logits, [_at(intermediates, path)["attention_weights"][-1] for path in
                        model.map_paths]  # fmt: skip
    return logits, _at(intermediates, model.attention_path)["__call__"][-1]


def _linen_replaced(model: FlaxModel, variables, inputs, kwargs, new):
    """The logits with the audited submodule's output (or its layer's CLS rows) ``new``."""
    layer = model.attention_path
    values = {}

    def interceptor(next_fun, args, call_kwargs, context):
        path = context.module.path
        if context.method_name != "__call__":
            return next_fun(*args, **call_kwargs)
        if not model.multi_head and path == layer:
            own = next_fun(*args, **call_kwargs)
            return jnp.reshape(new, own.shape).astype(own.dtype)
        if model.multi_head and path == (*layer, "value"):
            values["v"] = next_fun(*args, **call_kwargs)
            return values["v"]
        if model.multi_head and path == (*layer, "out"):  # input: the attended values [.., T, H, d]
            args = (_with_cls_rows(args[0], new, values["v"]), *args[1:])
        return next_fun(*args, **call_kwargs)

    with nn.intercept_methods(interceptor):
        return model.module.apply(
            _without_intermediates(variables), inputs, method=model.logits_method, **kwargs
        )


def _without_intermediates(variables):
    # A collection sown earlier would collect this pass's values after the old ones.
    return {name: value for name, value in variables.items() if name != "intermediates"}


def _at(tree: Mapping, path: tuple):
    for name in path:
        tree = tree[name]
    return tree


def _linen_called_modules(module, variables, inputs, method, kwargs) -> dict:
    """``{path: class}`` of every submodule whose ``__call__`` the method runs, in call order."""
    called = {}

    def record(next_fun, args, call_kwargs, context):
        if context.method_name == "__call__":
            called.setdefault(context.module.path, type(context.module))
        return next_fun(*args, **call_kwargs)

    def run(variables, inputs):
        with nn.intercept_methods(record):
            return module.apply(_without_intermediates(variables), inputs, method=method, **kwargs)

    jax.eval_shape(run, variables, inputs)
    return called


# -------------------------------------------------------------------- nnx


def _nnx_read(model: FlaxModel, state, inputs, kwargs):
    """``(logits, found)`` on a merged copy: the submodule's output recorded by a wrapper in
    its place, or every multi-head layer's weights sown and read with ``nnx.capture``."""
    root = nnx.merge(model.module, state)
    logits_fn = getattr(root, model.logits_method)
    if model.multi_head:
        for path in model.map_paths:
            layer = _nnx_get(root, path)
            layer.attention_fn = _SowingAttention(layer.attention_fn, layer)
        logits, intermediates = nnx.capture(logits_fn, nnx.Intermediate)(inputs, **kwargs)
        weights = [_at(intermediates, path)["attention_weights"] for path in model.map_paths]
        return logits, [nnx.Variable.get_value(w)[-1] for w in weights]
    outputs = []
    _nnx_set(root, model.attention_path, _Recorded(_nnx_get(root, model.attention_path), outputs))
    return logits_fn(inputs, **kwargs), (outputs[-1] if outputs else None)


def _nnx_replaced(model: FlaxModel, state, inputs, kwargs, new):
    root = nnx.merge(model.module, state)
    layer = _nnx_get(root, model.attention_path)
    if model.multi_head:
        layer.attention_fn = _RowReplacedAttention(layer.attention_fn, new)
    else:
        _nnx_set(root, model.attention_path, _Replaced(layer, new))
    return getattr(root, model.logits_method)(inputs, **kwargs)


class _Recorded:
    """A submodule that records its outputs (in place of it on a merged copy)."""

    def __init__(self, inner, outputs: list):
        self.inner, self.outputs = inner, outputs

    def __call__(self, *args, **kwargs):
        self.outputs.append(self.inner(*args, **kwargs))
        return self.outputs[-1]


class _Replaced:
    """A submodule whose output is replaced by ``new`` (in place of it on a merged copy)."""

    def __init__(self, inner, new):
        self.inner, self.new = inner, new

    def __call__(self, *args, **kwargs):
        own = self.inner(*args, **kwargs)
        return jnp.reshape(self.new, own.shape).astype(own.dtype)


class _SowingAttention:
    """``attention_fn`` that sows its weights into ``layer`` (``nnx.Intermediate``, read by
    ``nnx.capture``): Flax's own functions do when given ``module=``."""

    def __init__(self, attention_fn, layer):
        self.attention_fn, self.layer = attention_fn, layer

    def __call__(self, *args, **kwargs):
        return self.attention_fn(*args, **{**kwargs, "module": self.layer})


class _RowReplacedAttention:
    """``attention_fn`` whose CLS (first query) rows become ``rows [H, T]``."""

    def __init__(self, attention_fn, rows):
        self.attention_fn, self.rows = attention_fn, rows

    def __call__(self, query, key, value, *args, **kwargs):
        return _with_cls_rows(self.attention_fn(query, key, value, *args, **kwargs), self.rows,
                              value)  # fmt: skip


def _nnx_get(root, path: tuple):
    node = root
    for part in path:
        node = node[part] if isinstance(part, int) else getattr(node, part)
    return node


def _nnx_set(root, path: tuple, value) -> None:
    parent, last = _nnx_get(root, path[:-1]), path[-1]
    if isinstance(last, int):
        parent[last] = value
    else:
        setattr(parent, last, value)


def _nnx_multi_head_layers(model: FlaxModel, state, inputs, kwargs) -> tuple:
    """The paths of the multi-head layers the logits method calls, in call order."""
    root = nnx.merge(model.module, state)
    order = []
    for path, node in nnx.iter_graph(root):
        if isinstance(node, nnx.MultiHeadAttention):
            node.attention_fn = _CallOrder(node.attention_fn, tuple(path), order)

    def run(inputs):
        return getattr(root, model.logits_method)(inputs, **kwargs)

    jax.eval_shape(run, inputs)
    return tuple(dict.fromkeys(order))


class _CallOrder:
    def __init__(self, attention_fn, path, order: list):
        self.attention_fn, self.path, self.order = attention_fn, path, order

    def __call__(self, *args, **kwargs):
        self.order.append(self.path)
        return self.attention_fn(*args, **kwargs)


# -------------------------------------------------------------------- shared helpers


def _with_cls_rows(attended, rows, value):
    """The attention output ``[..., T, H, d]`` with row 0 recomputed from ``rows [H, T]``:
    ``Σ_t rows[h, t] · value[..., t, h, :]`` (dot-product attention's weighted sum)."""
    if value.shape[-3:-1] != rows.shape[::-1] or attended.shape[-2] != rows.shape[0]:
        raise ValueError(
            f"Replacing the CLS row needs values [..., T, H, d] with (T, H) = "
            f"{rows.shape[::-1]}; got {value.shape} (grouped-query attention is not supported)."
        )
    cls = jnp.einsum("ht,...thd->...hd", rows.astype(value.dtype), value)
    return attended.at[..., 0, :, :].set(cls.astype(attended.dtype))


def _batched(x, batched: bool):
    return x[None] if batched else x


def _unbatched(x, batched: bool):
    if not batched:
        return x
    if x.ndim == 0 or x.shape[0] != 1:
        raise ValueError(
            f"batched=True: the model's outputs need a leading batch axis of 1; got {x.shape} "
            "(pass batched=False for a model written for one instance)."
        )
    return x[0]


def _batch_prefix(batched: bool) -> str:
    return "1, " if batched else ""


def _path_text(path: tuple) -> str:
    return "/".join(str(part) for part in path) or "(the root module)"


# -------------------------------------------------------------------- the public adapter


def flax_model(
    module,
    variables=None,
    *,
    embed: str,
    logits: str,
    attention,
    output: str = "softmax",
    lengths: str | None = None,
    padding_mask: str | None = None,
    batched: bool = True,
    embed_kwargs: Mapping | None = None,
    logits_kwargs: Mapping | None = None,
    head_mixing: str = "reweighted",
) -> tuple[FlaxModel, Any]:
    """A user's Flax model as an ``AuditableModel``: ``(model, params)``; see the module doc.

    Args:
      module: a ``flax.linen`` module, a ``flax.nnx`` module, or nnx's ``GraphDef``.
      variables: linen: the variables of ``module.init`` (``{"params": ...}``); nnx: None
        (the module's own state), or the ``State`` to use (with a ``GraphDef``, required).
      embed: the method taking token ids ``[B, T]`` to embeddings ``[B, T, E]``.
      logits: the method taking embeddings ``[B, T, E]`` to logits ``[B, C]``.
      attention: the path of the submodule that returns the attention ``[B, T]``
        (``"a/b"``, ``"a.b"`` or a tuple; nnx list items by index), or of a multi-head
        attention layer, or the class ``nn.MultiHeadDotProductAttention`` /
        ``nnx.MultiHeadAttention`` (its last layer called).
      output: ``"softmax"`` (C ≥ 2 classes) or ``"sigmoid"`` (one logit, the two-class view
        ``(1 − σ, σ)``, SPEC §6).
      lengths: the keyword of ``logits`` that takes the lengths ``[B]`` (non-PAD positions,
        SOS/CLS and EOS/SEP included); None: not passed.
      padding_mask: the keyword of ``logits`` that takes the bool mask ``[B, T]``, True on
        the non-PAD positions (SOS/CLS and EOS/SEP included); None: not passed.
      batched: True: the methods work on batches (the adapter passes a batch of 1);
        False: on one instance (``[T]`` ids, ``[T, E]`` embeddings, ``[C]`` logits).
      embed_kwargs, logits_kwargs: further keyword arguments (hashable values), e.g.
        ``{"deterministic": True}``.
      head_mixing: how a new α re-weights a multi-head layer's heads (``mix_heads``).

    Returns:
      ``(model, params)``: a ``FlaxModel`` (a ``FlaxTransformerModel`` for multi-head
      attention, with ``attention_maps`` for rollout and flow) and the pytree to audit it with.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}; got {output!r}.")
    if head_mixing not in HEAD_MIXINGS:
        raise ValueError(f"head_mixing must be one of {HEAD_MIXINGS}; got {head_mixing!r}.")
    module, params = _module_and_params(module, variables)
    is_linen = isinstance(module, nn.Module)
    module_class = type(module) if is_linen else type(nnx.merge(module, params))
    for role, name in (("embed", embed), ("logits", logits)):
        if not callable(getattr(module_class, name, None)):
            own = vars(module_class)
            methods = sorted(n for n in own if not n.startswith("_") and callable(own[n]))
            raise ValueError(
                f"{role}={name!r}: {module_class.__name__} has no method {name!r}; name one "
                f"of its own methods: {', '.join(methods) or '(none)'}."
            )
    fields = {
        "module": module, "embed_method": embed, "logits_method": logits, "output": output,
        "lengths": lengths, "padding_mask": padding_mask, "batched": bool(batched),
        "embed_kwargs": _frozen_items("embed_kwargs", embed_kwargs),
        "logits_kwargs": _frozen_items("logits_kwargs", logits_kwargs),
        "head_mixing": head_mixing,
    }  # fmt: skip
    probe = FlaxModel(attention_path=(), **fields)
    instance = {"token_ids": jnp.asarray([2, 1, 3], jnp.int32), "length": jnp.int32(3)}
    embedded = jax.eval_shape(probe.embed, params, instance)
    inputs = jax.ShapeDtypeStruct((1,) * batched + embedded.shape, embedded.dtype)
    kwargs = probe._logits_kwargs(instance, 3)
    if is_linen:
        called = _linen_called_modules(module, params, inputs, logits, kwargs)
        layers = {p: c for p, c in called.items() if issubclass(c, MULTI_HEAD_ATTENTIONS)}
        path = _linen_attention_path(attention, called, layers, probe)
    else:
        root = nnx.merge(module, params)
        layers = {
            p: type(_nnx_get(root, p))
            for p in _nnx_multi_head_layers(probe, params, inputs, kwargs)
        }
        path = _nnx_attention_path(attention, root, layers, probe)
    map_paths = tuple(layers) if path in layers else ()
    model_class = FlaxTransformerModel if map_paths else FlaxModel
    model = model_class(attention_path=path, map_paths=map_paths, **fields)
    try:
        hash(model)
    except TypeError as error:
        module_fields = dataclasses.fields(module) if is_linen else ()
        unhashable = [f.name for f in module_fields if not _hashable(getattr(module, f.name))]
        raise ValueError(
            f"{type(module).__name__} must be hashable (the audits pass it to jax.jit as a "
            f"static argument); its fields {unhashable or '?'} are not: use tuples, not lists "
            "or dicts."
        ) from error
    jax.eval_shape(lambda p: original_pass(model, p, instance), params)  # checks every shape
    return model, params


def _module_and_params(module, variables):
    if isinstance(module, nn.Module):
        if not isinstance(variables, Mapping) or "params" not in variables:
            raise ValueError(
                f"A linen module holds no weights: pass the variables of module.init(...) "
                f"(a dict with a 'params' collection); got {type(variables).__name__}."
            )
        return module, _without_intermediates(variables)
    if isinstance(module, nnx.Module):
        graphdef, state = nnx.split(module)
        return graphdef, state if variables is None else variables
    if isinstance(module, nnx.GraphDef):
        if variables is None:
            raise ValueError("An nnx GraphDef needs its state: pass nnx.split(module)'s pair.")
        return module, variables
    raise ValueError(
        f"module must be a flax.linen.Module (with its variables) or a flax.nnx.Module (or "
        f"the GraphDef of nnx.split with its state); got {type(module).__name__}."
    )


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _frozen_items(name: str, kwargs: Mapping | None) -> tuple:
    items = tuple(sorted((kwargs or {}).items()))
    unhashable = [key for key, value in items if not _hashable(value)]
    if unhashable:
        raise ValueError(
            f"{name} values must be hashable (static arguments of the audits); {unhashable} "
            "are not: use tuples, not lists or dicts."
        )
    return items


def _linen_attention_path(attention, called: dict, layers: dict, probe) -> tuple:
    """The audited submodule's path in a linen module (``called``: what the logits method runs)."""
    if isinstance(attention, type):
        return _last_layer_of(attention, layers, nn.MultiHeadDotProductAttention, probe)
    path = _parsed_path(attention, is_linen=True)
    if path not in called:
        listed = ", ".join(_path_text(p) for p in called if p)
        raise ValueError(
            f"attention={_path_text(path)!r} names no submodule that {probe.logits_method} "
            f"calls; pass the path of one of: {listed}."
        )
    return path


def _nnx_attention_path(attention, root, layers: dict, probe) -> tuple:
    """The audited submodule's path in a merged nnx module (``layers``: multi-head, called)."""
    if isinstance(attention, type):
        return _last_layer_of(attention, layers, nnx.MultiHeadAttention, probe)
    path = _parsed_path(attention, is_linen=False)
    try:
        node = _nnx_get(root, path)
    except (AttributeError, IndexError, KeyError, TypeError):
        node = None
    if not isinstance(node, nnx.Module):
        listed = ", ".join(_path_text(tuple(p)) for p, n in nnx.iter_graph(root)
                           if isinstance(n, nnx.Module) and p)  # fmt: skip
        raise ValueError(
            f"attention={_path_text(path)!r} names no submodule of {type(root).__name__}; "
            f"pass the path of one of: {listed}."
        )
    if isinstance(node, nnx.MultiHeadAttention) and path not in layers:
        raise ValueError(
            f"attention={_path_text(path)!r}: {probe.logits_method} never calls this layer; "
            "name a layer it calls."
        )
    return path


def _last_layer_of(attention: type, layers: dict, wanted: type, probe) -> tuple:
    """The path of the last layer of class ``attention`` that the logits method calls."""
    flavour = "linen" if wanted is nn.MultiHeadDotProductAttention else "nnx"
    expected = f"flax.{flavour}.{wanted.__name__}"
    if not issubclass(attention, MULTI_HEAD_ATTENTIONS):
        raise ValueError(
            f"attention={attention.__name__} is a class: name the attention submodule by its "
            f"path, or pass {expected} for a transformer."
        )
    if not issubclass(attention, wanted):
        raise ValueError(
            f"attention={attention.__name__} is not a flax.{flavour} layer; a {flavour} "
            f"module's multi-head attention is {expected}."
        )
    found = [path for path, cls in layers.items() if issubclass(cls, attention)]
    if not found:
        raise ValueError(
            f"attention={attention.__name__}: {probe.logits_method} calls no such layer; pass "
            "the path of the submodule that returns the attention instead."
        )
    return found[-1]


def _parsed_path(attention, is_linen: bool) -> tuple:
    if isinstance(attention, str):
        parts = attention.replace(".", "/").split("/")
    elif isinstance(attention, tuple | list):
        parts = list(attention)
    else:
        raise ValueError(
            f"attention must be a submodule's path ('classifier/attention') or a multi-head "
            f"attention class; got {type(attention).__name__}."
        )
    parts = [p for p in parts if p != ""]
    if not parts:
        raise ValueError("attention='' names the root module; name the attention submodule.")
    if is_linen:
        return tuple(str(p) for p in parts)
    return tuple(int(p) if isinstance(p, str) and p.isdigit() else p for p in parts)

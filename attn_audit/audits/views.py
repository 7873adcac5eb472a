"""Which attention, where? A transformer's attention views, each audited with JW's audits
(SPEC §3, §5, §10 "Heads").

A transformer has L × H attention maps, and JW's audits need one distribution α over the real
tokens (positions ``1 … length − 2``). Each *view* picks one, named by a label
(``attn_audit.report.views``; layers and heads 0-based):

- ``layer{l}/head{h}``: head h's CLS-query row of block l, renormalised over the real
  tokens; the permutation and adversarial audits replace that row only;
- ``layer{l}/mean``: block l's CLS rows averaged over heads (``TransformerModel`` at
  l = L − 1); a new α replaces every head's row (``mix_heads``);
- ``rollout`` / ``flow``: the last layer's CLS row of AZ's rollout / flow (``rollout``,
  ``flow``); nothing to replace.

``AttentionView(config, layer, head)`` is a head or layer-mean view as an ``AuditableModel``,
so every audit runs on it unchanged:

- ``encode`` runs blocks 0 … l: ``transformer.encode`` of the model cut after block l (whose
  "last block" is then block l), keeping block l's inputs, values, CLS rows and outputs;
- ``attention`` reads α from block l's CLS rows;
- ``decode(α)`` replaces the view's rows (one head: ``A'_h[t] = m_h · α_t`` on the real tokens,
  ``m_h`` the head's mass there, its mass on CLS/SEP kept; the mean: ``mix_heads``), recomputes
  block l at position 0 only (a query row changes only its own output), then re-runs blocks
  l + 1 … L − 1 in full (every position attends to position 0), the last of them at position
  0 only when the classifier reads CLS. At l = L − 1 that is ``TransformerModel``'s decode.
- The replaced rows are held fixed (stop-gradient), so ``gradient_importance`` holds the
  view's attention fixed (SPEC §3.1): one head's CLS row, or all of block l's CLS rows for the
  mean; every other attention map still moves with the input.

Rollout and flow are computed from every map and are no input of the model: there is nothing
to replace, so only their gradient and LOO τ are defined, and the permutation and adversarial
audits are reported absent for them (records without the fields, null in ``views.json``, "n/a"
in ``views.md``). Their gradient holds every attention map fixed
(``stop_attention_gradient="all"``).

**The sweep.** ``ViewAuditor`` runs the chosen audits of every view in the same two jitted
programs per batch shape as ``BatchAuditor`` (gradient + LOO, permutation + adversarial):
inside each, one vmap over the views of each swept layer (the head index is traced; ``H``
means the layer's mean), all vmapped over the instances. LOO's output changes do not depend on
the view (the model is the same), so they are computed once per instance and correlated with
every view's α; the views' α come from one forward pass. ``audit_views`` runs the sweep over a
split, resumably, and writes ``records.jsonl``, ``views.json`` and ``views.md``.

**Cost** per instance, V views over L layers (blocks of T positions): the gradient is one
backward pass per view (the forward pass of a layer's views is shared); LOO T − 2 forward
passes in all; the permutation test ``num_permutations`` decodes per view and the adversary
``steps × K`` decodes with their gradients per view. A decode at layer l < L − 1 runs block
l at position 0, blocks l + 1 … L − 2 in full and block L − 1 at position 0 (in full under
mean pooling); at l = L − 1 one block at position 0, as ``TransformerModel``. So a view of an
early layer costs up to L − 1 blocks per decode where the last layer's costs one row of one.
Each program holds one copy of the audits per swept layer, so compilation grows with L (a
traced layer index would compile once but run all L blocks in every decode). Flow runs on the
host (scipy max-flow, ``flow.attention_flow_row``) from the head-averaged maps.

Measured on a 2-core CPU (4 layers × 4 heads, width 64, 32 positions: 22 views, JW's settings),
per instance: gradient + LOO 0.1 s, permutation 0.5 s, adversary 28 s (early layers' views
dominate), against 0.1 s for all four audits of the last layer's mean alone; compiling about
90 + 30 + 50 s. The adversary is the sweep's cost: ``--audits=gradient,loo,permutation`` or
fewer views keep a CPU sweep short.
"""

import dataclasses
import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from attn_audit import distributed, models, stats
from attn_audit.audits import flow as flow_lib
from attn_audit.audits import rollout as rollout_lib
from attn_audit.audits.adversarial import JW_ADVERSARY, adversarial_search
from attn_audit.audits.engine import (
    AUDITS,
    audit_programs,
    checked_audits,
    loo_positions_per_chunk,
)
from attn_audit.audits.gradient import gradient_importance
from attn_audit.audits.loo import leave_one_out
from attn_audit.audits.permutation import NUM_PERMUTATIONS, permutation_median_tvd
from attn_audit.audits.runner import AuditOptions, audit_boundaries
from attn_audit.audits.transformer_model import HEAD_MIXINGS, TransformerModel, mix_heads
from attn_audit.batch_engine import BatchEngine, ProgramCall, rounded_batch_size
from attn_audit.batch_runner import check_options, first_instances, require_finite, run_batches
from attn_audit.models import is_real_token, primitives, transformer
from attn_audit.report import views as views_report
from attn_audit.report.views import RELEVANCE_VIEWS, parse_view_label, view_label

# What --attention_views accepts besides single labels.
VIEW_GROUPS = ("all", "heads", "layer_means", "rollout", "flow")


# ---------------------------------------------------------------- one view


@dataclasses.dataclass(frozen=True)
class AttentionView:
    """One head's (or one layer's head-mean) CLS attention as an ``AuditableModel``.

    Attributes:
      config: a transformer's configuration.
      layer: the block l, ``0 <= l < L``.
      head: the head h, ``0 <= h < H``, or None for the layer's head mean. Inside a sweep it
        may be a traced int scalar, ``H`` meaning the mean (the view is then not hashable:
        build it inside the traced function).
      head_mixing: how the mean view spreads a new α over the heads (``mix_heads``); a single
        head's row is replaced by ``m_h · α`` either way.

    ``states`` is ``{"inputs": [T, D] block l's inputs, "values": [T, H, d_h] its v,
    "cls_rows": [H, T] its CLS rows, "states": [T, D] its outputs (zero past length)}``.
    """

    config: models.ModelConfig
    layer: int
    head: int | None = None
    head_mixing: str = "reweighted"

    def __post_init__(self):
        if not self.config.is_transformer:
            raise ValueError(
                f"AttentionView needs encoder='transformer'; got {self.config.encoder!r}."
            )
        num_layers, num_heads = self.config.num_layers, self.config.num_heads
        if not isinstance(self.layer, int) or not 0 <= self.layer < num_layers:
            raise ValueError(
                f"layer must be an int in [0, {num_layers}) (0-based blocks); got {self.layer!r}."
            )
        if isinstance(self.head, int | np.integer) and not 0 <= self.head < num_heads:
            raise ValueError(
                f"head must be in [0, {num_heads}) or None (the layer's head mean); "
                f"got {self.head!r}."
            )
        if self.head_mixing not in HEAD_MIXINGS:
            raise ValueError(
                f"head_mixing must be one of {HEAD_MIXINGS}; got {self.head_mixing!r}."
            )

    def embed(self, params, instance):
        return transformer.embed(params, self.config, instance["token_ids"])

    def encode(self, params, instance, embedded):
        encoded = transformer.encode(
            *_cut_after(params, self.config, self.layer), embedded, instance["length"]
        )
        return {
            "inputs": encoded["last_inputs"],
            "values": encoded["last_values"],
            "cls_rows": encoded["attention_maps"][-1, :, 0, :],
            "states": encoded["states"],
        }

    def attention(self, params, instance, states):
        return view_attention(states["cls_rows"], instance["length"], self.head)

    def decode(self, params, instance, states, alpha):
        length = instance["length"]
        rows = replaced_rows(states["cls_rows"], alpha, length, self.head, self.head_mixing)
        block = _block(params, self.layer)
        cls_state = transformer.block_output(
            block, self.config, states["inputs"][:1], states["values"], rows[:, None, :]
        )[0]
        # A batch's padding row (length 0) keeps its zero state, as in the forward pass.
        cls_state = jnp.where(length > 0, cls_state, 0.0)
        outputs = later_blocks(
            params, self.config, self.layer, states["states"].at[0].set(cls_state), length
        )
        pooled = transformer.pool(self.config, outputs, length)
        return models.probabilities(transformer.classify(params, self.config, pooled), self.config)


def _is_static(head) -> bool:
    return isinstance(head, int | np.integer)


def _row_index(head, num_heads: int):
    """Index of head ``head``'s row keeping a leading axis of 1 (a traced ``H``, the mean,
    reads the last head's row, then unused)."""
    if _is_static(head):
        return slice(head, head + 1)
    return jnp.minimum(head, num_heads - 1)[None]


def view_attention(cls_rows: jax.Array, length: jax.Array, head=None) -> jax.Array:
    """A view's α from its block's CLS rows ``[H, T]``: head ``head``'s row, or the head mean
    (``head`` None, or ``H`` when traced), renormalised over the real tokens. ``[T]``."""
    if head is None:
        return transformer.audited_attention(cls_rows[:, None, :], length)
    num_heads = cls_rows.shape[0]
    single = transformer.audited_attention(cls_rows[_row_index(head, num_heads), None], length)
    if _is_static(head):
        return single
    return jnp.where(head == num_heads, view_attention(cls_rows, length), single)


def replaced_rows(
    cls_rows: jax.Array, alpha: jax.Array, length: jax.Array, head=None,
    head_mixing: str = "reweighted",
) -> jax.Array:  # fmt: skip
    """Block l's CLS rows ``[H, T]`` once the view's α is replaced by ``alpha``.

    One head: its row becomes ``m_h · α`` on the real tokens (``mix_heads`` of that row alone;
    its mass on the other positions kept), every other head's row unchanged. The head mean
    (``head`` None, or ``H`` when traced): ``mix_heads`` of every row. The replaced rows are
    held fixed (stop-gradient); the others keep their gradient.
    """
    held = jax.lax.stop_gradient(cls_rows)
    if head is None:
        return mix_heads(held, alpha, length, head_mixing)
    num_heads = cls_rows.shape[0]
    own = mix_heads(held[_row_index(head, num_heads)], alpha, length, "shared")  # [1, T]
    rows = jnp.where((jnp.arange(num_heads) == head)[:, None], own, cls_rows)
    if _is_static(head):
        return rows
    return jnp.where(head == num_heads, replaced_rows(cls_rows, alpha, length), rows)


def later_blocks(params, config, layer: int, outputs: jax.Array, length: jax.Array) -> jax.Array:
    """Blocks ``layer + 1 … L − 1`` run on block ``layer``'s outputs ``[T, D]``.

    Under CLS pooling the last block runs at position 0 only (all the classifier reads).

    Returns:
      ``[T, D]`` zero past ``length``: what ``transformer.pool`` reads (under CLS pooling only
      position 0 is the last block's; the others are the block before's).
    """
    last = config.num_layers - 1
    valid = jnp.arange(outputs.shape[0]) < length
    if layer < last:
        middle = jax.tree.map(lambda stacked: stacked[layer + 1 : last], _layers_of(params))

        def step(hidden, block):
            return _full_block(block, config, hidden, valid), None

        hidden, _ = jax.lax.scan(step, outputs, middle)
        block = _block(params, last)
        maps = transformer.attention_probabilities(block, config, hidden, valid)
        queries = 1 if config.pooling == "cls" else hidden.shape[0]
        final = transformer.block_output(
            block, config, hidden[:queries], _values(block, config, hidden), maps[:, :queries]
        )
        outputs = hidden.at[:queries].set(final)
    return jnp.where(valid[:, None], outputs, 0.0)


def _layers_of(params):
    return params["encoder"]["layers"]


def _block(params, index: int):
    return jax.tree.map(lambda stacked: stacked[index], _layers_of(params))


def _values(block, config, inputs):
    """``v`` of every position, ``[T, H, d_h]``."""
    return primitives.linear(block["value"], inputs).reshape(
        inputs.shape[0], config.num_heads, config.head_dim
    )


def _full_block(block, config, inputs, key_mask):
    maps = transformer.attention_probabilities(block, config, inputs, key_mask)
    return transformer.block_output(block, config, inputs, _values(block, config, inputs), maps)


def _cut_after(params, config, layer: int):
    """``(params, config)`` of the model cut after block ``layer`` (the whole model at L − 1)."""
    if layer == config.num_layers - 1:
        return params, config
    layers = jax.tree.map(lambda stacked: stacked[: layer + 1], _layers_of(params))
    cut = {"encoder": {**params["encoder"], "layers": layers}}
    return cut, dataclasses.replace(config, num_layers=layer + 1)


@dataclasses.dataclass(frozen=True)
class _EveryMapHeldFixed:
    """The transformer with every attention map held fixed, as an ``AuditableModel`` whose
    ``decode`` ignores α: the gradient audit of the views with nothing to replace (rollout,
    flow), which read every map. ``states`` are the logits."""

    config: models.ModelConfig

    def embed(self, params, instance):
        return transformer.embed(params, self.config, instance["token_ids"])

    def encode(self, params, instance, embedded):
        logits, _ = transformer.forward_from_embedded(
            params, self.config, embedded, instance["length"], stop_attention_gradient="all"
        )
        return logits

    def attention(self, params, instance, states):
        mask = models.real_token_mask(instance["length"], instance["token_ids"].shape[0])
        return mask / jnp.maximum(jnp.sum(mask), 1)  # unused by the gradient audit

    def decode(self, params, instance, states, alpha):
        del alpha  # nothing to replace
        return models.probabilities(states, self.config)


def rollout_attention(maps: jax.Array, length: jax.Array) -> jax.Array:
    """α of the rollout view: the last layer's rollout CLS row over the real tokens. ``[T]``.

    Args:
      maps: ``[L, H, T, T]`` attention maps; length: scalar int.
    """
    rolled = rollout_lib.rollout(maps, length)  # [L, T, T]
    return transformer.audited_attention(rolled[-1][None], length)


def flow_attention(mean_maps: np.ndarray, length: int) -> np.ndarray:
    """α of the flow view: the last layer's attention-flow CLS row over the real tokens.

    Args:
      mean_maps: ``[L, T, T]`` head-averaged maps (the flow's residual graph averages the
        heads first, so the mean gives the same flow as every head); length: real positions.

    Returns:
      float64 ``[T]``, 0 off the real tokens (all 0 for a padding row, length 0).
    """
    num_positions = mean_maps.shape[-1]
    alpha = np.zeros(num_positions)
    if length < 1:
        return alpha
    row = flow_lib.attention_flow_row(mean_maps[:, None], int(length), row=0)[-1]
    real = is_real_token(np.arange(num_positions), length)
    total = row[real].sum()
    alpha[real] = row[real] / total if total > 0 else 0.0
    return alpha


# ---------------------------------------------------------------- which views


def view_labels(config: models.ModelConfig, spec) -> tuple[str, ...]:
    """The views that ``spec`` names, in report order (layers, heads then mean, rollout, flow).

    Args:
      config: the transformer's configuration (its L and H).
      spec: a comma-separated string or a sequence of ``"all"`` (every head, every layer mean,
        rollout and flow), ``"heads"``, ``"layer_means"``, ``"rollout"``, ``"flow"`` or single
        labels ``"layer<l>/head<h>"``, ``"layer<l>/mean"``.

    Returns:
      the labels, without repeats.
    """
    if not config.is_transformer:
        raise ValueError(
            f"Attention views need a transformer (encoder='transformer'); this model's encoder "
            f"is {config.encoder!r}. Leave --attention_views empty for JW's models."
        )
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    layers, heads = range(config.num_layers), range(config.num_heads)
    chosen = set()
    for name in filter(None, names):
        if name in ("all", "heads"):
            chosen.update(view_label(layer, head) for layer in layers for head in heads)
        if name in ("all", "layer_means"):
            chosen.update(view_label(layer, None) for layer in layers)
        if name == "all":
            chosen.update(RELEVANCE_VIEWS)
        if name in VIEW_GROUPS:
            if name in RELEVANCE_VIEWS:
                chosen.add(name)
            continue
        try:
            kind, layer, head = parse_view_label(name)
        except ValueError:
            raise ValueError(
                f"Unknown attention view {name!r}; choose from {list(VIEW_GROUPS)} or labels "
                "'layer<l>/head<h>', 'layer<l>/mean' (0-based)."
            ) from None
        if layer not in layers or (head is not None and head not in heads):
            raise ValueError(
                f"Attention view {name!r} is outside the model's {config.num_layers} layers × "
                f"{config.num_heads} heads (0-based)."
            )
        chosen.add(name)
    if not chosen:
        raise ValueError(f"No attention view chosen; name some of {list(VIEW_GROUPS)}.")
    return tuple(sorted(chosen, key=functools.partial(_report_order, config.num_heads)))


def _report_order(num_heads: int, label: str) -> tuple:
    kind, layer, head = parse_view_label(label)
    if kind in RELEVANCE_VIEWS:
        return (1, RELEVANCE_VIEWS.index(kind), 0)
    return (0, layer, num_heads if head is None else head)


def view_groups(config: models.ModelConfig, labels) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """``((layer, head indices), ...)`` of the head and mean views, ``H`` for the mean, in the
    order of ``labels``: one vmapped group per layer."""
    groups = {}
    for label in labels:
        kind, layer, head = parse_view_label(label)
        if kind not in RELEVANCE_VIEWS:
            groups.setdefault(layer, []).append(config.num_heads if head is None else head)
    return tuple((layer, tuple(heads)) for layer, heads in groups.items())


# ---------------------------------------------------------------- the sweep


def audit_instance_views(
    config, params, instance, permutation_key, adversarial_key, *, groups, relevance, audits,
    predictions=True, positions_per_chunk=None, num_permutations=NUM_PERMUTATIONS,
    settings=JW_ADVERSARY, head_mixing="reweighted", permutations_per_chunk=None,
) -> dict:  # fmt: skip
    """The audits of every view of one instance.

    Args:
      config, params: the transformer.
      instance: ``token_ids [T]``, ``length``.
      permutation_key, adversarial_key: the instance's keys, shared by its views.
      groups: ``view_groups``: the views, vmapped over heads per layer.
      relevance: the relevance views swept (a subset of ``("rollout", "flow")``).
      audits: the audits to run (a subset of ``AUDITS``).
      predictions: also return the probabilities and every view's α.
      positions_per_chunk, num_permutations, settings: as ``BatchAuditor``'s.
      head_mixing: of the mean views.
      permutations_per_chunk: shuffles decoded together per view (None: all at once;
        ``view_permutations_per_chunk`` bounds the memory of a batch).

    Returns:
      over the G head/mean views in ``groups`` order: ``attention [G, T]``, ``gradient
      [G, T]``, ``permutation_median_tvd [G]``, ``adversarial_max_jsd [G]``,
      ``adversarial_tvd [G]`` (the selected candidate's output change); once per instance:
      ``probabilities [C]``, ``loo [T]``, ``rollout [T]`` (α), ``mean_maps [L, T, T]`` (for the
      flow, on the host) and ``relevance_gradient [T]`` (every map held fixed), each only when
      asked for.
    """
    length = instance["length"]
    found = {}
    per_group = []
    for layer, heads in groups:

        def one_view(head, layer=layer):
            view = AttentionView(config, layer, head, head_mixing)
            results = {}
            if "gradient" in audits:
                results["gradient"] = gradient_importance(view, params, instance)
            if "permutation" in audits:
                results["permutation_median_tvd"] = permutation_median_tvd(
                    view,
                    params,
                    instance,
                    permutation_key,
                    num_permutations,
                    permutations_per_chunk,
                )
            if "adversarial" in audits:
                search = adversarial_search(view, params, instance, adversarial_key, settings)
                results["adversarial_max_jsd"] = search["max_jsd"]
                results["adversarial_tvd"] = search["selected_tvd"]
            return results

        per_group.append(jax.vmap(one_view)(jnp.asarray(heads, jnp.int32)))
    for name in per_group[0] if per_group else ():
        found[name] = jnp.concatenate([group[name] for group in per_group])
    if predictions:
        logits, aux = transformer.forward(params, config, instance["token_ids"], length)
        found["probabilities"] = models.probabilities(logits, config)
        maps = aux["attention_maps"]  # [L, H, T, T]
        if groups:
            found["attention"] = jnp.concatenate([
                jax.vmap(lambda head, layer=layer: view_attention(maps[layer, :, 0, :], length,
                                                                  head))(jnp.asarray(heads))
                for layer, heads in groups
            ])  # fmt: skip
        if "rollout" in relevance:
            found["rollout"] = rollout_attention(maps, length)
        if "flow" in relevance:
            found["mean_maps"] = jnp.mean(maps, axis=1)
    if "loo" in audits:
        found["loo"] = leave_one_out(
            TransformerModel(config), params, instance, positions_per_chunk
        )
    if "gradient" in audits and relevance:
        found["relevance_gradient"] = gradient_importance(
            _EveryMapHeldFixed(config), params, instance
        )
    return found


_STATIC = ("config", "groups", "relevance", "audits", "predictions", "positions_per_chunk",
           "num_permutations", "settings", "head_mixing", "permutations_per_chunk")  # fmt: skip

# A view's decode may re-run whole blocks; a batch's shuffles run in steps of at most this
# many (row, view, shuffle, position) tuples: about 0.8 GB of MiniLM feed-forward activations.
VIEW_PERMUTATION_POSITIONS_PER_STEP = 2**17


def view_permutations_per_chunk(
    rows: int, num_positions: int, views_per_layer: int, num_permutations: int
) -> int | None:
    """Shuffles per step so that ``B · V · chunk · T`` stays within the budget (None: all)."""
    per_shuffle = rows * max(views_per_layer, 1) * num_positions
    if per_shuffle * num_permutations <= VIEW_PERMUTATION_POSITIONS_PER_STEP:
        return None
    return max(1, VIEW_PERMUTATION_POSITIONS_PER_STEP // per_shuffle)


@functools.partial(jax.jit, static_argnames=_STATIC)
def audit_batch_views(
    params, instances, permutation_keys, adversarial_keys, *, config, groups, relevance, audits,
    predictions, positions_per_chunk, num_permutations, settings, head_mixing,
    permutations_per_chunk=None,
):  # fmt: skip
    """``audit_instance_views`` vmapped over a batch: each result with a leading ``[B]``; the
    keyword arguments are static."""
    one = functools.partial(
        audit_instance_views, config, params, groups=groups, relevance=relevance, audits=audits,
        predictions=predictions, positions_per_chunk=positions_per_chunk,
        num_permutations=num_permutations, settings=settings, head_mixing=head_mixing,
        permutations_per_chunk=permutations_per_chunk,
    )  # fmt: skip
    return jax.vmap(one)(instances, permutation_keys, adversarial_keys)


class ViewAuditor(BatchEngine):
    """Runs the chosen audits of every view on batches (a ``BatchEngine``).

    Args:
      config: the transformer's configuration; params: its parameters.
      labels: the views (``view_labels``).
      audits: a subset of ``AUDITS``.
      key: the run's key, split as ``BatchAuditor``'s: the layer-(L − 1) mean view gets the
        same permutations and adversary initialisation as the main audit.
      adversary, num_permutations: as ``BatchAuditor``'s.
      head_mixing: of the mean views (``mix_heads``).

    Each call returns host arrays over the V views in ``labels`` order: ``attention
    [B, V, T]``, ``gradient [B, V, T]`` (rollout/flow: every map held fixed),
    ``permutation_median_tvd``, ``adversarial_max_jsd``, ``adversarial_tvd`` ``[B, V]`` (NaN
    for rollout and flow), ``probabilities [B, C]`` and ``loo [B, T]``.
    """

    def __init__(
        self, config, params, labels, audits=AUDITS, key=None, adversary=JW_ADVERSARY,
        num_permutations=NUM_PERMUTATIONS, head_mixing="reweighted",
    ):  # fmt: skip
        self.config = config
        self.labels = tuple(labels)
        self.groups = view_groups(config, self.labels)
        self.relevance = tuple(label for label in RELEVANCE_VIEWS if label in self.labels)
        self.audits = checked_audits(audits)
        self.adversary = adversary
        self.num_permutations = num_permutations
        self.head_mixing = head_mixing
        # The audits of each program, as BatchAuditor's; the first also gives the predictions.
        super().__init__(params, audit_programs(self.audits))
        key = jax.random.key(0) if key is None else key
        self.permutation_key, self.adversarial_key = jax.random.split(key)
        del key  # not used anymore

    def program_call(self, batch: dict, program: tuple[str, ...], params) -> ProgramCall:
        """``audit_batch_views`` of the audits in ``program``."""
        dynamic = {
            "params": params, "instances": self.instances(batch),
            "permutation_keys": self.keys(self.permutation_key, batch),
            "adversarial_keys": self.keys(self.adversarial_key, batch),
        }  # fmt: skip
        static = {
            "config": self.config, "groups": self.groups, "relevance": self.relevance,
            "audits": program, "predictions": program == self.programs[0],
            "positions_per_chunk": loo_positions_per_chunk(*batch["token_ids"].shape),
            "num_permutations": self.num_permutations, "settings": self.adversary,
            "head_mixing": self.head_mixing,
            "permutations_per_chunk": view_permutations_per_chunk(
                *batch["token_ids"].shape,
                max((len(heads) for _, heads in self.groups), default=1),
                self.num_permutations,
            ),
        }  # fmt: skip
        return ProgramCall(audit_batch_views, static, dynamic)

    def __call__(self, batch: dict) -> dict[str, np.ndarray]:
        """Audits every view of one batch; see the class docstring for the keys."""
        return self._by_label(batch, super().__call__(batch))

    def _by_label(self, batch: dict, found: dict) -> dict[str, np.ndarray]:
        """Results over the views in ``labels`` order (rollout and flow after the others)."""
        lengths = batch["lengths"]
        relevance_attention = []
        if "rollout" in self.relevance:
            relevance_attention.append(found.pop("rollout"))
        if "flow" in self.relevance:
            mean_maps = found.pop("mean_maps").astype(np.float64)
            relevance_attention.append(
                np.stack([flow_attention(m, n) for m, n in zip(mean_maps, lengths, strict=True)])
            )
        results = {"probabilities": found["probabilities"]}
        if "loo" in found:
            results["loo"] = found["loo"]
        batch_size, num_positions = batch["token_ids"].shape
        num_relevance = len(self.relevance)

        def with_relevance(name, per_view_shape, relevance_values):
            own = found.get(name, np.zeros((batch_size, 0, *per_view_shape)))
            return np.concatenate([own, *[v[:, None] for v in relevance_values]], axis=1)

        results["attention"] = with_relevance(
            "attention", (num_positions,), [np.asarray(a, np.float32) for a in relevance_attention]
        )
        if "gradient" in self.audits:
            results["gradient"] = with_relevance(
                "gradient", (num_positions,),
                [found.get("relevance_gradient")] * num_relevance,
            )  # fmt: skip
        for name in ("permutation_median_tvd", "adversarial_max_jsd", "adversarial_tvd"):
            if name in found:
                results[name] = with_relevance(
                    name, (), [np.full(batch_size, np.nan)] * num_relevance
                )
        return results


# ---------------------------------------------------------------- records and the run

VIEW_FIELDS = ("max_attention", "tau_gradient", "p_gradient", "tau_loo", "p_loo",
               "permutation_median_tvd", "adversarial_max_jsd", "adversarial_tvd")  # fmt: skip


def view_records(batch: dict, results: dict, split, labels) -> list[dict]:
    """One record per real row of ``batch``: ``{"id", "index", "label", "predicted_class",
    "num_tokens", "views": {label: {VIEW_FIELDS present}}}``; a τ and its p null when
    undefined; rollout and flow have no permutation or adversarial field."""
    num_positions = batch["token_ids"].shape[1]
    real_mask = is_real_token(np.arange(num_positions)[None, :], batch["lengths"][:, None])
    attention = np.asarray(results["attention"], np.float64)  # [B, V, T]
    taus = {}
    for name in ("gradient", "loo"):
        if name not in results:
            continue
        scores = np.asarray(results[name], np.float64)
        for v in range(len(labels)):
            other = scores[:, v] if scores.ndim == 3 else scores
            taus[name, v] = stats.kendall_tau_b(attention[:, v], other, real_mask)
    records = []
    for row in np.flatnonzero(batch["index"] >= 0):
        index = int(batch["index"][row])
        real = real_mask[row]
        views = {}
        for v, label in enumerate(labels):
            view = {"max_attention": float(attention[row, v][real].max())}
            for name in ("gradient", "loo"):
                if (name, v) in taus:
                    tau, p_value = (float(x[row]) for x in taus[name, v])
                    view[f"tau_{name}"] = None if np.isnan(tau) else tau
                    view[f"p_{name}"] = None if np.isnan(p_value) else p_value
            if label not in RELEVANCE_VIEWS:
                for name in ("permutation_median_tvd", "adversarial_max_jsd", "adversarial_tvd"):
                    if name in results:
                        view[name] = float(results[name][row, v])
            views[label] = view
        record = {
            "id": split.examples[batch["row"][row]].id,
            "index": index,
            "label": int(split.labels[batch["row"][row]]),
            "predicted_class": int(np.argmax(results["probabilities"][row])),
            "num_tokens": int(real.sum()),
            "views": views,
        }
        require_finite(
            record, {f"{label} {k}": v for label in views for k, v in views[label].items()}
        )
        records.append(record)
    return records


def audit_views(
    config, params, split, views, out_dir, options: AuditOptions | None = None,
    head_mixing: str = "reweighted", q: float = 0.05,
) -> tuple[list[dict], dict | None]:  # fmt: skip
    """Audits every view of a transformer over a split; resumable like ``run_audit``.

    Args:
      config, params: the transformer.
      split: the encoded split (``options.limit`` applies).
      views: a ``view_labels`` spec (e.g. ``"all"`` or ``["heads", "rollout"]``).
      out_dir: where ``views_config.json``, ``parts/``, ``records.jsonl`` (per instance, every
        view), ``views.json`` (``report.views.summarize_views`` plus timings) and ``views.md``
        (its tables: layers as rows, heads as columns) go.
      options: the audits, seed, batch size, buckets, permutations and adversary, as for
        ``run_audit`` (the same seed gives the layer-(L − 1) mean the main audit's keys).
      head_mixing: of the mean views.
      q: the false discovery rate of the Benjamini–Hochberg corrections.

    Returns:
      ``(records in data order, summary)``; in a job of several processes, the summary
      (and the files) only from process 0, None from the others (their own records).
    """
    options = AuditOptions() if options is None else options
    labels = view_labels(config, views)
    out_dir = pathlib.Path(out_dir)
    saved = {**options.to_dict(), "views": list(labels), "head_mixing": head_mixing}
    check_options(out_dir, saved, "views_config.json")
    split = first_instances(split, options.limit)
    auditor = ViewAuditor(
        config, params, labels, options.audits, jax.random.key(options.seed), options.adversary,
        options.num_permutations, head_mixing,
    )  # fmt: skip
    batch_size = rounded_batch_size(options.batch_size, auditor.num_devices)
    records, timings = run_batches(
        auditor, split, audit_boundaries(split, options.num_buckets), batch_size, out_dir,
        lambda batch, results: view_records(batch, results, split, labels),
    )  # fmt: skip
    if distributed.process_index() != 0:  # a job of several processes: process 0 sums up
        return records, None
    summary = views_report.summarize_views(records, labels, config.num_layers, config.num_heads, q)
    summary["timings"] = timings
    (out_dir / "views.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    (out_dir / "views.md").write_text(views_report.views_markdown(summary))
    return records, summary

"""Model parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps";
SPEC §8): the model's blocks re-initialised with their own initialisers.

Blocks, from the output down: ``decoder``, ``attention``, ``encoder``, ``embeddings``.

- JW models: ``params["decoder"]``, ``params["attention"]``, the encoders' (and the
  question encoder's) weights, and their ``embedding`` tables.
- Transformers: the classifier; every block's attention (query, key, value and output
  projections); the rest of the blocks (feed-forward, layer norms); and the embeddings
  (tokens, positions, token types, their projection and layer norm); an imported
  checkpoint's head (BERT's pooler, ``pre_classifier``) is part of the decoder.

The cascading variant randomises the decoder, then the decoder and attention, and so on
down to every block; the independent variant one block at a time. Leaves outside the
randomised blocks are the original arrays themselves (bit-identical).
"""

import jax

BLOCKS = ("decoder", "attention", "encoder", "embeddings")
# Transformer leaves under encoder/layers that belong to attention.
_TRANSFORMER_ATTENTION = ("query", "key", "value", "attention_output")


def _names(path) -> tuple[str, ...]:
    return tuple(getattr(entry, "key", getattr(entry, "name", str(entry))) for entry in path)


def parameter_block(names: tuple[str, ...]) -> str:
    """The block of the parameter at ``names`` (its path of dict keys)."""
    top = names[0]
    if top in ("decoder", "attention"):
        return top
    if top not in ("encoder", "question_encoder"):
        raise ValueError(
            f"Parameter {'/'.join(names)} belongs to no block of {list(BLOCKS)}; "
            "randomisation knows attn_audit's JW and transformer parameter trees."
        )
    if names[1] == "layers":
        return "attention" if names[2] in _TRANSFORMER_ATTENTION else "encoder"
    embeddings = ("embedding", "position_embedding", "token_type_embedding")
    return "embeddings" if names[1].startswith(embeddings) else "encoder"


def parameter_blocks(params) -> dict:
    """A tree like ``params`` holding each leaf's block name."""
    return jax.tree_util.tree_map_with_path(lambda p, _: parameter_block(_names(p)), params)


def blocks_without_parameters(params) -> tuple[str, ...]:
    """The blocks of ``BLOCKS`` that hold no parameter in ``params`` (e.g. dot attention in a
    QA model): re-initialising one of them alone changes nothing, so its ρ is 1 by construction."""
    present = set(jax.tree.leaves(parameter_blocks(params)))
    return tuple(block for block in BLOCKS if block not in present)


def randomisation_variants() -> dict[str, tuple[str, ...]]:
    """Variant name → the blocks it re-initialises, in report order.

    ``cascade/<b>`` randomises every block from the decoder down to ``b``;
    ``independent/<b>`` randomises ``b`` alone (``independent/decoder`` is
    ``cascade/decoder``, listed under both).
    """
    variants = {f"cascade/{b}": BLOCKS[: i + 1] for i, b in enumerate(BLOCKS)}
    variants.update({f"independent/{b}": (b,) for b in BLOCKS})
    return variants


def randomised_params(params, fresh, blocks) -> dict:
    """``params`` with the leaves of ``blocks`` taken from ``fresh`` (a new initialisation).

    Args:
      params: the trained parameters.
      fresh: ``models.init(new_key, config)``, the same tree.
      blocks: block names from ``BLOCKS``.
    """
    unknown = sorted(set(blocks) - set(BLOCKS))
    if unknown:
        raise ValueError(f"Unknown blocks {unknown}; choose from {list(BLOCKS)}.")
    if jax.tree.structure(params) != jax.tree.structure(fresh):
        raise ValueError(
            "The fresh initialisation's parameter tree differs from the trained one: "
            "initialise it with the trained model's own configuration."
        )
    return jax.tree.map(
        lambda block, trained, new: new if block in blocks else trained,
        parameter_blocks(params), params, fresh,
    )  # fmt: skip

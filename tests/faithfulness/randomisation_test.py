"""attn_audit.faithfulness.randomisation: every parameter belongs to one block, randomising
blocks replaces exactly those leaves with a fresh initialisation and leaves the others
bit-identical, and the variants cascade from the output down."""

import dataclasses

import jax
import numpy as np
import pytest

from attn_audit import models
from attn_audit.faithfulness import randomisation
from tests._fixtures import tiny_config, tiny_transformer_config


def leaves_by_block(params):
    blocks = randomisation.parameter_blocks(params)
    named = jax.tree_util.tree_leaves_with_path(blocks)
    return {jax.tree_util.keystr(path): block for path, block in named}


def test_blocks_of_jw_models_and_transformers():
    lstm_qa = leaves_by_block(models.init(jax.random.key(0), tiny_config("lstm", task="qa")))
    assert lstm_qa["['encoder']['embedding']['weight']"] == "embeddings"
    assert lstm_qa["['question_encoder']['embedding']['weight']"] == "embeddings"
    assert {b for k, b in lstm_qa.items() if "['rnn']" in k} == {"encoder"}
    assert {b for k, b in lstm_qa.items() if k.startswith("['attention']")} == {"attention"}
    assert {b for k, b in lstm_qa.items() if k.startswith("['decoder']")} == {"decoder"}
    transformer = leaves_by_block(models.init(jax.random.key(0), tiny_transformer_config()))
    assert transformer["['encoder']['layers']['query']['weight']"] == "attention"
    assert transformer["['encoder']['layers']['attention_output']['bias']"] == "attention"
    assert transformer["['encoder']['layers']['intermediate']['weight']"] == "encoder"
    assert transformer["['encoder']['layers']['attention_norm']['weight']"] == "encoder"
    assert transformer["['encoder']['position_embedding']['weight']"] == "embeddings"
    assert transformer["['encoder']['embedding_norm']['bias']"] == "embeddings"
    assert transformer["['decoder']['linear_1']['weight']"] == "decoder"
    # An imported BERT's token types, ELECTRA's projection and the head's layer (SPEC §10).
    imported_config = dataclasses.replace(
        tiny_transformer_config(embed_dim=8),
        token_types=2,
        classifier_activation="tanh",
        projection_after_norm=True,
    )
    imported = leaves_by_block(models.init(jax.random.key(0), imported_config))
    assert imported["['encoder']['token_type_embedding']['weight']"] == "embeddings"
    assert imported["['encoder']['embedding_projection']['weight']"] == "embeddings"
    assert imported["['decoder']['pre_classifier']['weight']"] == "decoder"
    for tree in (lstm_qa, transformer, imported):
        assert set(tree.values()) == set(randomisation.BLOCKS)


def test_blocks_without_parameters_are_named():
    def empty(config):
        return randomisation.blocks_without_parameters(models.init(jax.random.key(0), config))

    assert empty(tiny_config("lstm", "tanh", task="qa")) == ()
    assert empty(tiny_config("lstm", "dot", task="qa")) == ("attention",)  # u·v, no weights
    assert empty(tiny_transformer_config()) == ()


@pytest.mark.parametrize("encoder", ["lstm", "cnn", "average"])
def test_randomising_blocks_replaces_those_leaves_only(encoder):
    config = tiny_config(encoder)
    params = models.init(jax.random.key(0), config)
    fresh = models.init(jax.random.key(1), config)
    blocks = leaves_by_block(params)
    for name, chosen in randomisation.randomisation_variants().items():
        randomised = randomisation.randomised_params(params, fresh, chosen)
        for (path, new), old, again in zip(jax.tree_util.tree_leaves_with_path(randomised),
                                           jax.tree.leaves(params), jax.tree.leaves(fresh),
                                           strict=True):  # fmt: skip
            source = again if blocks[jax.tree_util.keystr(path)] in chosen else old
            np.testing.assert_array_equal(new, source, err_msg=f"{name} {path}")
            assert new is source  # the very array: bit-identical, nothing recomputed
        assert not np.array_equal(
            jax.tree.leaves(randomised["decoder"])[0], jax.tree.leaves(params["decoder"])[0]
        ) == ("decoder" in chosen)


def test_variants_cascade_from_the_output_down():
    variants = randomisation.randomisation_variants()
    assert variants["cascade/decoder"] == ("decoder",)
    assert variants["cascade/encoder"] == ("decoder", "attention", "encoder")
    assert variants["cascade/embeddings"] == randomisation.BLOCKS
    assert variants["independent/attention"] == ("attention",)
    assert len(variants) == 8


def test_wrong_trees_and_blocks_are_clear_errors():
    params = models.init(jax.random.key(0), tiny_config("cnn"))
    other = models.init(jax.random.key(0), tiny_config("lstm"))
    with pytest.raises(ValueError, match="parameter tree differs"):
        randomisation.randomised_params(params, other, ("decoder",))
    with pytest.raises(ValueError, match="Unknown blocks"):
        randomisation.randomised_params(params, params, ("head",))
    with pytest.raises(ValueError, match="belongs to no block"):
        randomisation.parameter_blocks({"classifier": {"w": np.zeros(2)}})

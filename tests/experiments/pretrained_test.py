"""A Hugging Face-layout checkpoint through the commands: train (fine-tune, or --no_train),
audit, explain, and export --format=hf, which ``transformers`` loads with the same logits."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from attn_audit import data  # noqa: E402
from attn_audit.data import wordpiece  # noqa: E402
from attn_audit.models import transformer  # noqa: E402
from attn_audit.training.run_folder import load_run  # noqa: E402
from tests._fixtures import command_runner, write_toy_sst  # noqa: E402
from tests.reference.hf_checkpoints import make_checkpoint  # noqa: E402


def _common(data_dir, workdir, checkpoint):
    return [
        "--dataset=sst", f"--data_dir={data_dir}", f"--workdir={workdir}",
        "--encoder=pretrained", f"--checkpoint={checkpoint}",
    ]  # fmt: skip


def test_a_checkpoint_fine_tunes_audits_and_exports_back(tmp_path, capsys):
    data_dir = write_toy_sst(tmp_path / "data", n=40)
    checkpoint = tmp_path / "roberta"
    make_checkpoint("roberta", checkpoint, num_labels=2)
    workdir = tmp_path / "run"
    _, run_train = command_runner("train")
    run_train(*_common(data_dir, workdir, checkpoint), "--epochs=1", "--batch_size=8")
    assert "sst pretrained+self: test accuracy" in capsys.readouterr().out
    run = load_run(workdir)
    assert run.config["tokenizer"]["kind"] == "checkpoint"
    assert run.config["tokenizer"]["family"] == "roberta"
    assert run.tokenizer.id_to_token(run.mask_token_id) == "<mask>"  # not <unk>
    assert (workdir / "checkpoint" / "tokenizer.json").is_file()

    _, run_audit = command_runner("audit")
    run_audit(f"--workdir={workdir}", f"--data_dir={data_dir}", "--limit=4", "--batch_size=4")
    records = (workdir / "audit" / "test" / "records.jsonl").read_text().splitlines()
    assert len(records) == 4
    first = json.loads(records[0])
    assert first["tokens"] and all(np.isfinite(first["gradient"]))
    # Per word as well as per piece (SPEC §10): the words as written, attention summed.
    dataset = data.load_dataset("sst", data_dir)
    text = data.pipeline.kept_examples(dataset, "test")[first["index"]].text
    assert first["words"] and all(word in text for word in first["words"])
    assert len(first["word_index"]) == len(first["tokens"])
    assert len(first["word_attention"]) == len(first["words"])
    np.testing.assert_allclose(sum(first["word_attention"]), 1.0, atol=1e-5)
    for word in range(len(first["words"])):
        pieces = [i for i, w in enumerate(first["word_index"]) if w == word]
        np.testing.assert_allclose(
            first["word_loo"][word], sum(first["loo"][i] for i in pieces), atol=1e-9
        )
    assert "word_tau_loo" in first

    out = tmp_path / "export"
    _, run_export = command_runner("export")
    run_export(f"--workdir={workdir}", f"--out={out}", "--format=hf")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert model.config.id2label == {0: "negative", 1: "positive"}
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    texts = ["a gripping , funny film", "the plot is thin"]
    with torch.no_grad():
        theirs = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()
    params = jax.tree.map(jnp.asarray, run.params)
    for row, text in enumerate(texts):
        ids = wordpiece.encode_text(run.tokenizer, text).ids
        logits, _ = transformer.forward(params, run.model_config, ids, np.int32(len(ids)))
        np.testing.assert_allclose(np.asarray(logits), theirs[row], atol=1e-5)

    kept = data.pipeline.kept_examples(dataset, "test")
    assert len(run.split_encoder()(dataset, "test")) == len(kept)


def test_no_train_takes_the_checkpoint_as_it_is_and_needs_its_label_count(tmp_path, capsys):
    data_dir = write_toy_sst(tmp_path / "data", n=20)
    _, run_train = command_runner("train")
    fits = tmp_path / "bert2"
    model = make_checkpoint("bert", fits, num_labels=2)
    run_train(*_common(data_dir, tmp_path / "as_is", fits), "--no_train")
    assert "the checkpoint as it is" in capsys.readouterr().out
    run = load_run(tmp_path / "as_is")
    assert run.best_epoch == 0 and run.metrics["as_is"]
    np.testing.assert_array_equal(
        np.asarray(run.params["decoder"]["linear_1"]["weight"]),
        model.classifier.weight.detach().numpy(),
    )
    three = tmp_path / "bert3"
    make_checkpoint("bert", three, num_labels=3)
    with pytest.raises(SystemExit) as bad:
        run_train(*_common(data_dir, tmp_path / "bad", three), "--no_train")
    assert "classifies 3 labels" in str(bad.value.code) and "drop --no_train" in str(bad.value.code)
    with pytest.raises(SystemExit) as bad:
        run_train(*_common(data_dir, tmp_path / "bad", fits), "--hidden_size=8")
    assert "takes its sizes and embeddings from the checkpoint" in str(bad.value.code)
    with pytest.raises(SystemExit) as bad:
        run_train(*_common(data_dir, tmp_path / "bad", "bert-base-uncased"))
    assert "huggingface-cli download" in str(bad.value.code)
    # export --format=hf of a run that was not imported is a clear error
    _, run_export = command_runner("export")
    jw_run = tmp_path / "jw"
    run_train(
        "--dataset=sst", f"--data_dir={data_dir}", f"--workdir={jw_run}", "--epochs=1",
        "--embed_dim=8", "--hidden_size=6", "--batch_size=8", "--embeddings=random",
    )  # fmt: skip
    with pytest.raises(SystemExit) as bad:
        run_export(f"--workdir={jw_run}", f"--out={tmp_path / 'x'}", "--format=hf")
    assert "not a run of an imported checkpoint" in str(bad.value.code)

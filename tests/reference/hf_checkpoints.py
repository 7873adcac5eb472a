"""Tiny random Hugging Face checkpoints, written by ``transformers`` itself (``save_pretrained``).

One per family (BERT, DistilBERT, RoBERTa, ELECTRA with an embedding projection), with a
tokenizer trained here on a few sentences (WordPiece for three, byte-level BPE for
RoBERTa) and saved the way ``transformers`` saves it. They are the fixtures of
``tests/pretrained/hf_test.py``; only tests import this module (it needs torch and
``transformers``).
"""

import pathlib

import torch

FAMILIES = ("bert", "distilbert", "roberta", "electra")
CORPUS = [
    "a gripping , funny and deeply moving film",
    "the plot is thin and the acting is wooden",
    "Café crème brûlée : naïve charm , über-cool 😀 cast",
    "it is not bad at all , it is rather good",
    "an unwatchable mess ; I want my money back !",
    "one of the best films of the year",
] * 4
NUM_LABELS = 3
MAX_POSITIONS = 512


def _wordpiece_tokenizer(folder: pathlib.Path):
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.processors import BertProcessing
    from transformers import BertTokenizerFast

    trainer = BertWordPieceTokenizer(lowercase=True, strip_accents=True)
    trainer.train_from_iterator(
        CORPUS, vocab_size=160, min_frequency=1,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(folder))
    vocab = trainer.get_vocab()
    trainer.post_processor = BertProcessing(("[SEP]", vocab["[SEP]"]), ("[CLS]", vocab["[CLS]"]))
    # From the trained object: transformers 5 builds an empty vocabulary from vocab_file alone.
    return BertTokenizerFast(
        tokenizer_object=trainer._tokenizer, do_lower_case=True, cls_token="[CLS]",
        sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]",
    )  # fmt: skip


def _bpe_tokenizer(folder: pathlib.Path):
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaTokenizerFast

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        CORPUS, vocab_size=300, min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(folder))
    trainer.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    return RobertaTokenizerFast(
        tokenizer_object=trainer._tokenizer, bos_token="<s>", eos_token="</s>", cls_token="<s>",
        sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip


def make_checkpoint(
    family: str, folder: pathlib.Path, *, seed: int = 0, head: bool = True,
    num_labels: int = NUM_LABELS,
):  # fmt: skip
    """Writes a tiny random ``<Family>ForSequenceClassification`` (or base model) and its
    tokenizer to ``folder``; returns the ``transformers`` model (eval mode, eager attention)."""
    import transformers as tf

    folder = pathlib.Path(folder)
    tokenizer = (_bpe_tokenizer if family == "roberta" else _wordpiece_tokenizer)(folder)
    vocab = len(tokenizer)
    common = {"vocab_size": vocab, "num_labels": num_labels, "attn_implementation": "eager"}
    if family == "bert":
        config = tf.BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=MAX_POSITIONS, **common,
        )  # fmt: skip
        classes = (tf.BertForSequenceClassification, tf.BertModel)
    elif family == "distilbert":
        config = tf.DistilBertConfig(
            dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=MAX_POSITIONS,
            **common,
        )  # fmt: skip
        classes = (tf.DistilBertForSequenceClassification, tf.DistilBertModel)
    elif family == "roberta":
        config = tf.RobertaConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=MAX_POSITIONS + 2, pad_token_id=1, bos_token_id=0,
            eos_token_id=2, type_vocab_size=1, layer_norm_eps=1e-5, **common,
        )  # fmt: skip
        classes = (tf.RobertaForSequenceClassification, tf.RobertaModel)
    elif family == "electra":
        config = tf.ElectraConfig(
            embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, max_position_embeddings=MAX_POSITIONS, hidden_act="gelu",
            **common,
        )  # fmt: skip
        classes = (tf.ElectraForSequenceClassification, tf.ElectraModel)
    else:
        raise ValueError(family)
    torch.manual_seed(seed)
    model = classes[0 if head else 1](config).eval()
    with torch.no_grad():  # random biases and norms, so that a swapped tensor shows
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if vocab < 100 or len(tokenizer.get_vocab()) != vocab:
        raise AssertionError(f"the {family} fixture's tokenizer lost its vocabulary")
    return model

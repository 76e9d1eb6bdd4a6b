"""Small real tokenizers built in code, for tests and benchmarks that assemble diffusers pipelines offline
(CLIP's and CLAP's vocabularies cannot be downloaded here). Not used by the product itself."""

from __future__ import annotations


def _byte_vocab(specials: list[str], suffix: str | None) -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = sorted(set(bytes_to_unicode().values()))
    tokens = specials + chars + ([c + suffix for c in chars] if suffix else [])
    return {t: i for i, t in enumerate(tokens)}


def clip_tokenizer(model_max_length: int = 16):
    """A real CLIPTokenizer (byte-level BPE, CLIP's pre-tokenizer and specials) over a tiny vocabulary."""
    from transformers import CLIPTokenizer

    vocab = _byte_vocab(["<|startoftext|>", "<|endoftext|>"], "</w>")
    vocab.update({"re": len(vocab), "red</w>": len(vocab) + 1})
    return CLIPTokenizer(vocab=vocab, merges=[("r", "e"), ("re", "d</w>")], model_max_length=model_max_length)


def roberta_tokenizer(model_max_length: int = 24):
    """A real RobertaTokenizer (what AudioLDM's CLAP uses) over a tiny byte-level vocabulary."""
    from transformers import RobertaTokenizer

    vocab = _byte_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], None)
    vocab["Ġr"] = len(vocab)
    return RobertaTokenizer(vocab=vocab, merges=[("Ġ", "r")], model_max_length=model_max_length)

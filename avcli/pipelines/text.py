"""Prompts -> text embeddings for both U-Nets: tokenise (the `tokenizers` library, no transformers), run each
modality's text encoder callable (torch module or exported graph), cache per prompt.

Tokenisation matches transformers' fast tokenizer called with padding="max_length", truncation=True (tested);
a tokenizer folder without `tokenizer.json` (some imported checkpoints) falls back to transformers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from avcli.errors import BundleError
from avcli.manifest import manifest_of, tokenizer_dir
from avcli.sampling.joint import TextConditioning


class Tokenizer:
    """(input_ids, attention_mask), each (B, max_length) int64, padded and truncated to max_length."""

    def __init__(self, folder: Path, max_length: int):
        self.max_length = int(max_length)
        tj = Path(folder) / "tokenizer.json"
        self._hf = None
        if not tj.is_file():
            from transformers import AutoTokenizer  # only for folders without a fast-tokenizer file

            self._hf = AutoTokenizer.from_pretrained(str(folder))
            return
        from tokenizers import Tokenizer as FastTokenizer

        self._tok = FastTokenizer.from_file(str(tj))
        pad_token = _special(folder, "pad_token")
        pad_id = self._tok.token_to_id(pad_token) if pad_token else None
        if pad_id is None:
            raise BundleError(f"{folder}: tokenizer has no pad token {pad_token!r}")
        self._tok.no_padding()
        self._tok.enable_truncation(self.max_length)
        self._tok.enable_padding(length=self.max_length, pad_id=pad_id, pad_token=pad_token)

    def __call__(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        if self._hf is not None:
            tok = self._hf(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                           return_tensors="pt")
            return {"input_ids": tok["input_ids"].long(), "attention_mask": tok["attention_mask"].long()}
        enc = self._tok.encode_batch(list(prompts))
        return {"input_ids": torch.tensor([e.ids for e in enc], dtype=torch.int64),
                "attention_mask": torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)}


def _special(folder: Path, key: str) -> str | None:
    """A special token's text as transformers would read it: tokenizer_config.json, then special_tokens_map.json."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        f = Path(folder) / name
        if f.is_file():
            try:
                value = json.loads(f.read_text()).get(key)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(value, dict):
                value = value.get("content")
            if value:
                return value
    return None


def text_specs(manifest: dict) -> dict[str, dict]:
    """Each modality's effective text spec (audio may share the video encoder)."""
    text = manifest["text"]
    video = text["video"]
    return {"video": video, "audio": video if "shared_with" in text["audio"] else text["audio"]}


class PromptEncoder:
    """Tokenises with each modality's tokenizer and runs its text encoder (cached per prompt). `source` is a
    manifest or anything carrying one (a JointModel, a JointPipeline); tokenizer folders named by the manifest are
    found in `bundle_dir` (default: the source's `bundle_path`)."""

    def __init__(self, source, components: Mapping[str, Callable], bundle_dir: Path | None = None):
        manifest = manifest_of(source)
        bundle_dir = bundle_dir or getattr(source, "bundle_path", None)
        text = manifest["text"]
        specs = text_specs(manifest)
        self.shared = "shared_with" in text["audio"]
        # a spec's own max_length (imported bundles: CLIP pads to 77, CLAP to its tokenizer's length) wins
        self.tokenizers = {m: Tokenizer(tokenizer_dir(s, bundle_dir), int(s.get("max_length", text["max_length"])))
                           for m, s in specs.items() if not (self.shared and m == "audio")}
        if self.shared:
            self.tokenizers["audio"] = self.tokenizers["video"]
        self.encoders = {"video": components["text_encoder_video"], "audio": components["text_encoder_audio"]}
        self._cache: dict[tuple[str, str], torch.Tensor] = {}

    @property
    def max_length(self) -> dict[str, int]:
        return {m: t.max_length for m, t in self.tokenizers.items()}

    def tokenize(self, prompts: list[str], modality: str) -> dict[str, torch.Tensor]:
        return self.tokenizers[modality](prompts)

    @torch.no_grad()
    def encode(self, prompts: list[str], modality: str) -> torch.Tensor:
        """(B, L, D) token embeddings; each distinct prompt is encoded once per pipeline (a batch's repeats and
        its shared negative prompt cost nothing after the first)."""
        key_mod = "video" if self.shared else modality
        for p in dict.fromkeys(prompts):
            if (key_mod, p) not in self._cache:  # one prompt per call: its embedding never depends on the batch
                self._cache[(key_mod, p)] = self.encoders[key_mod](**self.tokenize([p], key_mod)).float()[0]
        return torch.stack([self._cache[(key_mod, p)] for p in prompts])

    def conditioning(self, prompts: list[str], negatives: list[str]) -> TextConditioning:
        return TextConditioning(self.encode(prompts, "video"), self.encode(prompts, "audio"),
                                self.encode(negatives, "video"), self.encode(negatives, "audio"))

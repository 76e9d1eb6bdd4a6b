"""Does the video text encoder tell the colours apart? The token embeddings of captions that differ only in colour.

Each held-out caption that names a colour is encoded as it is and with its colour word swapped for every other
colour (the same tokens elsewhere); the cosine between the two embedding sequences (the tokens the mask keeps,
flattened) is averaged per colour pair. If the pairs the generated pictures confuse (red/orange, yellow/white,
green/blue) sat closer than the others, the text would be where colour is lost; if all pairs sit alike, it is not.

    python benchmarks/text_colour_probe.py --test work/v2/hits-test --out benchmarks/results/text_colour_probe.json
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path


def pair_cosines(captions: list[str], encode, mask_of, colours: tuple[str, ...]) -> dict[str, dict]:
    """{"a/b": {"mean": cos, "n": captions}} over the captions that name one of `colours` (swapped both ways)."""
    import torch
    from avcli.metrics.adherence import parse_caption

    sums: dict[tuple[str, str], list[float]] = {}
    for cap in captions:
        own = parse_caption(cap)[0]
        word = re.search(rf"\b{own}\b", cap.lower()) if own in colours else None
        if word is None:  # a synonym (violet) or no colour: nothing to swap word for word
            continue
        variants = {c: cap[:word.start()] + c + cap[word.end():] for c in colours}
        emb = {c: encode(v) for c, v in variants.items()}
        masks = {c: mask_of(v) for c, v in variants.items()}
        for other in colours:
            if other == own or not torch.equal(masks[own], masks[other]):
                continue  # a colour word of another token count: the sequences do not line up
            x, y = emb[own][masks[own]].flatten(), emb[other][masks[other]].flatten()
            key = tuple(sorted((own, other)))
            sums.setdefault(key, []).append(float(torch.nn.functional.cosine_similarity(x, y, dim=0)))
    return {f"{a}/{b}": {"mean": sum(v) / len(v), "n": len(v)} for (a, b), v in sorted(sums.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="Bundle (default: the shipped hits-demo).")
    ap.add_argument("--test", type=Path, required=True, help="Folder with captions.jsonl (the held-out clips).")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from avcli.jsonl import read_file_rows
    from avcli.metrics.adherence import COLOURS
    from avcli.models.bundle import load_bundle
    from avcli.pipelines.text import PromptEncoder

    model = load_bundle(args.bundle)
    prompts = PromptEncoder(model, {"text_encoder_video": model.text_encoder_video,
                                    "text_encoder_audio": model.text_encoder_audio})
    captions = [r["caption"] for r in read_file_rows(args.test / "captions.jsonl", "captions")]
    pairs = pair_cosines(captions, lambda p: prompts.encode([p], "video")[0],
                         lambda p: prompts.tokenize([p], "video")["attention_mask"][0].bool(), COLOURS)
    means = [p["mean"] for p in pairs.values()]
    res = {"command": "python benchmarks/text_colour_probe.py " + shlex.join(sys.argv[1:]),
           "bundle": str(model.bundle_path), "captions": len(captions), "pairs": pairs,
           "all_pairs": {"min": min(means), "max": max(means), "mean": sum(means) / len(means)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    for k, v in pairs.items():
        print(f"{k:15s} cos {v['mean']:.3f}  ({v['n']} captions)")
    print(f"all pairs: {res['all_pairs']['min']:.3f} .. {res['all_pairs']['max']:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()

"""Average one component's weights of two bundles of the same architecture (a "model soup", Wortsman et al. 2022).

The output is a copy of --base with COMPONENT's weights set to (1 - t) * base + t * other; every other tensor and
the manifest stay --base's (the file's sha256 is recorded again). Used for the thirteenth session's colour row:

    python scripts/average_weights.py --base avcli/bundles/hits-demo --other work/ship_c0 --component video_unet \\
        -o work/ship_soup
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


AVERAGEABLE = ("video_unet", "audio_unet", "video_connector", "audio_connector", "vocoder")


def average_into(base: Path, other: Path, component: str, out: Path, t: float = 0.5) -> float:
    """Write the averaged bundle to `out` (a new folder, written as a hidden .part folder and renamed); returns the
    largest weight difference of the two. Bad input raises UsageError / BundleError before anything is written."""
    from avcli.errors import UsageError
    from avcli.models.bundle import load_bundle, update_bundle

    if component not in AVERAGEABLE:
        raise UsageError(f"--component must be one of {', '.join(AVERAGEABLE)}, not {component!r}")
    if not 0.0 <= t <= 1.0:
        raise UsageError(f"--t must lie in [0, 1] (a mix, not an extrapolation), not {t}")
    if out.exists():
        raise UsageError(f"{out}: already exists")
    a, b = load_bundle(base), load_bundle(other)
    sa, sb = getattr(a, component).state_dict(), getattr(b, component).state_dict()
    if {k: tuple(v.shape) for k, v in sa.items()} != {k: tuple(v.shape) for k, v in sb.items()}:
        raise UsageError(f"{component} differs in architecture between {base} and {other}")
    diff = max((float((sa[k].float() - sb[k].float()).abs().max()) for k in sa if sa[k].is_floating_point()),
               default=0.0)
    mixed = {k: (1 - t) * sa[k] + t * sb[k] if sa[k].is_floating_point() else sa[k] for k in sa}
    tmp = out.with_name(f".{out.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(base, tmp)
        getattr(a, component).load_state_dict(mixed)
        update_bundle(a, tmp, [component])
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--other", type=Path, required=True)
    ap.add_argument("--component", required=True, help=f"One of {', '.join(AVERAGEABLE)}.")
    ap.add_argument("--t", type=float, default=0.5, help="Weight of --other, 0 to 1 (default 0.5).")
    ap.add_argument("-o", "--output", type=Path, required=True, help="A new bundle folder (never replaced).")
    args = ap.parse_args()
    from avcli.errors import AvgenError

    try:
        diff = average_into(args.base, args.other, args.component, args.output, args.t)
    except AvgenError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    print(f"wrote {args.output} ({args.component}: largest weight difference {diff:.4g})")


if __name__ == "__main__":
    main()

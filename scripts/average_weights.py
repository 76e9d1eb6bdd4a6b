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


def average_into(base: Path, other: Path, component: str, out: Path, t: float = 0.5) -> float:
    """Write the averaged bundle to `out` (a new folder); returns the largest weight difference of the two."""
    from avcli.models.bundle import component_state_dicts, load_bundle, update_bundle

    a, b = load_bundle(base), load_bundle(other)
    sa, sb = component_state_dicts(a).get(component), component_state_dicts(b).get(component)
    if sa is None or sb is None:
        raise SystemExit(f"error: no component {component!r} in both bundles")
    if {k: tuple(v.shape) for k, v in sa.items()} != {k: tuple(v.shape) for k, v in sb.items()}:
        raise SystemExit(f"error: {component} differs in architecture between the two bundles")
    diff = max((float((sa[k].float() - sb[k].float()).abs().max()) for k in sa if sa[k].is_floating_point()),
               default=0.0)
    mixed = {k: (1 - t) * sa[k] + t * sb[k] if sa[k].is_floating_point() else sa[k] for k in sa}
    tmp = out.with_name(f".{out.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(base, tmp)
    getattr(a, component).load_state_dict(mixed)
    update_bundle(a, tmp, [component])
    tmp.rename(out)
    return diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--other", type=Path, required=True)
    ap.add_argument("--component", required=True, help="e.g. video_unet")
    ap.add_argument("--t", type=float, default=0.5, help="Weight of --other (default 0.5).")
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    if args.output.exists():
        sys.exit(f"error: {args.output} already exists")
    diff = average_into(args.base, args.other, args.component, args.output, args.t)
    print(f"wrote {args.output} ({args.component}: largest weight difference {diff:.4g})")


if __name__ == "__main__":
    main()

"""Initial-sync progress over time, product and floor, from a results file (matplotlib PNG).

    python -m bench.chart bench/results/<timestamp>.json docs/benchmarks-initial-sync.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def draw(results: dict[str, Any], out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [s for s in results["scenarios"] if s["product"].get("progress") and s["floor"].get("progress")]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for axis, scenario in zip(axes[0], panels, strict=True):
        for side, style in (("product", "-"), ("floor", "--")):
            points = scenario[side]["progress"]
            axis.plot([p[0] for p in points], [p[1] for p in points], style,
                      label=f"{side} ({scenario[side]['wall_s']:.0f} s)")
        settings = scenario.get("settings") or {}
        size = settings.get("N") or scenario["product"].get("items")
        axis.set_title(f"{scenario['name']} (N={size})", fontsize=10)
        axis.set_xlabel("seconds since enable")
        axis.set_ylabel("items in Outlook")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"Initial sync progress, {results['started']}, {results['machine'].get('cpus')} CPUs", fontsize=10)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    written = draw(json.loads(Path(argv[0]).read_text()), Path(argv[1]))
    print(written or "no progress series in these results")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

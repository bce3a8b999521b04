"""What every page of ours must pass (issue 19): axe-core (npm, pinned in package.json) run in
the real browser finds no serious or critical violation; and its screenshot is kept in
``docs/screens/`` (one per page and language), so the README shows the pages as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENS = ROOT / "docs" / "screens"
BLOCKING = ("serious", "critical")

# Run through Playwright's evaluate (the DevTools protocol), not a <script> tag: our pages'
# Content-Security-Policy rightly refuses inline scripts, and the audit must not weaken it.
_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                      where: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
}"""


def audit(page: Any, name: str, lang: str, *, keep_screenshot: bool = True) -> list[dict[str, Any]]:
    """Screenshot the page as ``docs/screens/<name>.<lang>.png``, then fail on any serious or
    critical axe-core violation, naming each rule and where it fails."""
    page.wait_for_load_state()
    if keep_screenshot:
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENS / f"{name}.{lang}.png"), full_page=True)
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    violations: list[dict[str, Any]] = page.evaluate(_RUN)
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, f"{name} ({lang}, {page.url}): " + "; ".join(
        f"{v['impact']} {v['id']}: {v['help']} at {v['where']}" for v in blocking)
    return violations

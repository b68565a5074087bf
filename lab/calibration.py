"""How right rstwatch is on every labelled reset of the labs, and whether its confidence means
what it says. Prints Markdown: accuracy per lab, the calibration table (confidence bins vs the
share of resets whose cause was right) and the mistakes.

    .venv/bin/python lab/calibration.py [MANIFEST_DIR ...]     (default: every lab under captures/)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rstwatch.analyze import analyze_file  # noqa: E402
from rstwatch.engine.loader import load_rules  # noqa: E402

BINS = [(0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)]


def score(folder: Path, rules) -> list[dict]:
    """One row per labelled RST (floods count as one row per flood finding)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    if "scenarios" in manifest:         # the multi-host lab: scored as meant to be read, all hosts joined
        return score_joined(folder, manifest, rules)
    rows = []
    for name, entry in sorted(manifest["captures"].items()):
        found = analyze_file(folder / name, rules).findings
        truth = {r["frame"]: r for r in entry["resets"]}
        if any(r.get("storm") for r in entry["resets"]):
            for f in found.to_dict("records"):
                rows.append(dict(lab=folder.name, capture=name, frame=f["frame"], want=entry["cause"], got=f["cause"],
                                 confidence=f["confidence"], alternatives=list(f["alternatives"] or [])))
            continue
        for f in found.to_dict("records"):
            want = truth.get(f["frame"], {}).get("cause", "(not a labelled RST)")
            rows.append(dict(lab=folder.name, capture=name, frame=f["frame"], want=want, got=f["cause"],
                             confidence=f["confidence"], alternatives=list(f["alternatives"] or []),
                             control=entry.get("cause") is None))
    return rows


def score_joined(folder: Path, manifest: dict, rules) -> list[dict]:
    """`read --hosts SCENARIO` for each scenario of captures/multihost/ (docs/multihost.md gives the
    numbers of each capture read alone)."""
    from rstwatch.vantage import parse_hosts, read_hosts
    rows = []
    for scenario in sorted(manifest["scenarios"]):
        found = read_hosts(parse_hosts([], folder / scenario), rules).findings
        for f in found.to_dict("records"):
            name = str(Path(f["file"]).relative_to(folder))
            truth = {r["frame"]: r for r in manifest["captures"][name]["resets"]}
            rows.append(dict(lab=f"{folder.name} (joined)", capture=name, frame=f["frame"],
                             want=truth.get(f["frame"], {}).get("cause", "(not a labelled RST)"), got=f["cause"],
                             confidence=f["confidence"], alternatives=list(f["alternatives"] or [])))
    return rows


def report(rows: list[dict]) -> str:
    out = []
    for lab in sorted({r["lab"] for r in rows}):
        sub = [r for r in rows if r["lab"] == lab]
        right = sum(r["got"] == r["want"] for r in sub)
        covered = sum(r["got"] == r["want"] or r["want"] in r["alternatives"] for r in sub)
        out.append(f"- {lab}: {right}/{len(sub)} right ({100 * right / max(1, len(sub)):.1f}%), cause or an "
                   f"alternative {covered}/{len(sub)} ({100 * covered / max(1, len(sub)):.1f}%)")
    out += ["", "| confidence | resets | cause right | right or among alternatives |", "|---|---:|---:|---:|"]
    for lo, hi in BINS:
        sub = [r for r in rows if lo <= r["confidence"] < hi]
        if not sub:
            continue
        right = sum(r["got"] == r["want"] for r in sub)
        covered = sum(r["got"] == r["want"] or r["want"] in r["alternatives"] for r in sub)
        label = f"{lo:.1f}-{min(hi, 1.0):.1f}"
        out.append(f"| {label} | {len(sub)} | {right} ({100 * right / len(sub):.0f}%) | {covered} ({100 * covered / len(sub):.0f}%) |")
    wrong = [r for r in rows if r["got"] != r["want"]]
    if wrong:
        out += ["", "Mistakes:"]
        out += [f"- {r['capture']} frame {r['frame']}: said {r['got']} ({r['confidence']:.2f}), truth {r['want']}"
                for r in wrong]
    return "\n".join(out)


def main() -> None:
    folders = [Path(a) for a in sys.argv[1:]] or sorted(p.parent for p in (ROOT / "captures").glob("**/manifest.json"))
    rules = load_rules()
    rows = [r for f in folders if (f / "manifest.json").exists() for r in score(f, rules)]
    print(report(rows))


if __name__ == "__main__":
    main()

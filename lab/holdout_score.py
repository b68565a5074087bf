"""Score rstwatch on the holdout lab (captures/holdout/): per scenario, the expected cause of each
first reset against rstwatch's verdict, confidence and alternatives; follow-ups separately (they
take their first reset's verdict and would flatter the number: 35 of them come from one upload).

    .venv/bin/python lab/holdout_score.py [FOLDER]        (default captures/holdout; Markdown on stdout)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rstwatch.analyze import analyze_file  # noqa: E402
from rstwatch.engine.loader import load_rules  # noqa: E402


def rows(folder: Path) -> list[dict]:
    manifest = json.loads((folder / "manifest.json").read_text())
    rules = load_rules()
    out = []
    for name, entry in manifest["captures"].items():
        found = {f["frame"]: f for f in analyze_file(folder / name, rules).findings.to_dict("records")}
        if entry["cause"] is None:
            out.append(dict(scenario=entry["scenario"], control=True, extra=sorted(found)))
            continue
        for r in entry["resets"]:
            f = found.get(r["frame"])
            got = f["cause"] if f else "(not reported)"
            alts = list(f["alternatives"] or []) if f else []
            follows_got = f.get("follows_frame") if f else None
            out.append(dict(scenario=entry["scenario"], control=False, frame=r["frame"], want=r["cause"], got=got,
                            confidence=float(f["confidence"]) if f else 0.0, alternatives=alts,
                            kernel=r.get("kernel_reason"), follows=r.get("follows"),
                            follows_got=None if follows_got is None or follows_got != follows_got else int(follows_got)))
    return out


def pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / max(1, d):.0f}%)"


def report(rs: list[dict]) -> str:
    firsts = [r for r in rs if not r["control"] and r["follows"] is None]
    follows = [r for r in rs if not r["control"] and r["follows"] is not None]
    controls = [r for r in rs if r["control"]]
    right = lambda r: r["got"] == r["want"]  # noqa: E731
    covered = lambda r: right(r) or r["want"] in r["alternatives"]  # noqa: E731
    scen = sorted({r["scenario"] for r in firsts})
    scen_right = [s for s in scen if all(right(r) for r in firsts if r["scenario"] == s)]
    allr = firsts + follows
    out = [f"- first resets (one per connection): right {pct(sum(map(right, firsts)), len(firsts))}, "
           f"right or among the alternatives {pct(sum(map(covered, firsts)), len(firsts))}",
           f"- scenarios with every first reset right: {pct(len(scen_right), len(scen))}",
           f"- every labelled reset, follow-ups included: right {pct(sum(map(right, allr)), len(allr))}",
           f"- follow-ups pointing at the reset they follow: "
           f"{pct(sum(r['follows_got'] == r['follows'] for r in follows), len(follows))}",
           f"- clean controls with no finding: {pct(sum(not c['extra'] for c in controls), len(controls))}",
           "", "| scenario | frame | kernel reason | expected | rstwatch said | conf | alternatives |",
           "|---|---:|---|---|---|---:|---|"]
    for r in firsts:
        mark = "" if right(r) else " **(miss)**"
        out.append(f"| {r['scenario']} | {r['frame']} | {r['kernel'] or '- (not this host)'} | {r['want']} | "
                   f"{r['got']}{mark} | {r['confidence']:.2f} | {', '.join(r['alternatives']) or '-'} |")
    wrong_follow = [r for r in follows if not right(r) or r["follows_got"] != r["follows"]]
    if wrong_follow:
        out += ["", "Follow-ups not right:"]
        out += [f"- {r['scenario']} frame {r['frame']} (follows {r['follows']}): said {r['got']}, "
                f"follows_frame {r['follows_got']}" for r in wrong_follow]
    for c in controls:
        if c["extra"]:
            out.append(f"- control {c['scenario']}: findings at frames {c['extra']}")
    return "\n".join(out)


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "captures" / "holdout"
    print(report(rows(folder)))


if __name__ == "__main__":
    main()

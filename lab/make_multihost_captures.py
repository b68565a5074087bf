"""Build the multi-host captures (issue #23 item 2) and their ground truth.

Run as root:  python -m lab.make_multihost_captures [--out captures/multihost] [--only closed-port,...]
Each scenario gets a folder SCENARIO/HOST/IFACE.pcap (one folder per host: `rstwatch read --hosts
captures/multihost/SCENARIO`) and an entry in manifest.json: every RST of every capture, by file
and frame, with the cause the lab produced it for and the host that really sent it. The kernel's
tcp_send_reset tracepoint says which resets an endpoint's kernel sent (none for the router's).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import multihost as M  # noqa: E402
from lab.make_captures import attach_kernel_reasons, rst_frames  # noqa: E402
from lab.netlab import ResetTracer  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "captures" / "multihost"
DEBIAN_PACKAGES = ("tcpdump", "nftables", "iproute2", "ethtool")


def ensure_tools() -> None:
    """The lab's Debian packages, installed when missing (CI starts from a fresh machine)."""
    missing = [p for p, tool in zip(DEBIAN_PACKAGES, ("tcpdump", "nft", "ip", "ethtool"))
               if shutil.which(tool) is None]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], check=True,
                       stdout=subprocess.DEVNULL)


def truth(folder: Path, sc: M.Scenario, trace: list[dict]) -> tuple[dict, list[dict]]:
    """Every RST frame of every capture of the scenario, labelled; the origin's kernel reasons."""
    files, every = {}, []
    for path in sorted(folder.rglob("*.pcap")):
        rel = str(path.relative_to(folder))
        resets = rst_frames(path)
        attach_kernel_reasons(resets, trace)
        for r in resets:
            r["cause"] = sc.cause
            r["sent_by"] = sc.origin
        files[rel] = {"host": rel.split("/")[0], "resets": resets}
        every += resets
    return files, every


def run(out: Path, only: list[str] | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = (json.loads(manifest_path.read_text()) if manifest_path.exists() and only
                else {"captures": {}, "scenarios": {}})
    M.setup()
    tracer = ResetTracer("rstwatch-multihost")
    try:
        for n, (name, sc) in enumerate(M.SCENARIOS.items()):
            if only and name not in only:
                continue
            folder = out / name
            shutil.rmtree(folder, ignore_errors=True)
            tracer.take()
            apps = M.run_scenario(sc, folder, 9101 + n)
            files, resets = truth(folder, sc, tracer.take())
            for path in folder.rglob("*"):
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            # per file, as the other labs' manifests (tests count every labelled RST of captures/)
            for rel, entry in files.items():
                manifest["captures"][f"{name}/{rel}"] = {
                    "scenario": name, "cause": sc.cause, "host": entry["host"], "what_happened": sc.doc,
                    "capture_point": f"{entry['host']}:{Path(rel).stem}", "format": "pcap", "resets": entry["resets"]}
            manifest["scenarios"][name] = {
                "cause": sc.cause, "sent_by": sc.origin, "what_happened": sc.doc,
                "hosts": {"client": M.C_ADDR, "router": [f"{M.NET}.1.1", M.R_SERVER_SIDE], "server": M.S_ADDR},
                "client_capture_filter": sc.client_bpf, "files": sorted(f"{name}/{rel}" for rel in files),
                "applications_saw": apps}
            kinds = sorted({str(r["kernel_reason"]) for r in resets})
            print(f"{name:22} {len(resets)} RST frame(s) in {len(files)} captures kernel={kinds} "
                  f"apps={json.dumps(apps)[:120]}", flush=True)
    finally:
        tracer.close()
        M.teardown()
    manifest["generated_on"] = {"kernel": os.uname().release, "date": time.strftime("%Y-%m-%d")}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("make_multihost_captures: needs root (network namespaces, nftables, tracefs)")
    ensure_tools()
    run(args.out, [s for s in args.only.split(",") if s] or None)


if __name__ == "__main__":
    main()

"""The runner the real-software labs share (lab/make_real_captures.py, make_holdout_captures.py, and the
limits, half-open, linger and TLS labs): scenarios, their tools, the run and the command line.

Each scenario runs in fresh namespaces while tcpdump captures one side and the kernel's
tcp_send_reset tracepoint records its own reason for every reset. Ground truth comes from the
scenario's design: the first RST of each connection gets the cause the scenario set up, later ones
are follow-ups of it. A run whose first resets carry kernel reasons the design does not expect lost
its timing race and is redone, up to 3 times.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lab import netlab
from lab.make_captures import attach_kernel_reasons, rst_frames

ATTEMPTS = 3


class Redo(Exception):
    """The run did not produce the intended behaviour (a timing race lost); run it again."""


@dataclass
class Scenario:
    name: str
    fn: Callable
    cause: str | None                     # None: a clean control, no RST expected
    doc: str
    software: list[str]
    delay_ms: float = 0.0
    capture: str = "client"              # where tcpdump listens: the client's or the server's link
    reasons: set[str] = field(default_factory=set)    # kernel reasons the first resets must carry
    label: Callable | None = None        # (reset, first reset of the run) -> cause, for scenarios with several causes
    family: str = ""                     # the holdout groups its scenarios by kind of cause


@dataclass
class Lab:
    """What differs between the labs: their topology module, names and trace filter."""
    name: str                            # the lab script, for messages
    tracer: str                          # the private tracefs instance
    setup: Callable[[float], object]     # path delay (ms) -> the wire, whose stop() ends it
    teardown: Callable[[], None]
    flush_firewalls: Callable[[], None]
    client: tuple[str, str]              # (namespace, interface) tcpdump listens on
    server: tuple[str, str]
    ours: Callable[[list[dict]], list[dict]] = lambda trace: trace   # trace lines of this lab only
    scenarios: dict[str, Scenario] = field(default_factory=dict)


def scenario_registry(scenarios: dict[str, Scenario], **defaults) -> Callable:
    """A lab's `@scenario(name, cause, software, ...)` decorator: each function it decorates is
    entered in `scenarios` as a Scenario (its docstring the description), with the lab's own
    defaults (family, capture side) unless the scenario says otherwise."""
    def scenario(name: str, cause: str | None, software: list[str], **kw):
        def deco(fn):
            scenarios[name] = Scenario(name=name, fn=fn, cause=cause, doc=" ".join((fn.__doc__ or "").split()),
                                       software=software, **{**defaults, **kw})
            return fn
        return deco
    return scenario


def install_missing(packages: dict[str, str]) -> None:
    """The Debian packages (command -> package) whose command is not found, installed: CI starts
    from a fresh machine."""
    import subprocess
    missing = sorted({pkg for cmd, pkg in packages.items()
                      if shutil.which(cmd) is None and shutil.which(cmd, path="/usr/sbin:/sbin") is None})
    if missing:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], check=True,
                       stdout=subprocess.DEVNULL)


def lab_trace_filter(prefix: str, ports: range) -> Callable[[list[dict]], list[dict]]:
    """The `ours` of a lab whose hosts have addresses starting with `prefix` (e.g. "10.86.") and whose
    servers listen on `ports`: the tracepoint is system-wide and other labs may run meanwhile. A reset
    from a listener (source 0.0.0.0 or ::) names no peer, only its port."""
    def mine(t: dict) -> bool:
        hosts = [e.rpartition(":")[0].strip("[]") for e in (t["src"], t["dst"])]
        if any(h.startswith(prefix) for h in hosts):
            return True
        return hosts[0] in ("0.0.0.0", "::") and int(t["src"].rpartition(":")[2]) in ports

    def ours(trace: list[dict]) -> list[dict]:
        return [t for t in trace if mine(t)]
    return ours


def label(resets: list[dict], sc: Scenario) -> None:
    """First RST of each connection: the scenario's cause; later ones: follow-ups of it."""
    first_of: dict[frozenset, dict] = {}
    very_first = resets[0] if resets else None
    for r in resets:
        key = frozenset([(r["src"], r["sport"]), (r["dst"], r["dport"])])
        first = first_of.setdefault(key, r)
        if first is r:
            r["cause"] = sc.label(r, very_first) if sc.label else sc.cause
        else:
            r["cause"], r["follows"] = first["cause"], first["frame"]


def check_reasons(resets: list[dict], sc: Scenario) -> None:
    firsts = [r for r in resets if "follows" not in r]
    if sc.cause and not resets:
        raise Redo("no reset at all")
    if sc.cause is None and resets:
        raise Redo(f"control produced {len(resets)} reset(s)")
    if sc.reasons:
        got = {r.get("kernel_reason") for r in firsts}
        if not got <= sc.reasons:
            raise Redo(f"first resets carry kernel reasons {sorted(map(str, got))}, expected {sorted(sc.reasons)}")


def run_one(lab: Lab, sc: Scenario, out: Path, tracer: netlab.ResetTracer) -> dict:
    path = out / f"{sc.name}.pcap"
    debug = os.environ.get("LAB_DEBUG")
    for attempt in range(1, ATTEMPTS + 1):
        path.unlink(missing_ok=True)
        wire = lab.setup(sc.delay_ms)
        work = Path(tempfile.mkdtemp(prefix=f"{lab.tracer}-{sc.name}-"))
        os.chmod(work, 0o755)          # servers that drop to nobody read their files here
        try:
            tracer.take()
            ns, iface = lab.client if sc.capture == "client" else lab.server
            cap = netlab.Capture(ns, iface, path)
            try:
                apps = sc.fn(work)
            finally:
                cap.stop()
                lab.flush_firewalls()
            everything = tracer.take()
            trace = lab.ours(everything)
            if debug:
                print(everything if debug == "all" else trace, flush=True)
        finally:
            wire.stop()
            lab.teardown()
            shutil.rmtree(work, ignore_errors=True)
        resets = rst_frames(path)
        attach_kernel_reasons(resets, trace)
        label(resets, sc)
        try:
            check_reasons(resets, sc)
        except Redo as why:
            print(f"  {sc.name}: attempt {attempt}: {why}; again", flush=True)
            if debug:                  # keep the failed attempt to look at
                shutil.copy(path, out / f"{sc.name}.attempt{attempt}.pcap")
            continue
        os.chmod(path, 0o644)
        entry = {"scenario": sc.name, "cause": sc.cause}
        if sc.family:
            entry["family"] = sc.family
        return entry | {"software": sc.software, "what_happened": sc.doc, "capture_point": f"{ns}:{iface}",
                        "path_delay_ms": sc.delay_ms, "attempts": attempt, "resets": resets,
                        "applications_saw": apps, "kernel_reasons_seen": sorted({t["reason"] for t in trace})}
    raise RuntimeError(f"{sc.name}: did not reproduce in {ATTEMPTS} attempts")


def run(lab: Lab, out: Path, only: list[str] | None) -> dict:
    """Every scenario (or those in `only`, merged into the folder's manifest); fails at the end,
    naming every scenario that did not reproduce."""
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() and only else {"captures": {}}
    tracer = netlab.ResetTracer(lab.tracer)
    failed = []
    try:
        for name, sc in lab.scenarios.items():
            if only and name not in only:
                continue
            t0 = time.time()
            try:
                entry = run_one(lab, sc, out, tracer)
            except Exception as exc:  # noqa: BLE001 - report every scenario, then fail
                failed.append(f"{name}: {exc}")
                print(f"{name:34} FAILED: {exc}", flush=True)
                continue
            manifest["captures"][f"{name}.pcap"] = entry
            reasons = sorted({str(r.get("kernel_reason")) for r in entry["resets"]})
            print(f"{name:34} {len(entry['resets']):3} RST(s) kernel={reasons} {time.time() - t0:.1f}s "
                  f"apps={json.dumps(entry['applications_saw'])[:160]}", flush=True)
    finally:
        tracer.close()
        lab.teardown()
    manifest["captures"] = dict(sorted(manifest["captures"].items()))
    manifest["generated_on"] = {"kernel": os.uname().release, "date": time.strftime("%Y-%m-%d")}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    if failed:
        raise SystemExit(f"{lab.name}: " + "; ".join(failed))
    return manifest


def main(lab: "Lab", default_out: Path, ensure_tools, snaplen: int, description: str) -> None:
    """A lab script's command line: --out, --only; as root, its tools, the run, then every capture cut
    to `snaplen` bytes a packet (headers are what rstwatch reads)."""
    import argparse
    import subprocess
    import sys
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", type=Path, default=default_out)
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit(f"{lab.name}: needs root (network namespaces, tracefs)")
    ensure_tools()
    only = [s for s in args.only.split(",") if s] or None
    run(lab, args.out, only)
    for name in only or lab.scenarios:
        path = args.out / f"{name}.pcap"
        subprocess.run(["editcap", "-s", str(snaplen), str(path), f"{path}.cut"], check=True)
        os.replace(f"{path}.cut", path)
        os.chmod(path, 0o644)

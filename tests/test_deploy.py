"""The fleet kit in deploy/: each file checked by the tool its platform uses (systemd-analyze,
promtool, the Kubernetes schemas), the container build record, the service install run as an
unprivileged user, and every metric a dashboard or alert names found in a live scrape."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import CAPTURES, ROOT, run_cli

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "rstwatch.service"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
DAEMONSET = DEPLOY / "kubernetes" / "daemonset.yaml"
RULES = DEPLOY / "prometheus" / "rstwatch-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "rstwatch-dashboard.json"
METRICS_PORT = 9750
MEASURED_PEAK_MIB = 420          # README, "The live path": whole process at the default flow-table cap
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, setpriv)")


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: bin/setup --lab installs it"
    return path


# --- systemd -----------------------------------------------------------------------------

def _verify_unit(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # verify checks that ExecStart exists: point it at this checkout's install
    unit = tmp_path / "rstwatch.service"
    unit.write_text(text.replace("/opt/rstwatch/bin/rstwatch", str(Path(sys.executable).parent / "rstwatch")))
    return subprocess.run([_tool("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True, timeout=120)


def test_systemd_unit_verifies_clean(tmp_path):
    text = UNIT.read_text()
    res = _verify_unit(text, tmp_path)
    assert res.returncode == 0 and res.stderr.strip() == "" and res.stdout.strip() == "", res.stdout + res.stderr
    # the checker does see mistakes (it only warns, so the test reads its output)
    bad = _verify_unit(text.replace("ProtectSystem=strict", "ProtectSystm=strict"), tmp_path)
    assert "Unknown key 'ProtectSystm'" in bad.stderr


def test_systemd_unit_is_confined(tmp_path):
    unit = UNIT.read_text()
    for line in ("DynamicUser=yes", "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN",
                 "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "Restart=on-failure", "ExecStart=/opt/rstwatch/bin/rstwatch live $RSTWATCH_ARGS"):
        assert line in unit.splitlines(), line
    target = tmp_path / "rstwatch.service"
    target.write_text(unit)
    res = subprocess.run([_tool("systemd-analyze"), "security", "--offline=yes", str(target)], capture_output=True,
                         text=True, timeout=120)
    level = re.search(r"Overall exposure level for rstwatch.service: ([0-9.]+)", res.stdout)
    assert level, res.stdout + res.stderr
    assert float(level.group(1)) <= 3.0, res.stdout          # systemd calls <= 3.9 "OK"; measured 2.2


@root_only
def test_service_install_runs_as_an_unprivileged_user():
    """bin/setup --service DIR: a venv from the system python3 that user nobody can run."""
    work = Path(tempfile.mkdtemp(prefix="hf-service-"))
    try:
        work.chmod(0o755)
        dest = work / "opt-rstwatch"
        res = subprocess.run([str(ROOT / "bin" / "setup"), "--service", str(dest)], capture_output=True, text=True,
                             timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
        cfg = (dest / "pyvenv.cfg").read_text()
        assert "/root" not in cfg, cfg                     # the interpreter is not under root's home
        capture = work / "closed-port.pcap"
        shutil.copy(CAPTURES / "closed-port.pcap", capture)
        capture.chmod(0o644)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        res = subprocess.run([*as_nobody, str(dest / "bin" / "rstwatch"), "read", str(capture), "--format", "jsonl"],
                             capture_output=True, text=True, timeout=120, cwd="/", env={"PATH": "/usr/bin:/bin"})
        assert res.returncode == 0, res.stderr
        assert res.stdout == run_cli("read", str(capture), "--format", "jsonl").stdout
        # a second run upgrades in place; a folder that is not a venv is never touched
        (work / "not-a-venv").mkdir()
        res = subprocess.run([str(ROOT / "deploy" / "install-service"), str(work / "not-a-venv")],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and "refusing to touch it" in res.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- container ------------------------------------------------------------------------------

def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_lint():
    """What hadolint would say for this file (hadolint is in no package manager reachable here)."""
    ins = _instructions(DOCKERFILE.read_text())
    final = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM"):]
    words = [w for w, _ in final]
    assert not any(w in ("ADD", "MAINTAINER") for w, _ in ins)
    user = dict(final)["USER"]
    assert user.split(":")[0] not in ("0", "root") and user.split(":")[0].isdigit(), user      # DL3002, numeric uid
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")              # nothing runs as root after
    for w, args in ins:
        if w == "RUN" and "apt-get install" in args:
            assert "--no-install-recommends" in args and "rm -rf /var/lib/apt/lists/*" in args, args   # DL3015, DL3009
            assert "apt-get update" in args                                                     # DL3009 / cache
        if w == "FROM":
            assert ":latest" not in args and (":" in args or "${BASE}" in args), args            # DL3007
    run_final = " ".join(a for w, a in final if w == "RUN")
    assert "setcap cap_net_raw,cap_net_admin=eip /usr/bin/dumpcap" in run_final
    assert json.loads(dict(final)["ENTRYPOINT"]) == ["rstwatch"]
    cmd = json.loads(dict(final)["CMD"])
    assert cmd[0] == "live" and cmd[cmd.index("--metrics-port") + 1] == str(METRICS_PORT)
    health = dict(final)["HEALTHCHECK"]
    assert f"http://127.0.0.1:{METRICS_PORT}/metrics" in health and "--interval" in health
    assert f"EXPOSE {METRICS_PORT}" in " ".join(f"{w} {a}" for w, a in final)
    ignored = (ROOT / ".dockerignore").read_text().split()
    for w, args in ins:
        if w == "COPY" and "--from" not in args:
            for src in args.split()[:-1]:
                assert (ROOT / src).exists() and src.rstrip("/") not in [i.rstrip("/") for i in ignored], src


def test_container_was_built_and_run_with_podman():
    """deploy/docker/verify-podman builds the image and runs it (about 4 minutes, so not on
    every CI run); its record must be for this very Dockerfile and show everything working."""
    record = json.loads((DEPLOY / "docker" / "podman-verified.json").read_text())
    assert record["dockerfile_sha256"] == hashlib.sha256(DOCKERFILE.read_bytes()).hexdigest(), \
        "the Dockerfile changed since it was last verified: run deploy/docker/verify-podman (root, podman)"
    assert record["uid"] == 10001
    assert record["health"] == "healthy" and record["healthcheck"]["Test"][0] == "CMD"
    assert record["read_causes"] == ["closed-port"]
    # host network: the three resets made on loopback (and any other local one, all closed-port here)
    assert len(record["live_causes"]) >= 3 and set(record["live_causes"]) == {"closed-port"}, record
    assert any('cause="closed-port"' in line and line.endswith(" 3.0") for line in record["scrape_resets"]), record
    assert record["dumpcap_caps"] == "/usr/bin/dumpcap cap_net_admin,cap_net_raw=eip"


# --- Kubernetes ------------------------------------------------------------------------------

def test_daemonset_validates_against_the_kubernetes_schemas():
    kv = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")
    docs = [d for d in yaml.safe_load_all(DAEMONSET.read_text()) if d]
    for version in ("1.30.0", kv.latest_version()):
        for doc in docs:
            kv.validate(doc, version, strict=True)       # raises on any schema violation or unknown field
    broken = json.loads(json.dumps(docs[1]))
    broken["spec"]["template"]["spec"]["hostNetwork"] = "yes"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, kv.latest_version(), strict=True)


def test_daemonset_matches_what_rstwatch_needs():
    ds = [d for d in yaml.safe_load_all(DAEMONSET.read_text()) if d and d["kind"] == "DaemonSet"][0]
    pod = ds["spec"]["template"]
    spec, (box,) = pod["spec"], pod["spec"]["containers"]
    assert spec["hostNetwork"] is True
    sec = box["securityContext"]
    assert sec["privileged"] is False and sec["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]}
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
    limit = box["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and MEASURED_PEAK_MIB < int(limit[:-2]) <= 2 * MEASURED_PEAK_MIB, limit
    port = box["args"][box["args"].index("--metrics-port") + 1]
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": port,
                                              "prometheus.io/path": "/metrics"}
    assert box["ports"][0]["containerPort"] == int(port) == METRICS_PORT
    job = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-kubernetes.yml").read_text())["scrape_configs"][0]
    sources = {s for r in job["relabel_configs"] for s in r.get("source_labels", [])}
    for key in pod["metadata"]["annotations"]:
        assert "__meta_kubernetes_pod_annotation_" + re.sub(r"[./]", "_", key) in sources, key


# --- Prometheus ------------------------------------------------------------------------------

def test_alert_rules_check_and_unit_tests_pass():
    promtool = _tool("promtool")
    res = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "SUCCESS: 6 rules found" in res.stdout, res.stdout + res.stderr
    res = subprocess.run([promtool, "test", "rules", "rstwatch-alerts.test.yml"], capture_output=True, text=True,
                         timeout=120, cwd=RULES.parent)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr
    res = subprocess.run([promtool, "check", "config", "prometheus.yml"], capture_output=True, text=True, timeout=60,
                         cwd=RULES.parent)
    assert res.returncode == 0, res.stdout + res.stderr


def test_alert_unit_tests_can_fail(tmp_path):
    """The unit tests really judge the rules: a threshold moved makes them fail."""
    shutil.copy(RULES.parent / "rstwatch-alerts.test.yml", tmp_path)
    (tmp_path / RULES.name).write_text(RULES.read_text().replace('cause="accept-queue-overflow"}[5m])) > 0',
                                                                 'cause="accept-queue-overflow"}[5m])) > 5'))
    res = subprocess.run([_tool("promtool"), "test", "rules", "rstwatch-alerts.test.yml"], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert res.returncode != 0 and "RstwatchAcceptQueueOverflow" in res.stdout + res.stderr


def _query_metric_names(expr: str) -> set[str]:
    """rstwatch metric names in a PromQL expression (label values and strings removed first)."""
    expr = re.sub(r'"[^"]*"', '""', expr)
    return set(re.findall(r"\brstwatch_[a-zA-Z0-9_]+", expr))


def _dashboard_and_rule_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    rules = yaml.safe_load(RULES.read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    return exprs


def _exported_names(text: str) -> set[str]:
    """Every series name the exposition text offers, families without samples included."""
    from prometheus_client.parser import text_string_to_metric_families
    names = set()
    for fam in text_string_to_metric_families(text):
        names |= {s.name for s in fam.samples}
        names |= {{"counter": f"{fam.name}_total", "gauge": fam.name, "histogram": f"{fam.name}_bucket",
                   "summary": f"{fam.name}_count"}.get(fam.type, fam.name)}
        if fam.type == "histogram":
            names |= {f"{fam.name}_sum", f"{fam.name}_count"}
    return names


@root_only
def test_every_dashboard_and_alert_metric_is_exported_by_a_live_endpoint():
    """Start `rstwatch live` in a namespace with --metrics-port, make real resets, scrape it."""
    ns = "hfmetrics"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "rstwatch", "live", "lo",
                                 "--format", "jsonl", "--metrics-port", str(METRICS_PORT)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        scrape = ("import sys, time, urllib.request, socket\n"
                  "for _ in range(100):\n"
                  "    try: urllib.request.urlopen('http://127.0.0.1:%d/metrics', timeout=2).read(); break\n"
                  "    except OSError: time.sleep(0.2)\n"
                  "time.sleep(1.0)\n"                       # dumpcap's hand-over
                  "for _ in range(3):\n"
                  "    s = socket.socket()\n"
                  "    try: s.connect(('127.0.0.1', 9))\n"
                  "    except OSError: pass\n"
                  "    s.close()\n"
                  "time.sleep(2.5)\n"                       # verdicts come ~1 s after each reset
                  "print(urllib.request.urlopen('http://127.0.0.1:%d/metrics', timeout=5).read().decode())\n"
                  % (METRICS_PORT, METRICS_PORT))
        res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", scrape], capture_output=True, text=True,
                             timeout=90)
        assert res.returncode == 0, res.stderr
        text = res.stdout
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(f"ip netns pids {ns} | xargs -r kill -9", shell=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert re.search(r'rstwatch_resets_total\{cause="closed-port",sender="server"\} 3\.0', text), text
    exported = _exported_names(text)
    queries = _dashboard_and_rule_queries()
    used = set().union(*map(_query_metric_names, queries))
    assert len(used) >= 8, used
    missing = sorted(used - exported)
    assert not missing, f"queried but not exported: {missing}; the endpoint offers {sorted(exported)}"


def test_metric_name_extraction_sees_what_queries_name():
    names = _query_metric_names('sum by (le) (rate(rstwatch_verdict_delay_seconds_bucket{cause="rstwatch_x"}[5m]))')
    assert names == {"rstwatch_verdict_delay_seconds_bucket"}


# --- log shipping ----------------------------------------------------------------------------

def test_vector_config_reads_the_outputs_rstwatch_writes():
    cfg = yaml.safe_load((DEPLOY / "vector" / "vector.yaml").read_text())
    sources = cfg["sources"]
    assert sources["rstwatch_journal"]["include_units"] == [UNIT.name]
    assert sources["rstwatch_pods"]["extra_label_selector"] == "app.kubernetes.io/name=rstwatch"
    ds = [d for d in yaml.safe_load_all(DAEMONSET.read_text()) if d and d["kind"] == "DaemonSet"][0]
    assert ds["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "rstwatch"
    assert "StandardOutput=journal" in UNIT.read_text() and "LogRateLimitIntervalSec=0" in UNIT.read_text()
    for transform in cfg["transforms"].values():
        assert set(transform["inputs"]) <= set(sources)
    # fields the sink's labels use are JSON Lines fields (a contract: never renamed)
    out = run_cli("read", str(CAPTURES / "closed-port.pcap"), "--format", "jsonl").stdout
    record = json.loads(out.splitlines()[0])
    for sink in cfg["sinks"].values():
        for value in sink.get("labels", {}).values():
            for field in re.findall(r"\{\{\s*(\w+)\s*\}\}", value):
                assert field == "host" or field in record, field


def _promtool_series(scrapes: list[str], instance: str, minutes: list[int]) -> list[dict]:
    """promtool input_series from scraped exposition texts: every sample of every scrape, labelled
    as Prometheus labels its targets (job, instance); minute m of the test holds scrape minutes[m]."""
    from prometheus_client.parser import text_string_to_metric_families
    per_scrape = []
    for text in scrapes:
        values = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                labels = {**s.labels, "job": "rstwatch", "instance": instance}
                key = s.name + "{" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"
                values[key] = s.value
        per_scrape.append(values)
    keys = sorted(set().union(*per_scrape))
    return [{"series": key, "values": " ".join("_" if key not in per_scrape[k] else repr(float(per_scrape[k][key]))
                                               for k in minutes)} for key in keys]


@root_only
def test_capture_drop_alert_fires_on_what_a_running_rstwatch_exports(tmp_path):
    """#19 item 3: `rstwatch live any` in a namespace whose veth d1 has a smaller MTU than its peer
    d0, so frames sent on d0 are dropped on receive by d1 (kernel rx_dropped), before any capture.
    Its /metrics is scraped before and after; the scrapes become promtool's input series, and
    RstwatchCaptureDropping must fire after the drops and not before. Before, the alert watched
    dumpcap's count (which moves only when dumpcap stops) and `any` had no interface counter."""
    ns, frames = "hfdrops", 25
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        for cmd in ("ip link set lo up", "ip link add d0 type veth peer name d1", "ip link set d1 mtu 1000",
                    "ip link set d0 up", "ip link set d1 up"):
            subprocess.run(["ip", "netns", "exec", ns, *cmd.split()], check=True)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "rstwatch", "live", "any",
                                 "--format", "jsonl", "--metrics-port", str(METRICS_PORT)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        code = ("import json, socket, time, urllib.request\n"
                "def scrape():\n"
                "    return urllib.request.urlopen('http://127.0.0.1:%d/metrics', timeout=5).read().decode()\n"
                "for _ in range(100):\n"
                "    try: scrape(); break\n"
                "    except OSError: time.sleep(0.2)\n"
                "time.sleep(0.6)\n"
                "out = [scrape()]\n"
                "time.sleep(0.6)\n"
                "out.append(scrape())\n"
                "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
                "s.bind(('d0', 0))\n"
                "for _ in range(%d):\n"                  # 1400 bytes: over d1's MTU, so d1 drops it
                "    try: s.send(b'\\xff' * 6 + b'\\x02\\x00\\x00\\x00\\x00\\x01\\x88\\xb5' + bytes(1400))\n"
                "    except OSError: pass\n"               # the sender is told (ENOBUFS)
                "time.sleep(1.0)\n"                         # the counters are read every 0.25 s
                "out += [scrape(), scrape()]\n"
                "print(json.dumps(out))\n" % (METRICS_PORT, frames))
        res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=90)
        assert res.returncode == 0, res.stderr
        scrapes = json.loads(res.stdout)
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(f"ip netns pids {ns} | xargs -r kill -9", shell=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def any_drops(text):
        m = re.search(r'^rstwatch_interface_dropped_packets_total\{interface="any"\} (\S+)$', text, re.M)
        assert m, text
        return float(m.group(1))
    assert any_drops(scrapes[0]) == any_drops(scrapes[1])
    dropped = any_drops(scrapes[3]) - any_drops(scrapes[1])
    assert frames <= dropped < 1000, dropped            # `any` sums the namespace's interfaces (d1's drops)
    instance = "node1:9750"
    # minutes 0-9: the two scrapes before the drops; from minute 10: the two after
    series = _promtool_series(scrapes, instance, [0] * 5 + [1] * 5 + [2] + [3] * 10)
    description = (f"{dropped:g} packets dropped before the capture saw them in 10 minutes. Narrow the capture "
                   "(--bpf), lower --snaplen or give the pod/service more CPU; check the interface's ring "
                   "(ethtool -g) and net.core.netdev_max_backlog.")
    fired = [{"exp_labels": {"severity": "warning", "instance": instance},
              "exp_annotations": {"summary": f"rstwatch capture drops on {instance}", "description": description}}]
    test = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": [
                {"eval_time": "9m", "alertname": "RstwatchCaptureDropping", "exp_alerts": []},     # nothing dropped
                {"eval_time": "12m", "alertname": "RstwatchCaptureDropping", "exp_alerts": fired},
                {"eval_time": "19m", "alertname": "RstwatchCaptureDropping", "exp_alerts": fired},
                {"eval_time": "20m", "alertname": "RstwatchCaptureDropping", "exp_alerts": []}]}]}   # 10 min on
    (tmp_path / "scraped.test.yml").write_text(yaml.safe_dump(test))
    res = subprocess.run([_tool("promtool"), "test", "rules", "scraped.test.yml"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr
    # the same series with the drops taken out: the alert stays silent to the end
    quiet = _promtool_series(scrapes[:2], instance, [0] * 5 + [1] * 16)
    test["tests"][0]["input_series"] = quiet
    for case in test["tests"][0]["alert_rule_test"]:
        case["exp_alerts"] = []
    (tmp_path / "quiet.test.yml").write_text(yaml.safe_dump(test))
    res = subprocess.run([_tool("promtool"), "test", "rules", "quiet.test.yml"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr

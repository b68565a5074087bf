"""Servers for the holdout lab, none of them used to build the rules: Apache httpd, PostgreSQL,
a Node.js `http` server, tinyproxy and socat, each started in the holdout server namespace (or the
one given) from its own working folder, with configurations users really run."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from lab.holdout_net import SERVER
from lab.realnet import Proc, tool, wait_listening

HERE = Path(__file__).resolve().parent
APACHE_MODULES = Path("/usr/lib/apache2/modules")


def www(work: Path) -> Path:
    root = work / "www"
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text("<html><body>hello from the holdout lab</body></html>\n" * 20)
    os.chmod(work, 0o755)
    return root


def apache(work: Path, port: int, extra: str = "", mpm: str = "event", ns: str = SERVER) -> Proc:
    """Apache httpd in the foreground with a minimal configuration plus `extra` directives."""
    root = www(work)
    mods = ["mpm_" + mpm, "authz_core", "mime", "dir", "reqtimeout", "headers"]
    loads = "\n".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in mods)
    conf = work / "apache2.conf"
    conf.write_text(f"""
ServerRoot {work}
{loads}
ServerName holdout.lab
PidFile {work}/apache2.pid
Mutex file:{work} default
DefaultRuntimeDir {work}
User www-data
Group www-data
Listen {port}
ErrorLog {work}/error.log
LogLevel info
DocumentRoot {root}
<Directory {root}>
  Require all granted
</Directory>
TypesConfig /etc/mime.types
{extra}
""")
    # Its own session: on SIGTERM, prefork signals its whole process group, which would be the lab's.
    p = Proc(ns, ["setsid", tool("apache2"), "-f", str(conf), "-DFOREGROUND"])
    wait_listening(ns, port)
    return p


def apache_stop(work: Path, ns: str = SERVER) -> None:
    """`apachectl -k stop` as an init script does it: SIGTERM to the parent."""
    pid = (work / "apache2.pid").read_text().strip()
    subprocess.run(["ip", "netns", "exec", ns, "kill", "-TERM", pid], check=False)


# Debian's postgresql package keeps the server binaries under a versioned folder: take the newest.
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), default=Path("/nonexistent"))


AS_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]


def postgres_cluster(work: Path) -> Path:
    """A fresh cluster (initdb, trust authentication), owned by the postgres user."""
    data = work / "pgdata"
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    pw = pwd.getpwnam("postgres")
    os.chown(work, pw.pw_uid, pw.pw_gid)
    subprocess.run([*AS_POSTGRES, str(PG_BIN / "initdb"),
                    "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
                   check=True, capture_output=True)
    with open(data / "pg_hba.conf", "a") as fh:       # the lab's clients come over the network
        fh.write("host all all 0.0.0.0/0 trust\n")
    return data


def postgres(work: Path, port: int, *settings: str, ns: str = SERVER) -> Proc:
    """postgres (the postmaster) in the foreground on the cluster in `work`, `settings` as -c k=v."""
    data = work / "pgdata"
    if not data.exists():
        postgres_cluster(work)
    args = [str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(work), "-c", "listen_addresses=*",
            "-c", "fsync=off", "-c", "logging_collector=off"]
    for s in settings:
        args += ["-c", s]
    p = Proc(ns, [*AS_POSTGRES, *args])
    wait_listening(ns, port, timeout=20)
    return p


def node(port: int, mode: str, *args: str, ns: str = SERVER) -> Proc:
    """lab/holdout_node_server.js: Node's own `http` module configured as `mode` says."""
    p = Proc(ns, [tool("node"), str(HERE / "holdout_node_server.js"), str(port), mode, *map(str, args)])
    wait_listening(ns, port)
    return p


def uvicorn(port: int, *options: str, ns: str = SERVER) -> Proc:
    """uvicorn (the ASGI server under FastAPI/Starlette) serving lab/holdout_asgi.py."""
    exe = Path(sys.executable).with_name("uvicorn")
    p = Proc(ns, [str(exe), "--host", "0.0.0.0", "--port", str(port), "--app-dir", str(HERE), "--no-access-log",
                  *options, "holdout_asgi:app"])
    wait_listening(ns, port, timeout=20)
    return p


def tinyproxy(work: Path, port: int, *directives: str, ns: str) -> Proc:
    """tinyproxy as a forward proxy on 127.0.0.1:`port` in namespace `ns`."""
    work.mkdir(parents=True, exist_ok=True)
    conf = work / "tinyproxy.conf"
    conf.write_text("\n".join([f"Port {port}", "Listen 127.0.0.1", "User nobody", "Group nogroup",
                               "MaxClients 20", "LogLevel Info", "Allow 127.0.0.1", *directives]) + "\n")
    p = Proc(ns, [tool("tinyproxy"), "-d", "-c", str(conf)])
    wait_listening(ns, port)
    return p


def socat_relay(port: int, target: str, *opts: str, ns: str = SERVER) -> Proc:
    """socat as a small TCP relay (the kind put in front of a service), one child per connection."""
    listen = ",".join(["TCP-LISTEN:%d" % port, "fork", "reuseaddr", *opts])
    p = Proc(ns, [tool("socat"), listen, f"TCP:{target}"])
    wait_listening(ns, port)
    return p


def have(*names: str) -> bool:
    return all(shutil.which(n) or shutil.which(n, path="/usr/sbin:/usr/bin") for n in names)

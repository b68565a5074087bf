"""Start real servers (nginx, HAProxy, Redis, lighttpd, memcached, gunicorn) with configurations
users run, in the lab's server namespace, each in its own working folder."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from lab.realnet import SERVER, Proc, tool, wait_listening

HERE = Path(__file__).resolve().parent


def _www(work: Path) -> Path:
    www = work / "www"
    www.mkdir(parents=True, exist_ok=True)
    (www / "index.html").write_text("<html><body>hello from the lab</body></html>\n" * 20)
    with open(www / "big.bin", "wb") as fh:
        fh.truncate(32 << 20)          # a sparse 32 MiB download
    os.chmod(work, 0o755)
    return www


def nginx(work: Path, port: int = 80, keepalive: str = "1s", http: str = "", server: str = "",
          listen: str = "", ns: str = SERVER, addr: str = "0.0.0.0") -> Proc:
    www = _www(work)
    conf = work / "nginx.conf"
    tmp = work / "tmp"
    tmp.mkdir(exist_ok=True)
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  keepalive_timeout {keepalive};
  {http}
  server {{
    listen {addr}:{port} {listen};
    root {www};
    {server}
  }}
}}
""")
    p = Proc(ns, [tool("nginx"), "-c", str(conf), "-e", str(work / "error.log")])
    wait_listening(ns, port)
    return p


def haproxy(work: Path, body: str, port: int, ns: str) -> Proc:
    work.mkdir(parents=True, exist_ok=True)
    conf = work / "haproxy.cfg"
    conf.write_text("global\n  maxconn 200\n" + body)
    p = Proc(ns, [tool("haproxy"), "-f", str(conf), "-db"])
    if port:
        wait_listening(ns, port)
    return p


def redis(work: Path, *options: str) -> Proc:
    work.mkdir(parents=True, exist_ok=True)
    p = Proc(SERVER, [tool("redis-server"), "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
                      "--save", "", "--appendonly", "no", "--dir", str(work), "--daemonize", "no", *options])
    wait_listening(SERVER, 6379)
    return p


def lighttpd(work: Path, port: int = 80, extra: str = "") -> Proc:
    www = _www(work)
    conf = work / "lighttpd.conf"
    conf.write_text(f"""
server.document-root = "{www}"
server.port = {port}
server.username = "nobody"
server.groupname = "nogroup"
{extra}
""")
    p = Proc(SERVER, [tool("lighttpd"), "-D", "-f", str(conf)])
    wait_listening(SERVER, port)
    return p


def memcached(*options: str) -> Proc:
    p = Proc(SERVER, [tool("memcached"), "-u", "nobody", "-p", "11211", "-U", "0", *options])
    wait_listening(SERVER, 11211)
    return p


def gunicorn(port: int = 8000) -> Proc:
    exe = Path(sys.executable).with_name("gunicorn")
    p = Proc(SERVER, [str(exe), "-b", f"0.0.0.0:{port}", "-w", "1", "--chdir", str(HERE.parent), "lab.wsgi_upload:app"])
    wait_listening(SERVER, port, timeout=20)
    return p

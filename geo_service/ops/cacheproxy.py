"""Debian's nginx as a caching reverse proxy in front of the service, run on 127.0.0.1 in a scratch directory:
the configuration docs/deployment.md shows (revalidate by ETag, never cache a request carrying
`Authorization`), used by the HTTP cache tests and by the scale benchmark alike."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from geo_service.db.embedded import free_port

NGINX_CONF = """\
{user}worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log {access_log};
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    proxy_cache_path {tmp}/cache levels=1:2 keys_zone=jxplan:10m max_size=1g inactive=1d use_temp_path=off;
    upstream jxplan_service {{
        server {upstream};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://jxplan_service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_cache jxplan;
            proxy_cache_revalidate on;
            proxy_cache_bypass $http_authorization;
            proxy_no_cache $http_authorization;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"""


def nginx_path() -> str:
    """Debian's nginx (`apt-get install nginx`): on PATH, else where the package puts it."""
    return shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_conf(
    directory: Path, port: int, upstream: str, *, workers: int = 1, access_log: bool = True
) -> str:
    """The configuration: listen on 127.0.0.1:`port`, proxy to `upstream` (host:port, kept-alive
    connections), the cache and every temporary file under `directory`."""
    return NGINX_CONF.format(
        user="user root;\n" if os.geteuid() == 0 else "",  # the workers must read the scratch directory
        workers=workers,
        connections=64 + 64 * workers,
        tmp=directory,
        access_log=f"{directory}/access.log" if access_log else "off",
        port=port,
        upstream=upstream,
    )


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx stopped: {log.read_text() if log.exists() else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("nginx did not start listening")


@contextmanager
def caching_proxy(
    upstream: str, directory: Path, *, workers: int = 1, access_log: bool = True, timeout: float = 15.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """nginx caching `upstream` (http://host:port or host:port), its files in `directory`; yields its base
    URL and its (master) process, and stops it on the way out."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(
        nginx_conf(directory, port, upstream.removeprefix("http://"), workers=workers, access_log=access_log)
    )
    process = subprocess.Popen(
        [nginx_path(), "-c", str(conf), "-p", str(directory), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port, process, directory / "error.log", timeout)
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""The caching proxy's configuration, as Debian's nginx reads it (tests/ogc/test_http_cache.py runs it in
front of the service)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from geo_service.ops.cacheproxy import caching_proxy, nginx_conf, nginx_path


def test_the_configuration_is_valid_for_nginx(tmp_path: Path) -> None:
    """`nginx -t` accepts it; the cache revalidates and is bypassed by `Authorization`, and the upstream is
    the one given, with kept-alive connections."""
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(tmp_path, 18080, "127.0.0.1:18081", workers=2, access_log=False))
    checked = subprocess.run(
        [nginx_path(), "-t", "-c", str(conf), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    text = conf.read_text()
    assert "server 127.0.0.1:18081;" in text and "keepalive 32;" in text
    assert "proxy_cache_revalidate on;" in text and "proxy_no_cache $http_authorization;" in text
    assert "worker_processes 2;" in text and "access_log off;" in text


def test_the_proxy_answers_and_stops(tmp_path: Path) -> None:
    """With nothing behind it nginx answers 502 (it runs, and proxies); on the way out its process ends."""
    with caching_proxy("127.0.0.1:9", tmp_path / "nginx") as (url, process):
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/collections", timeout=10).status_code == 502
    assert process.poll() is not None

"""The container topology of docker/: the compose file validated by Debian's docker-compose (which needs no
engine to do so), what it wires together, the nginx cache's configuration checked by nginx itself, the scripts
parsed by the shell. Running it takes a container engine (docs/deployment.md, "Containers")."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from geo_service.settings import Settings

DOCKER = Path(__file__).resolve().parent.parent / "docker"
COMPOSE = DOCKER / "compose.yaml"
PASSWORDS = {"POSTGRES_PASSWORD": "compose-test-primary", "REPLICATION_PASSWORD": "compose-test-replica"}


def _compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose (Debian's package) is installed by `make test`"
    environment = {k: v for k, v in os.environ.items() if k not in PASSWORDS}
    return subprocess.run(
        [tool, "-f", str(COMPOSE), "config"],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    done = _compose_config(**PASSWORDS)
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def test_the_compose_file_keeps_no_secret_and_asks_for_both_passwords() -> None:
    assert "compose-test" not in COMPOSE.read_text()
    for missing in PASSWORDS:
        others = {k: v for k, v in PASSWORDS.items() if k != missing}
        done = _compose_config(**others)
        assert done.returncode != 0
        assert missing in done.stderr


def test_topology_primary_replica_two_services_and_a_cache(config: dict[str, Any]) -> None:
    services = config["services"]
    assert set(services) == {"db", "replica", "migrate", "service-1", "service-2", "cache"}
    assert services["db"]["image"].startswith("postgis/postgis:")
    assert services["replica"]["image"] == services["db"]["image"]
    assert services["cache"]["image"].startswith("nginx:")
    # only the cache is reachable from outside the compose network, and only on loopback
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"cache"}
    assert all(str(port).startswith("127.0.0.1:") for port in services["cache"]["ports"])
    for name in ("service-1", "service-2"):
        service = services[name]
        assert service["command"] == ["jxplan", "serve"]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        environment = service["environment"]
        assert make_url(environment["DATABASE_URL"]).host == "db"
        replicas = environment["JXPLAN_READ_DATABASE_URLS"].split(",")
        assert [make_url(url).host for url in replicas] == ["replica"]
        assert environment["DATABASE_URL"].split("@")[0] == replicas[0].split("@")[0]
    assert "jxplan db upgrade" in " ".join(services["migrate"]["command"])


def test_every_service_variable_is_a_setting(config: dict[str, Any]) -> None:
    """A misspelt JXPLAN_ variable would be ignored without a word: each must name a field of Settings."""
    fields = {f"JXPLAN_{name.upper()}" for name in Settings.model_fields}
    for name in ("migrate", "service-1", "service-2"):
        variables = {key for key in config["services"][name]["environment"] if key.startswith("JXPLAN_")}
        assert variables and variables <= fields, variables - fields


def test_the_replica_is_a_streaming_copy_on_the_primarys_slot(config: dict[str, Any]) -> None:
    replica = config["services"]["replica"]
    script = (DOCKER / "replica-entrypoint.sh").read_text()
    assert "/usr/local/bin/replica-entrypoint.sh" in " ".join(replica["entrypoint"])
    assert re.search(r"pg_basebackup\b.*--write-recovery-conf", script, re.S)
    slot = re.search(r"--slot=(\w+)", script)
    assert slot
    init = (DOCKER / "primary-init.sh").read_text()
    assert f"pg_create_physical_replication_slot('{slot.group(1)}')" in init
    assert "host replication replicator" in init
    assert replica["depends_on"]["db"]["condition"] == "service_healthy"
    mounts = " ".join(config["services"]["db"]["volumes"])
    assert "primary-init.sh:/docker-entrypoint-initdb.d/" in mounts


@pytest.mark.parametrize("script", ["primary-init.sh", "replica-entrypoint.sh", "offline/build"])
def test_scripts_parse(script: str) -> None:
    done = subprocess.run(["sh", "-n", str(DOCKER / script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_nginx_accepts_the_cache_configuration(tmp_path: Path) -> None:
    """nginx -t on docker/nginx.conf, with the service replicas' names (which resolve only on the compose
    network) and the cache's directory pointed at this machine."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    text = (DOCKER / "nginx.conf").read_text()
    for directive in (
        "proxy_cache_revalidate on;",
        "proxy_cache_bypass $http_authorization;",
        "proxy_no_cache $http_authorization;",
        "server service-1:8000",
        "server service-2:8000",
    ):
        assert directive in text
    assert "proxy_ignore_headers" not in text  # it would keep copies past an edit
    local = (
        text.replace("service-1:8000", "127.0.0.1:1")
        .replace("service-2:8000", "127.0.0.1:2")
        .replace("/var/cache/nginx/", f"{tmp_path}/cache/")
        .replace("/tmp/nginx.pid", f"{tmp_path}/nginx.pid")
        .replace("listen 80;", "listen 127.0.0.1:1;")
    )
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        local = local.replace("http {", f"http {{\n    {temp}_temp_path {tmp_path}/{temp};", 1)
    (tmp_path / "cache").mkdir()  # nginx makes the cache's own directory, not its parents
    conf = tmp_path / "nginx.conf"
    conf.write_text(local)
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_the_image_receives_no_local_state_or_secret() -> None:
    ignored = (DOCKER.parent / ".dockerignore").read_text().split()
    for path in (".data", ".venv", "**/node_modules", ".git"):
        assert path in ignored

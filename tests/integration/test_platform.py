"""The running platform (a real `lakeray up`): both client transports, the lifecycle CLI,
the quickstart, a Ray job, and the unmodified unitycatalog-client."""

import json
import os
import socket
import stat
import subprocess
import sys

import pyarrow as pa
import pytest
import requests
from tests.conftest import REPO

import lakeray

pytestmark = pytest.mark.ray


def test_status_and_credentials(platform):
    out = platform.cli("status")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["healthy"] is True
    assert any(a["name"] == "registry" and a["state"] == "ALIVE" for a in info["actors"])
    assert info["serve"]["lakeray"] == "RUNNING"
    mode = stat.S_IMODE(os.stat(platform.home / "credentials").st_mode)
    assert mode == 0o600


@pytest.mark.parametrize("via", ["http", "ray"])
def test_same_methods_and_errors_on_both_transports(platform, via):
    c = platform.client(via)
    assert c.transport == via
    cat = f"both_{via}"
    c.create_catalog(cat, comment="x")
    c.create_schema(cat, "s")
    t = f"{cat}.s.t"
    info = c.create_table(t, data=pa.table({"id": [1, 2], "name": ["a", "b"]}))
    assert info["full_name"] == t
    assert c.append(t, [{"id": 3, "name": "c"}])["version"] == 2
    assert c.read_table(t).column("id").to_pylist() == [1, 2, 3]
    assert c.read_table(t, version=1).num_rows == 2
    assert c.read_pandas(t, predicate=[["id", ">", 1]])["name"].tolist() == ["b", "c"]
    assert [v["version"] for v in c.table_versions(t)] == [1, 2]
    assert c.read_dataset(t).count() == 3
    user = f"user_{via}"
    c.create_principal(user)
    c.grant("catalog", cat, user, "USE CATALOG", "USE SCHEMA", "SELECT")
    other = platform.client(via, token=c.create_token(principal=user)["token_value"])
    assert other.read_table(t).num_rows == 3
    with pytest.raises(lakeray.PermissionDenied):
        other.append(t, [{"id": 4, "name": "d"}])
    with pytest.raises(lakeray.NotFound):
        c.get_table(f"{cat}.s.missing")
    with pytest.raises(lakeray.InvalidArgument):
        c.create_catalog("bad name")
    with pytest.raises(lakeray.AlreadyExists):
        c.create_catalog(cat)
    with pytest.raises(lakeray.Unauthenticated):
        platform.client(via, token="lr_bogus").list_catalogs()
    c.create_volume(cat, "s", "files")
    c.upload(f"/Volumes/{cat}/s/files/dir/hello.txt", b"hi")
    assert c.download(f"/Volumes/{cat}/s/files/dir/hello.txt") == b"hi"
    assert [e["name"] for e in c.list_directory(f"/Volumes/{cat}/s/files/dir")["contents"]] == ["hello.txt"]
    with pytest.raises(lakeray.InvalidArgument):
        c.download(f"/Volumes/{cat}/s/files/../../../etc/passwd")
    c.delete_catalog(cat, force=True)


@pytest.mark.parametrize("via", ["http", "ray"])
def test_functions_run_in_ray_tasks(platform, via):
    c = platform.client(via)
    name = f"main.default.add_{via}"
    c.create_function({
        "name": name.split(".")[-1], "catalog_name": "main", "schema_name": "default",
        "input_params": {"parameters": [
            {"name": "a", "type_text": "int", "type_name": "INT", "type_json": '"int"', "position": 0},
            {"name": "b", "type_text": "int", "type_name": "INT", "type_json": '"int"', "position": 1}]},
        "data_type": "INT", "full_data_type": "int", "routine_body": "EXTERNAL",
        "routine_definition": "import os\nreturn a + b + (0 if os.getpid() else 1)",
        "parameter_style": "S", "is_deterministic": True, "sql_data_access": "NO_SQL", "is_null_call": False,
        "security_type": "DEFINER", "specific_name": name.split(".")[-1], "external_language": "PYTHON"})
    assert c.execute_function(name, a=2, b=3) == 5
    with pytest.raises(lakeray.InvalidArgument):
        c.execute_function(name, a="2", b=3)


def test_quickstart_runs_end_to_end(platform):
    out = subprocess.run([sys.executable, str(REPO / "notebooks" / "quickstart.py")], env=platform.env,
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "quickstart done" in out.stdout
    assert "write refused as expected" in out.stdout


def test_corpus_loads_as_a_ray_job(platform):
    # Ray 2.60 turns on token auth; the CLI needs to be told where `ray start` wrote the token.
    env = {**platform.env, "RAY_ADDRESS": "http://127.0.0.1:8265",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": os.path.expanduser("~/.ray/auth_token")}
    out = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "job", "submit", "--", sys.executable,
                          "-m", "lakeray.jobs.load_corpus", "--table", "main.default.job_corpus"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    c = platform.client("http")
    assert c.describe_table("main.default.job_corpus")["num_rows"] > 20
    edges = c.get_lineage("table", "main.default.job_corpus")["edges"]
    assert edges and edges[0]["source"] == {"type": "external", "name": "python-package-metadata"}
    assert edges[0]["job_id"]


def test_revocation_and_grants_take_effect_at_once_over_http(platform):
    """API replicas serve reads themselves: revocations and grant changes must still apply
    to the very next request."""
    admin = platform.client("http")
    admin.create_principal("short_lived")
    admin.create_table("main.default.revocable", data=[{"x": 1}])
    made = admin.create_token(principal="short_lived")
    user = platform.client("http", token=made["token_value"])
    assert user.whoami()["name"] == "short_lived"
    with pytest.raises(lakeray.PermissionDenied):
        user.read_table("main.default.revocable")
    admin.grant("catalog", "main", "short_lived", "USE CATALOG", "USE SCHEMA")
    admin.grant("table", "main.default.revocable", "short_lived", "SELECT")
    assert user.read_table("main.default.revocable").num_rows == 1
    admin.revoke("table", "main.default.revocable", "short_lived", "SELECT")
    with pytest.raises(lakeray.PermissionDenied):
        user.read_table("main.default.revocable")
    admin.revoke_token(made["token_info"]["token_id"])
    with pytest.raises(lakeray.Unauthenticated):
        user.whoami()
    admin.create_principal("deactivated")
    other = platform.client("http", token=admin.create_token(principal="deactivated")["token_value"])
    assert other.whoami()["name"] == "deactivated"
    admin.update_principal("deactivated", active=False)
    with pytest.raises(lakeray.Unauthenticated):
        other.whoami()


def test_the_api_replicas_serve_the_port_without_a_serve_proxy(platform):
    from ray.util.state import list_actors

    platform.join()
    proxies = list_actors(filters=[("class_name", "=", "ProxyActor"), ("state", "=", "ALIVE")])
    assert proxies == []
    assert requests.get(platform.url + "/healthz", timeout=10).status_code == 200
    # a repeated `up` passes the port check: the running replicas share the port
    out = platform.cli("up")
    assert out.returncode == 0, out.stdout + out.stderr


def test_up_on_a_port_another_program_holds_fails_fast_with_a_clear_error(platform, tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    home = tmp_path / "other-home"
    env = {**platform.env, "LAKERAY_HOME": str(home), "LAKERAY_PORT": str(port)}
    try:
        out = subprocess.run([sys.executable, "-m", "lakeray.cli", "up"], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    finally:
        holder.close()
    assert out.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in out.stdout + out.stderr
    assert not (home / "credentials").exists()
    # the running platform was not touched
    assert platform.client().whoami()["name"] == "admin"


def test_the_ray_head_up_started_refuses_drivers_without_its_token(platform, tmp_path):
    """Ray's ports listen on every interface: the head `lakeray up` starts has Ray's token
    authentication on, so a driver (or a Jobs API call) without the token is refused."""
    from lakeray.lifecycle import STARTED_MARKER

    if not (platform.home / STARTED_MARKER).exists():
        pytest.skip("the platform joined a Ray cluster it did not start")
    import ray

    address = ray.get_runtime_context().gcs_address
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token there
    probe = ("import ray\n"
             f"ray.init(address={address!r}, log_to_driver=False)\n"
             "print('JOINED', ray.get(ray.remote(lambda: 1).remote()))\n")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode != 0 and "JOINED" not in out.stdout, out.stdout + out.stderr
    resp = requests.get("http://127.0.0.1:8265/api/jobs/", timeout=30)
    assert resp.status_code == 401, resp.text
    with open(os.path.expanduser("~/.ray/auth_token")) as f:
        token = f.read().strip()
    resp = requests.get("http://127.0.0.1:8265/api/jobs/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert resp.status_code == 200, resp.text

"""`lakeray down` stops only the Ray cluster `lakeray up` started (never `ray stop`, which stops
every cluster on the machine); a recorded process group that is not a Ray cluster is left alone."""

import os
import subprocess
import sys

from lakeray import lifecycle


def test_stop_cluster_leaves_groups_without_ray_alone():
    # our own group: no GCS server or raylet in it, so nothing is signalled (we are still here)
    assert lifecycle.stop_cluster(os.getpgid(0)) is False
    assert lifecycle.stop_cluster(None) is False
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        assert lifecycle.stop_cluster(bystander.pid) is False
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()



def test_the_head_up_starts_has_ray_token_auth(tmp_path, monkeypatch):
    """`ray start` turns token auth on only when a token exists: `up` makes Ray's usual one
    when there is none, and leaves a mode the operator chose alone."""
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    env = lifecycle.ray_auth_env()
    assert env["RAY_AUTH_MODE"] == "token"
    token = (tmp_path / ".ray" / "auth_token").read_text().strip()
    assert len(token) >= 32
    assert lifecycle.ray_auth_env()["RAY_AUTH_MODE"] == "token"  # the same token again
    assert (tmp_path / ".ray" / "auth_token").read_text().strip() == token
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert lifecycle.ray_auth_env()["RAY_AUTH_MODE"] == "disabled"

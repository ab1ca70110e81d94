"""The credentials file ``LAKERAY_HOME/credentials`` (mode 0600) and token lookup."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lakeray.errors import Unauthenticated
from lakeray.settings import Settings


def write_credentials(path: Path, token: str, url: str, principal: str) -> None:
    """Write the admin credentials readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"token": token, "url": url, "principal": principal}, f)
    os.chmod(path, 0o600)  # also when the file already existed with wider bits


def read_credentials(path: Path) -> dict | None:
    """The stored credentials, or None when there are none."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return None


def resolve_token(token: str | None, settings: Settings) -> str:
    """The explicit token, else ``LAKERAY_TOKEN``, else the credentials file's."""
    if token:
        return token
    env = os.environ.get("LAKERAY_TOKEN")
    if env:
        return env
    creds = read_credentials(settings.credentials_path)
    if creds and creds.get("token"):
        return creds["token"]
    raise Unauthenticated(f"no token: pass token=..., set LAKERAY_TOKEN, or run `lakeray up` "
                          f"(which writes {settings.credentials_path})")

"""python notebooks/quickstart.py   (after `lakeray up`; `make demo` runs both)

The end-to-end quickstart, using only the public client:
1. load a real corpus (installed packages' READMEs) into a governed table,
2. create a second user and grant them read access,
3. read the table back as that user over HTTP and over Ray,
4. show that writes are refused, and what the audit log and lineage recorded.
"""

from __future__ import annotations

import logging
import os

import ray

import lakeray
from lakeray.client.credentials import read_credentials
from lakeray.jobs.load_corpus import load
from lakeray.settings import Settings

logging.getLogger("ray.data").setLevel(logging.WARNING)
TABLE = "main.default.package_docs"
ANALYST = "analyst@example.com"

settings = Settings.from_env()
creds = read_credentials(settings.credentials_path) or {}
url = os.environ.get("LAKERAY_URL") or creds.get("url") or settings.url
admin = lakeray.connect(url)  # the admin token from LAKERAY_HOME/credentials
print(f"connected to {url} as {admin.whoami()['name']}")

# 1. A real corpus into a managed Lance table (lineage: package metadata -> table).
loaded = load(admin, TABLE)
print(f"1. {TABLE}: {loaded['num_rows']} package READMEs, version {loaded['version']}")

# 2. A second user with read access: USE CATALOG + USE SCHEMA to reach it, SELECT to read it.
try:
    admin.create_principal(ANALYST)
except lakeray.AlreadyExists:
    pass
admin.grant("catalog", "main", ANALYST, "USE CATALOG")
admin.grant("schema", "main.default", ANALYST, "USE SCHEMA")
admin.grant("table", TABLE, ANALYST, "SELECT")
token = admin.create_token(principal=ANALYST, lifetime_seconds=3600, comment="quickstart")["token_value"]
print(f"2. granted SELECT on {TABLE} to {ANALYST}:",
      admin.get_permissions("table", TABLE, principal=ANALYST)["privilege_assignments"])

# 3. Read it back as the analyst, over HTTP and over Ray.
over_http = lakeray.connect(url, token=token)
table = over_http.read_table(TABLE, columns=["package", "num_chars"])
biggest = sorted(table.to_pylist(), key=lambda r: -r["num_chars"])[:3]
print(f"3a. over HTTP: {table.num_rows} rows; longest READMEs: {[r['package'] for r in biggest]}")

over_ray = lakeray.connect(token=token)
ray.data.DataContext.get_current().enable_progress_bars = False  # keep the walkthrough's output short
dataset = over_ray.read_dataset(TABLE, columns=["package", "text"])
words = dataset.map(lambda row: {"words": len(row["text"].split())}).sum("words")
print(f"3b. over Ray: a Ray Dataset of {dataset.count()} rows, {words} words in all")

# 4. The analyst may not write; the refusal is audited, and lineage shows where the table came from.
try:
    over_http.append(TABLE, [{"package": "x", "text": "y"}])
except lakeray.PermissionDenied as e:
    print(f"4a. write refused as expected: {e.message}")
denied = admin.query_audit(principal=ANALYST, result="denied", limit=1)["events"]
print(f"4b. audit: {denied[0]['principal']} {denied[0]['action']} {denied[0]['securable']} -> {denied[0]['result']}")
edges = admin.get_lineage("table", TABLE)["edges"]
print(f"4c. lineage: {edges[-1]['source']['type']}:{edges[-1]['source']['name']} -> {TABLE}")
print("quickstart done")

"""The tracker's operations: MLflow REST endpoints, each mapped to one operation name.

``ENDPOINTS`` is the single table both the REST routes and the tracker dispatcher are built
from: (HTTP method, path under ``/api/2.0/mlflow``, operation name). An operation takes the
request's JSON fields (or query parameters) as keyword arguments and returns the response
body MLflow's server would return.
"""

from __future__ import annotations

ENDPOINTS: list[tuple[str, str, str]] = [
    ("POST", "/experiments/create", "create_experiment"),
    ("GET", "/experiments/get", "get_experiment"),
    ("GET", "/experiments/get-by-name", "get_experiment_by_name"),
    ("POST", "/experiments/search", "search_experiments"),
    ("GET", "/experiments/search", "search_experiments"),
    ("POST", "/experiments/update", "update_experiment"),
    ("POST", "/experiments/delete", "delete_experiment"),
    ("POST", "/experiments/restore", "restore_experiment"),
    ("POST", "/experiments/set-experiment-tag", "set_experiment_tag"),
    ("POST", "/experiments/delete-experiment-tag", "delete_experiment_tag"),
    ("POST", "/runs/create", "create_run"),
    ("GET", "/runs/get", "get_run"),
    ("POST", "/runs/update", "update_run"),
    ("POST", "/runs/delete", "delete_run"),
    ("POST", "/runs/restore", "restore_run"),
    ("POST", "/runs/log-metric", "log_metric"),
    ("POST", "/runs/log-parameter", "log_param"),
    ("POST", "/runs/set-tag", "set_tag"),
    ("POST", "/runs/delete-tag", "delete_tag"),
    ("POST", "/runs/log-batch", "log_batch"),
    ("POST", "/runs/log-model", "log_model"),
    ("POST", "/runs/log-inputs", "log_inputs"),
    ("POST", "/runs/outputs", "log_outputs"),
    ("POST", "/runs/search", "search_runs"),
    ("GET", "/metrics/get-history", "get_metric_history"),
    ("GET", "/artifacts/list", "list_run_artifacts"),
    ("POST", "/logged-models", "create_logged_model"),
    ("POST", "/logged-models/search", "search_logged_models"),
    ("GET", "/logged-models/{model_id}", "get_logged_model"),
    ("PATCH", "/logged-models/{model_id}", "finalize_logged_model"),
    ("DELETE", "/logged-models/{model_id}", "delete_logged_model"),
    ("PATCH", "/logged-models/{model_id}/tags", "set_logged_model_tags"),
    ("DELETE", "/logged-models/{model_id}/tags/{tag_key}", "delete_logged_model_tag"),
    ("POST", "/logged-models/{model_id}/params", "log_logged_model_params"),
    ("GET", "/logged-models/{model_id}/artifacts/directories", "list_logged_model_artifacts"),
    ("GET", "/experiments/permissions", "get_experiment_permissions"),
    ("POST", "/experiments/permissions", "set_experiment_permission"),
]

#: the proxied artifact API (``/api/2.0/mlflow-artifacts``), served by the tracker too.
ARTIFACT_OPERATIONS = frozenset({"upload_artifact", "download_artifact", "list_artifacts", "delete_artifact",
                                 "artifact_target", "record_artifact_upload"})

#: every operation the tracker actor owns (everything else belongs to the registry).
TRACKER_OPERATIONS = frozenset({op for _, _, op in ENDPOINTS}) | ARTIFACT_OPERATIONS

"""Secret scopes and secrets (the Databricks Secrets API), kept encrypted in the metadata DB."""

"""Model serving: Databricks-shaped serving endpoints whose served entities run as Ray Serve
applications, reached by the API ingress through deployment handles."""

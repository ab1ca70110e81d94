"""Ray job entrypoints: ``python -m lakeray.jobs.<name>`` (package ``lakeray.jobs``)."""

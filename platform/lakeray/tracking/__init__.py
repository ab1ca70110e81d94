"""Experiment tracking, wire-compatible with MLflow: experiments, runs, metrics, params, tags,
dataset inputs and MLflow 3 logged models (``service.TrackingService``), searched with
MLflow's filter grammar (``search`` parses, ``filters`` compiles to SQL), stored in the
tables of ``tables`` (migration 3)."""

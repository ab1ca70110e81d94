"""The governed catalog: securables, grants, tables, volumes, functions, audit and lineage."""

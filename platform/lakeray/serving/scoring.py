"""The MLflow / Databricks scoring formats: a request body to a pyfunc model's input, and its
output to ``{"predictions": ...}``.

Accepted (exactly one of): ``dataframe_split`` (``{"columns", "data"[, "index"]}``),
``dataframe_records`` (a list of row objects), ``instances`` or ``inputs`` (TF-serving style: a
list of rows, a list of objects, or an object of columns); an optional ``params`` object goes to
``predict(params=...)``.
"""

from __future__ import annotations

from lakeray.errors import InvalidArgument

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse(body: object):
    """``(model_input, params)`` from a request body; InvalidArgument names what is wrong."""
    import numpy as np
    import pandas as pd

    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object with one of " + ", ".join(FORMATS))
    given = [f for f in FORMATS if f in body]
    if len(given) != 1:
        raise InvalidArgument(f"give exactly one of {', '.join(FORMATS)}" + (f"; got {', '.join(given)}" if given else ""))
    unknown = sorted(set(body) - {*FORMATS, "params"})
    if unknown:
        raise InvalidArgument(f"unknown field {unknown[0]!r} in the request body")
    params = body.get("params")
    if params is not None and not isinstance(params, dict):
        raise InvalidArgument("params: expected an object")
    fmt, value = given[0], body[given[0]]
    if fmt == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise InvalidArgument("dataframe_split: expected an object with a 'data' list (and 'columns')")
        columns = value.get("columns")
        if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str | int) for c in columns)):
            raise InvalidArgument("dataframe_split.columns: expected a list of column names")
        rows = value["data"]
        if not all(isinstance(r, list) for r in rows):
            raise InvalidArgument("dataframe_split.data: expected a list of rows (lists)")
        if columns is not None and any(len(r) != len(columns) for r in rows):
            raise InvalidArgument(f"dataframe_split.data: every row needs {len(columns)} values, one per column")
        return pd.DataFrame(rows, columns=columns, index=value.get("index")), params
    if fmt == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise InvalidArgument("dataframe_records: expected a list of objects (one per row)")
        return pd.DataFrame.from_records(value), params
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return pd.DataFrame.from_records(value), params
    if isinstance(value, dict):
        try:
            return {k: np.asarray(v) for k, v in value.items()}, params
        except ValueError as e:
            raise InvalidArgument(f"{fmt}: {e}") from None
    if not isinstance(value, list):
        raise InvalidArgument(f"{fmt}: expected a list or an object")
    try:
        return np.asarray(value), params
    except ValueError as e:  # ragged rows
        raise InvalidArgument(f"{fmt}: {e}") from None


def jsonable(value):
    """A model's output as JSON values (frames as records, arrays as lists)."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    if isinstance(value, pd.Series | np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value

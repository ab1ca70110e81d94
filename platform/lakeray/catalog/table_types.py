"""Column types: Arrow schemas <-> Unity Catalog ColumnInfo (type_name, type_text, type_json)."""

from __future__ import annotations

import json

import pyarrow as pa

from lakeray.errors import InvalidArgument

_SIMPLE: dict[str, pa.DataType] = {
    "BOOLEAN": pa.bool_(), "BYTE": pa.int8(), "SHORT": pa.int16(), "INT": pa.int32(),
    "LONG": pa.int64(), "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"), "TIMESTAMP_NTZ": pa.timestamp("us"),
    "STRING": pa.string(), "BINARY": pa.binary(),
}
# Spark's simple type names, used in type_text and type_json.
_SPARK = {"BOOLEAN": "boolean", "BYTE": "byte", "SHORT": "short", "INT": "int", "LONG": "long",
          "FLOAT": "float", "DOUBLE": "double", "DATE": "date", "TIMESTAMP": "timestamp",
          "TIMESTAMP_NTZ": "timestamp_ntz", "STRING": "string", "BINARY": "binary"}


def _uc_type(t: pa.DataType) -> tuple[str, str, object]:
    """(type_name, type_text, spark json type) of an Arrow type."""
    if pa.types.is_boolean(t):
        name = "BOOLEAN"
    elif pa.types.is_int8(t) or pa.types.is_uint8(t):
        name = "BYTE"
    elif pa.types.is_int16(t) or pa.types.is_uint16(t):
        name = "SHORT"
    elif pa.types.is_int32(t):
        name = "INT"
    elif pa.types.is_integer(t):
        name = "LONG"
    elif pa.types.is_float16(t) or pa.types.is_float32(t):
        name = "FLOAT"
    elif pa.types.is_float64(t):
        name = "DOUBLE"
    elif pa.types.is_date(t):
        name = "DATE"
    elif pa.types.is_timestamp(t):
        name = "TIMESTAMP" if t.tz else "TIMESTAMP_NTZ"
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        name = "STRING"
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        name = "BINARY"
    elif pa.types.is_decimal(t):
        text = f"decimal({t.precision},{t.scale})"
        return "DECIMAL", text, text
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        _, inner_text, inner_json = _uc_type(t.value_type)
        return "ARRAY", f"array<{inner_text}>", {"type": "array", "elementType": inner_json,
                                                 "containsNull": True}
    elif pa.types.is_struct(t):
        fields = [(f.name, *_uc_type(f.type)[1:]) for f in t]
        text = "struct<" + ",".join(f"{n}:{tt}" for n, tt, _ in fields) + ">"
        return "STRUCT", text, {"type": "struct", "fields": [
            {"name": n, "type": tj, "nullable": True, "metadata": {}} for n, _, tj in fields]}
    elif pa.types.is_map(t):
        _, kt, kj = _uc_type(t.key_type)
        _, vt, vj = _uc_type(t.item_type)
        return "MAP", f"map<{kt},{vt}>", {"type": "map", "keyType": kj, "valueType": vj,
                                           "valueContainsNull": True}
    else:
        raise InvalidArgument(f"unsupported column type {t}")
    return name, _SPARK[name], _SPARK[name]


def columns_from_arrow(schema: pa.Schema) -> list[dict]:
    """UC ColumnInfo dicts for an Arrow schema."""
    out = []
    for i, field in enumerate(schema):
        name, text, js = _uc_type(field.type)
        out.append({"name": field.name, "type_name": name, "type_text": text,
                    "type_json": json.dumps({"name": field.name, "type": js, "nullable": field.nullable,
                                             "metadata": {}}),
                    "position": i, "nullable": field.nullable})
    return out


def _arrow_from_spark(js: object) -> pa.DataType:
    if isinstance(js, str):
        if js.startswith("decimal("):
            p, s = js[len("decimal("):-1].split(",")
            return pa.decimal128(int(p), int(s))
        for name, spark in _SPARK.items():
            if js == spark:
                return _SIMPLE[name]
        raise InvalidArgument(f"unsupported type {js!r}")
    if isinstance(js, dict):
        kind = js.get("type")
        if kind == "array":
            return pa.list_(_arrow_from_spark(js.get("elementType")))
        if kind == "map":
            return pa.map_(_arrow_from_spark(js.get("keyType")), _arrow_from_spark(js.get("valueType")))
        if kind == "struct":
            return pa.struct([pa.field(f["name"], _arrow_from_spark(f["type"]), f.get("nullable", True))
                              for f in js.get("fields", [])])
    raise InvalidArgument(f"unsupported type_json {js!r}")


def arrow_from_columns(columns: object) -> pa.Schema:
    """An Arrow schema from UC ColumnInfo dicts (type_name, and type_json for nested types)."""
    if not isinstance(columns, list) or not columns:
        raise InvalidArgument("columns must be a non-empty list")
    fields = []
    for col in sorted(columns, key=lambda c: c.get("position", 0) if isinstance(c, dict) else 0):
        if not isinstance(col, dict) or not isinstance(col.get("name"), str):
            raise InvalidArgument("each column must be an object with a name")
        type_name = col.get("type_name")
        nullable = col.get("nullable", True)
        if type_name in _SIMPLE:
            t = _SIMPLE[type_name]
        elif type_name in ("ARRAY", "MAP", "STRUCT", "DECIMAL"):
            try:
                js = json.loads(col.get("type_json") or "null")
            except (TypeError, ValueError):
                raise InvalidArgument(f"column {col['name']!r}: type_json is not valid JSON") from None
            if isinstance(js, dict) and "type" in js and "name" in js:
                js = js["type"]
            if type_name == "DECIMAL" and js is None:
                js = f"decimal({col.get('type_precision', 10)},{col.get('type_scale', 0)})"
            t = _arrow_from_spark(js)
        else:
            raise InvalidArgument(f"column {col['name']!r}: unsupported type_name {type_name!r}")
        fields.append(pa.field(col["name"], t, bool(nullable)))
    return pa.schema(fields)

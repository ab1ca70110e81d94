"""lakeray: a self-hosted AI platform on Ray.

    import lakeray
    c = lakeray.connect()                                   # over Ray actor handles
    c = lakeray.connect("http://127.0.0.1:8000", token=...)  # over HTTP
"""

from lakeray.errors import (
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    InvalidArgument,
    LakerayError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

__version__ = "0.1.0"


def connect(url: str | None = None, token: str | None = None, **kwargs):
    """Connect to a lakeray platform; see :func:`lakeray.client.connect`."""
    from lakeray.client import connect as _connect

    return _connect(url, token=token, **kwargs)


__all__ = [
    "AlreadyExists",
    "Conflict",
    "DeadlineExceeded",
    "InvalidArgument",
    "LakerayError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "__version__",
    "connect",
]

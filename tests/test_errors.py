import pickle

import pytest

from lakeray import errors


@pytest.mark.parametrize("cls", [errors.NotFound, errors.AlreadyExists, errors.InvalidArgument,
                                 errors.PermissionDenied, errors.Unauthenticated, errors.Conflict,
                                 errors.ResourceExhausted, errors.Unavailable, errors.PayloadTooLarge])
def test_errors_pickle_and_round_trip_the_wire(cls):
    e = cls("boom")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is cls and back.message == "boom"
    wire = e.to_json()
    rebuilt = errors.from_wire(wire["error_code"], wire["message"], errors.http_status(e))
    assert type(rebuilt) is cls


def test_status_table():
    assert errors.http_status(errors.NotFound("x")) == 404
    assert errors.http_status(errors.PermissionDenied("x")) == 403
    assert errors.http_status(errors.Unauthenticated("x")) == 401
    assert errors.http_status(errors.AlreadyExists("x")) == 409
    assert errors.http_status(errors.PayloadTooLarge("x")) == 413
    assert errors.http_status(errors.InvalidArgument("x")) == 400
    assert type(errors.from_wire("SOMETHING_ELSE", "m", 404)) is errors.NotFound

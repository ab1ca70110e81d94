import pytest

from lakeray.catalog import names
from lakeray.errors import InvalidArgument

BAD = ["", "..", "a.b", "%2e%2e", "a\x00b", "x" * 10_000, "ｍain", "mаin", "a b", "a-b",
       "' OR 1=1--", "{{7*7}}", "$HOME", "a/b", "a\\b", "é"]


@pytest.mark.parametrize("value", BAD)
def test_bad_identifiers_rejected(value):
    with pytest.raises(InvalidArgument):
        names.identifier(value)


def test_identifiers_are_lower_cased():
    assert names.identifier("Main_2") == "main_2"
    assert names.full_name("Main.Default.T", 3) == ("main", "default", "t")


@pytest.mark.parametrize("value", ["main", "main.default.t.x", "main..t", ".main.t", "main.default."])
def test_full_names_need_the_right_parts(value):
    with pytest.raises(InvalidArgument):
        names.full_name(value, 3)


def test_principal_names():
    assert names.principal("Alice@Example.com") == "alice@example.com"
    for bad in ["", "a b", "-x", "x" * 300, "a\x00", "' or 1=1"]:
        with pytest.raises(InvalidArgument):
            names.principal(bad)

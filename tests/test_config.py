"""infocam.config: the one schema mechanism behind chapter parameters and training recipes."""

import math

import pytest

from infocam import config


@pytest.mark.parametrize("value, schema, expected", [
    (1, {"type": "integer", "minimum": 1}, None),
    (0, {"type": "integer", "minimum": 1}, "(0 is less than the minimum of 1); allowed: integer ≥ 1"),
    (math.nan, {"type": "number"}, "(numbers must be finite: no nan or inf); allowed: number"),
    ([1.0, math.inf], {"type": "array"}, "numbers must be finite"),
    ({"a": -math.inf}, {"type": "object"}, "numbers must be finite"),
    ("fp61", {"enum": ["fp32", "bf16", "fp16"]}, "(did you mean 'fp16'?); allowed: one of fp32, bf16, fp16"),
    ("zzz", {"enum": ["fp32", "bf16"]}, "('zzz' is not one of them); allowed: one of fp32, bf16"),
    (True, {"enum": ["auto", True, False]}, None),
    (None, {"type": ["integer", "null"], "minimum": 1}, None),
    ("resnet51", {"registry": "networks"}, "did you mean 'resnet50'?"),
    ("sgdd", {"registry": "losses"}, "is not one of"),
])
def test_problem_says_what_is_wrong_and_what_is_allowed(value, schema, expected):
    found = config.problem("x", value, schema)
    if expected is None:
        assert found is None
    else:
        assert expected in found


def test_allowed_reads_a_schema_back_in_words():
    assert config.allowed({"type": "number", "exclusiveMinimum": 0, "maximum": 10}) == "number > 0, ≤ 10"
    assert config.allowed({"enum": ["auto", True, None]}) == "one of auto, true, null"
    assert config.allowed({"type": "array", "items": {"type": "integer"}, "minItems": 2}) == \
        "list of integers, at least 2 items"
    assert config.allowed({"description": "said so"}) == "said so"
    assert config.allowed({"registry": "precisions"}) == "one of fp32, bf16, fp16"


def test_did_you_mean_knows_aliases_and_spellings():
    known = ["lr", "epochs", "batch_size"]
    assert config.did_you_mean("learning_rate", known, {"learning_rate": "lr"}) == "; did you mean 'lr'?"
    assert config.did_you_mean("epoch", known) == "; did you mean 'epochs'?"
    assert config.did_you_mean("qqq", known) == "; known: lr, epochs, batch_size"
    assert config.closest("qqq", known) is None


def test_parse_override_reads_yaml_values_and_refuses_what_is_not_key_value():
    assert config.parse_override("train.lr=0.1") == ("train.lr", 0.1)
    assert config.parse_override("a=[1, 2]") == ("a", [1, 2])
    assert config.parse_override("a=") == ("a", "")
    key, value = config.parse_override("lr=.nan")
    assert key == "lr" and math.isnan(value)
    with pytest.raises(KeyError, match="-s expects key=value, got 'lr'"):
        config.parse_override("lr", KeyError, "-s")
    with pytest.raises(ValueError, match="no key"):
        config.parse_override("=3")
    with pytest.raises(ValueError, match="cannot parse value of 'a'"):
        config.parse_override("a=[1, 2")


def test_unknown_registry_is_an_error():
    with pytest.raises(ValueError, match="unknown registry 'optimisers'"):
        config.registry("optimisers")

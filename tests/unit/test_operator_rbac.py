"""The ClusterRole in `manifests/` is the one the code's declared rules render."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler import operator

ROLE = Path(__file__).parents[2] / "manifests/rbac/base/role.yaml"


def test_the_manifest_is_rendered_from_the_code() -> None:
    """A permission added in code reaches the manifest (`make rbac`), and only then."""
    assert ROLE.read_text() == operator.cluster_role_yaml(), "run `make rbac`"


def test_every_rule_says_why_and_no_verb_is_a_wildcard() -> None:
    rules = yaml.safe_load(operator.cluster_role_yaml())["rules"]
    assert len(rules) == len(operator.RULES)
    assert all(rule.why for rule in operator.RULES)
    verbs = {verb for rule in rules for verb in rule["verbs"]}
    assert "*" not in verbs
    assert not {"escalate", "bind", "impersonate"} & verbs

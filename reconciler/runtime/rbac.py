"""RBAC rules declared next to the code that needs them, and the role they add up to.

Each module that talks to the API declares the permissions its calls need (`RULES`), with the
reason; the operator's ClusterRole in `manifests/rbac/` is rendered from those declarations
(`reconciler rbac`), and a test keeps the file and the code in step. Least privilege follows:
a permission exists because a line of code uses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.runtime.client import JSON


@dataclass(frozen=True, slots=True)
class Rule:
    """One RBAC policy rule and why the operator needs it."""

    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str

    def policy(self) -> JSON:
        """The rule as RBAC's PolicyRule."""
        return {
            "apiGroups": [self.group],
            "resources": list(self.resources),
            "verbs": sorted(self.verbs),
        }


# Informers list and watch; server-side apply creates and patches.
READ = ("list", "watch")
APPLY = ("create", "patch")


def _flow(items: Iterable[str]) -> str:
    return f"[{', '.join(items)}]"


def role_yaml(name: str, rules: Iterable[Rule], header: str) -> str:
    """A ClusterRole `name` with `rules`, each under a comment giving its reason."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [
        "apiVersion: rbac.authorization.k8s.io/v1",
        "kind: ClusterRole",
        "metadata:",
        f"  name: {name}",
        "rules:",
    ]
    for rule in rules:
        policy = rule.policy()
        lines += [
            f"  # {rule.why}",
            f'  - apiGroups: ["{rule.group}"]',
            f"    resources: {_flow(policy['resources'])}",
            f"    verbs: {_flow(policy['verbs'])}",
        ]
    return "\n".join(lines) + "\n"

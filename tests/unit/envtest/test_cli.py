"""`reconciler-envtest`: options where users type them."""

from __future__ import annotations

import pytest
from reconciler_envtest.cli import parser


@pytest.mark.parametrize(
    "argv",
    [
        ["exec", "--dir", "D", "--", "kubectl", "--kubeconfig", "k", "get", "pods"],
        ["--dir", "D", "exec", "--", "kubectl", "--kubeconfig", "k", "get", "pods"],
    ],
)
def test_envtest_options_before_or_after_the_action(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert (args.action, args.dir) == ("exec", "D")
    assert args.command_args == ["kubectl", "--kubeconfig", "k", "get", "pods"]


def test_envtest_defaults_and_flags() -> None:
    args = parser().parse_args(["status"])
    assert (args.action, args.dir, args.process_node) == ("status", ".envtest", False)
    args = parser().parse_args(["up", "--process-node", "--dir", "E"])
    assert (args.action, args.dir, args.process_node) == ("up", "E", True)


def test_envtest_unknown_action_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["start"])
    assert "invalid choice: 'start'" in capsys.readouterr().err

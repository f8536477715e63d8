"""describe_stacks for the one deployed stack `bridge` (moto's CloudFormation extra is not installed)."""

from __future__ import annotations

from typing import Any


class FakeStack:
    """`parameters` and `outputs` may be changed between calls, as a stack update would."""

    def __init__(self, parameters: dict[str, str] | None = None, outputs: dict[str, str] | None = None) -> None:
        self.parameters = dict(parameters or {})
        self.outputs = dict(outputs or {})
        self.calls = 0

    def describe_stacks(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs == {"StackName": "bridge"}
        self.calls += 1
        stack = {
            "StackName": "bridge",
            "StackStatus": "UPDATE_COMPLETE",
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in self.parameters.items()],
            "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()],
        }
        return {"Stacks": [stack]}

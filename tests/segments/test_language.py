"""Invalid definitions are refused with the path of the offending part."""

from __future__ import annotations

from typing import Any

import pytest

from omnicx.segments.language import DefinitionError, dependencies, parse


@pytest.mark.parametrize(
    ("definition", "path", "reason"),
    [
        ([], "", "non-empty object"),
        ({"and": []}, "and", "non-empty list"),
        (
            {"and": [{"trait": "plan", "op": "equals", "value": "x"}, {"trait": "a", "op": "eq"}]},
            "and[1].op",
            "unknown operator 'eq'",
        ),
        ({"trait": "age", "op": "gt", "value": "old"}, "value", "needs a number"),
        ({"trait": "age", "op": "exists", "value": 1}, "value", "takes no value"),
        ({"trait": "tier", "op": "in", "value": []}, "value", "non-empty list"),
        ({"event": "Viewed", "count": {"ge": 2}}, "count", "unknown comparison 'ge'"),
        ({"event": "Viewed", "count": {"gte": -1}}, "count", "whole number"),
        ({"event": "Viewed", "within": "7 fortnights"}, "within", "not a duration"),
        (
            {"event": "Viewed", "where": [{"property": "x", "op": "near", "value": 1}]},
            "where[0].op",
            "unknown operator",
        ),
        (
            {
                "event": "Added",
                "within": "1h",
                "not_followed_by": {"event": "Ordered", "within": "2h"},
            },
            "not_followed_by",
            "shorter",
        ),
        (
            {"event": "Added", "not_followed_by": {"event": "Ordered", "within": "2h"}},
            "within",
            "window",
        ),
        ({"commerce": "lifetime_value", "op": "gt", "value": 1}, "commerce", "unknown measure"),
        (
            {"commerce": "total_spent", "op": "gte", "value": 1, "fulfillment": "drone"},
            "fulfillment",
            "pickup",
        ),
        ({"reachable": "pigeon"}, "reachable", "unknown channel"),
        ({"reachable": {"channel": "email"}}, "reachable", "unknown channel"),
        ({"trait": "age", "op": ["gt"], "value": 1}, "op", "unknown operator"),
        ({"commerce": ["total_spent"]}, "commerce", "name of a measure"),
        ({"not": {"segment": ""}}, "not.segment", "non-empty string"),
        ({"colour": "blue"}, "", "unknown condition"),
        ({"trait": "x", "op": "exists", "extra": 1}, "", "unexpected keys"),
    ],
)
def test_invalid_definitions_point_at_the_problem(definition: Any, path: str, reason: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse(definition)
    assert caught.value.path == path
    assert reason in caught.value.reason


def test_dependencies_say_what_can_change_the_answer() -> None:
    node = parse(
        {
            "and": [
                {"trait": "plan", "op": "equals", "value": "gold"},
                {
                    "event": "Product Added",
                    "within": "2d",
                    "not_followed_by": {"event": "Order Completed", "within": "1h"},
                },
                {"not": {"segment": "vips"}},
                {"reachable": "email", "topic": "news"},
                {"commerce": "order_count", "op": "gte", "value": 1},
            ]
        }
    )
    deps = dependencies(node)
    assert deps.as_json() == {
        "events": ["Order Completed", "Product Added"],
        "traits": ["plan"],
        "commerce": True,
        "consent": True,
        "computed": False,
        "segments": ["vips"],
        "time": True,
    }

"""``package.module:callable`` paths: imported, or refused in one line naming the field."""

from __future__ import annotations

import pytest

from fedmuscle_flwr.config.imports import load_callable


def test_imports_a_nested_attribute() -> None:
    fn = load_callable("os.path:join", "model.backbone")
    assert fn("a", "b") == "a/b"


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("os.path", "expected 'package.module:callable'"),
        ("no_such_module_xyz:f", "cannot import module"),
        ("os.path:nope", "module has no 'nope'"),
        ("os:sep", "is not callable"),
    ],
)
def test_bad_paths(path: str, fragment: str) -> None:
    with pytest.raises(ValueError) as exc:
        load_callable(path, "data.dataset")
    assert fragment in str(exc.value) and "data.dataset" in str(exc.value)

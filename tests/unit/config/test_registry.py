"""The one registry style (config/registry.py): decorator names, lazy folder scan."""

from __future__ import annotations

import sys
import textwrap

import pytest

from fedmuscle_flwr.config.registry import Registry
from fedmuscle_flwr.config.schema import ConfigError


def test_register_names_once_sets_the_attribute_and_refuses_a_second_entry():
    reg: Registry[type] = Registry("thing", "fedmuscle_flwr.config", name_attr="name")

    @reg.register("a")
    class A:
        name = ""

    assert A.name == "a" and reg["a"] is A and list(reg) == ["a"]
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", type("B", (), {}))
    with pytest.raises(ValueError, match="without ':'"):
        reg.register("x:y")


def test_unknown_entry_raises_the_registrys_error_listing_the_known():
    reg: Registry[int] = Registry("number", "fedmuscle_flwr.config", error=ConfigError)
    reg.add("one", 1)
    with pytest.raises(ConfigError, match=r"number 'two' is not registered; .*'one'"):
        reg.entry("two")


def test_a_new_file_in_the_folder_is_found_by_the_scan(tmp_path, monkeypatch):
    # Prepare: a package whose second module registers into the first's registry
    pkg = tmp_path / "regpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text(
        "from fedmuscle_flwr.config.registry import Registry\n"
        "REG = Registry('plugin', 'regpkg')\n"
    )
    (pkg / "extra.py").write_text(
        textwrap.dedent(
            """
            from regpkg.base import REG

            @REG.register("extra")
            def build():
                return 42
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    # Execute: nothing imported extra.py; reading the registry scans the folder
    from regpkg.base import REG  # type: ignore[import-not-found]

    assert "regpkg.extra" not in sys.modules
    assert sorted(REG) == ["extra"] and REG["extra"]() == 42
    for name in [m for m in sys.modules if m.startswith("regpkg")]:
        monkeypatch.delitem(sys.modules, name)


def test_the_three_registries_share_the_style():
    from fedmuscle_flwr.method.algorithms import ALGORITHMS
    from fedmuscle_flwr.models.base import ENCODERS
    from fedmuscle_flwr.tasks.base import TASKS

    for reg in (ALGORITHMS, ENCODERS, TASKS):
        assert isinstance(reg, Registry) and len(reg) >= 4
    assert all(cls.name == n for n, cls in ALGORITHMS.items())
    assert all(cls.kind == n for n, cls in TASKS.items())

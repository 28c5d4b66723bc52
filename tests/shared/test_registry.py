"""The one registry shape every plug-in kind uses (shared/registry.py)."""

import pytest

from shared.registry import Registry


class PluginError(ValueError):
    pass


def test_register_and_look_up():
    reg = Registry("effect", PluginError)

    @reg.register("sepia")
    class Sepia:
        pass

    assert reg.get_or_raise("sepia") is Sepia
    assert reg.choices() == ["sepia"]


def test_unknown_key_names_the_choices():
    reg = Registry("output", PluginError)
    reg.add("null", object)
    reg.add("file", dict)
    with pytest.raises(PluginError, match=r"unknown output 'v4l3': choose one of file, null"):
        reg.get_or_raise("v4l3")


def test_unavailable_key_names_its_reason_not_unknown():
    reg = Registry("output", PluginError)
    reg.unavailable("window", "needs a display: set DISPLAY or use --output v4l2")
    with pytest.raises(PluginError, match="not available here: needs a display"):
        reg.get_or_raise("window")
    assert reg.choices() == []


def test_same_key_twice_is_an_error_naming_both():
    reg = Registry("model", PluginError)
    reg.add("selfie", int)
    reg.add("selfie", int)  # the same item again is fine (module re-import)
    with pytest.raises(PluginError, match="registered twice"):
        reg.add("selfie", float)

"""The benchmark does not collect its own heap while a unit is measured."""

import gc

import pytest

from bench.run import collector_paused


def test_the_collector_is_off_inside_and_back_on_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_comes_back_when_the_unit_fails() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("unit failed")
    assert gc.isenabled()


def test_garbage_from_before_the_unit_is_collected_before_it() -> None:
    class Node:
        other: "Node"

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    del a, b
    with collector_paused():
        assert not [o for o in gc.get_objects() if isinstance(o, Node)]


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()

"""The course plumbing: the scale switch and seeding."""

import pytest

from bertcourse import course


def test_scale_from_env(monkeypatch):
    monkeypatch.setenv("BERTCOURSE_SCALE", "full")
    assert course.get_scale() == "full"
    monkeypatch.delenv("BERTCOURSE_SCALE")
    assert course.get_scale() == "course"
    assert course.get_scale("CI") == "ci"


def test_bad_scale_is_clear(monkeypatch):
    monkeypatch.setenv("BERTCOURSE_SCALE", "huge")
    with pytest.raises(ValueError, match="ci, course, full"):
        course.get_scale()


def test_scale_value_requires_every_scale():
    assert course.scale_value({"ci": 1, "course": 2, "full": 3}, scale="course") == 2
    with pytest.raises(ValueError, match="missing"):
        course.scale_value({"ci": 1}, scale="ci")


def test_setup_seeds_everything():
    import numpy as np
    import keras

    info = course.setup(seed=7, scale="ci")
    a = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    course.setup(seed=7, scale="ci")
    b = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    assert info["scale"] == "ci" and info["seed"] == 7
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])

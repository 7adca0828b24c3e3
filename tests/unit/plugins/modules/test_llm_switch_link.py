"""The link switch the health gate and its rollback rely on."""

import os

import pytest
from ansible_collections.cpu_llm.infra.plugins.modules.llm_switch_link import switch


def test_first_switch_has_no_previous_then_switches_and_reports_it(tmp_path):
    a, b, link = tmp_path / "a", tmp_path / "b", str(tmp_path / "current")
    a.mkdir()
    b.mkdir()
    assert switch(link, str(a), check_mode=False) == (True, "")
    assert switch(link, str(a), check_mode=False) == (False, str(a))
    assert switch(link, str(b), check_mode=False) == (True, str(a))
    assert os.readlink(link) == str(b)
    # Rolling back is switching to the returned previous target.
    assert switch(link, str(a), check_mode=False) == (True, str(b))
    assert os.readlink(link) == str(a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "current"]  # no temporary link left


def test_check_mode_reports_without_touching(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    link = str(tmp_path / "current")
    assert switch(link, str(tmp_path / "not-built-yet"), check_mode=True) == (True, "")
    assert not os.path.lexists(link)


def test_refuses_a_real_directory_and_a_missing_target(tmp_path):
    (tmp_path / "current").mkdir()
    with pytest.raises(ValueError, match="not a symlink"):
        switch(str(tmp_path / "current"), str(tmp_path), check_mode=False)
    with pytest.raises(ValueError, match="does not exist"):
        switch(str(tmp_path / "other"), str(tmp_path / "missing"), check_mode=False)


def test_a_relative_link_reports_its_absolute_target(tmp_path):
    (tmp_path / "versions" / "a").mkdir(parents=True)
    os.symlink("versions/a", tmp_path / "current")
    assert switch(str(tmp_path / "current"), str(tmp_path / "versions" / "a"), check_mode=False) == \
        (False, str(tmp_path / "versions" / "a"))

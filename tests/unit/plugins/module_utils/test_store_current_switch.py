# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model store's ``current`` link is swapped in one rename: a reader sees old or new, never neither.

A reader (the inference service starting, a health check) may resolve ``current`` at any moment.
Removing the link and then renaming a new one into place leaves a window in which it does not
exist. Rather than race a real reader, the test checks ``current`` after every call the store
makes into ``os``, which is where such a window would open.
"""
from __future__ import annotations

import os

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _artifact_store


class OsWatch:
    """Forwards to ``os``; after each call it notes whether ``current`` still exists."""

    def __init__(self, real, link):
        self._real = real
        self._link = link
        self.missing_after = []

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr) or name.startswith('_'):
            return attr

        def watched(*args, **kwargs):
            result = attr(*args, **kwargs)
            if not self._real.path.lexists(self._link):
                self.missing_after.append(name)
            return result
        return watched


@pytest.fixture
def store(tmp_path):
    store = _artifact_store.ModelStore(str(tmp_path), 'deepseek-v3')
    for version in ('v1', 'v2'):
        os.makedirs(store.version_dir(version))
    store.switch('v1')
    assert os.readlink(store.current_link) == os.path.join('versions', 'v1')
    return store


def test_switch_never_leaves_current_missing(store, monkeypatch):
    watch = OsWatch(os, store.current_link)
    monkeypatch.setattr(_artifact_store, 'os', watch)
    store.switch('v2')
    monkeypatch.undo()
    assert watch.missing_after == []
    assert os.readlink(store.current_link) == os.path.join('versions', 'v2')
    assert sorted(os.listdir(store.root)) == ['current', 'versions']  # no temporary link left


def test_failed_swap_keeps_the_old_link_and_leaves_no_temporary(store, monkeypatch):
    def refuse(src, dst):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(_artifact_store.os, 'replace', refuse)
    monkeypatch.setattr(_artifact_store.os, 'rename', refuse)
    with pytest.raises(OSError):
        store.switch('v2')
    monkeypatch.undo()
    assert os.readlink(store.current_link) == os.path.join('versions', 'v1')
    assert sorted(os.listdir(store.root)) == ['current', 'versions']

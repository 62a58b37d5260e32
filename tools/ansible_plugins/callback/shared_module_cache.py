# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Development tooling, not collection content: one module payload cache for the runs of a test.

ansible-core builds each module's payload (AnsiballZ: the module and the module_utils it imports,
found by parsing them) once per run, into ``ansiballz_cache`` under the run's own temporary
directory, which it removes at exit. A test of this collection makes hundreds of runs (molecule's,
the nested ones verify starts, the unit tests'), and about a quarter of a second of CPU per module
and run goes into building the same payloads again. With ONPREM_MODULE_CACHE naming a directory,
this plugin makes the run's ``ansiballz_cache`` a link to it, so the runs share their payloads.
The cache is keyed by module name only: it is right only while the modules do not change, that
is within one test run (``./dev test`` makes the directory and removes it).

The plugin needs no enabling: ``./dev`` puts its directory on ANSIBLE_CALLBACK_PLUGINS.
"""
from __future__ import annotations

import os
import stat

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: shared_module_cache
type: aggregate
short_description: share built module payloads between the runs of one test
description:
  - Links the run's module payload cache to the directory that C(ONPREM_MODULE_CACHE) names.
  - Does nothing when C(ONPREM_MODULE_CACHE) is unset or empty.
"""

ENV = 'ONPREM_MODULE_CACHE'
# ansible.executor.module_common's cache, under the run's temporary directory.
CACHE_NAME = 'ansiballz_cache'


def check_shared_dir(path):
    """The directory must exist and be writable by this user alone: the cache holds pickles."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise AnsibleError(f'{ENV} ({path}): {e.strerror}') from e
    if not stat.S_ISDIR(st.st_mode):
        raise AnsibleError(f'{ENV} ({path}) is not a directory')
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise AnsibleError(f'{ENV} ({path}) must be owned by this user and writable by it alone')


def share(shared, local_tmp):
    """Make local_tmp's payload cache the shared directory. Returns the link, or None."""
    if not shared:
        return None
    shared = os.path.abspath(shared)
    check_shared_dir(shared)
    link = os.path.join(local_tmp, CACHE_NAME)
    if os.path.lexists(link):
        # A cache of this run's own already exists: keep it.
        return None
    os.symlink(shared, link)
    return link


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'shared_module_cache'
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, display=None):
        super().__init__(display)
        # Callbacks load before the first task, so before any worker builds a payload.
        share(os.environ.get(ENV), C.DEFAULT_LOCAL_TMP)

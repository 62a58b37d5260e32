# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pki role's preflight on both sides of its numeric limits.

The read-only preflight runs on localhost (as playbooks/check_inputs.yml does, before any host
changes), as the CA host of an internal CA with no certificates; the token is only described
(hsm_token), never used. Nothing on this machine is changed.
"""
from __future__ import annotations

import json
import sys

import pytest

from playbook_runs import needs_playbook, run_playbook

PLAY = '''---
- name: The pki role's preflight alone
  hosts: localhost
  tasks:
    - name: Run it
      ansible.builtin.include_role:
        name: onprem.deepseek.pki
        tasks_from: preflight.yml
'''
GOOD = {
    'pki_enabled': True,
    'pki_ca_host': 'localhost',
    'hsm_token': {'enabled': True},
    'pki_cert_validity_days': 30,
    'pki_renew_before_days': 29,
}


def preflight(tmp_path, **changes):
    (tmp_path / 'preflight.yml').write_text(PLAY)
    (tmp_path / 'vars.json').write_text(json.dumps(dict(GOOD, **changes)))
    return run_playbook(['-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % sys.executable,
                         '-e', '@vars.json', 'preflight.yml'], cwd=tmp_path)


@needs_playbook
@pytest.mark.parametrize('validity, renew', [(30, 29), (1, 0), (90, 30)])
def test_a_window_shorter_than_the_validity_passes(tmp_path, validity, renew):
    run = preflight(tmp_path, pki_cert_validity_days=validity, pki_renew_before_days=renew)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


@needs_playbook
@pytest.mark.parametrize('validity, renew', [(30, 30), (30, 45), (1, 1)])
def test_a_window_as_long_as_the_validity_is_refused_naming_both(tmp_path, validity, renew):
    run = preflight(tmp_path, pki_cert_validity_days=validity, pki_renew_before_days=renew)
    assert run.returncode != 0
    assert ('pki_renew_before_days (%d) must be less than pki_cert_validity_days (%d)' % (renew, validity)
            in ' '.join((run.stdout + run.stderr).split()))

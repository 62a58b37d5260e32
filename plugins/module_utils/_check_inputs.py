# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which roles' input checks a run needs (playbooks/check_inputs.yml).

A run checks the roles it applies: every role, or those its --tags select (a role's name, or a
tag of the role's own, ``<role>_<anything>``), less the roles --skip-tags names whole, within the
roles the importing playbook applies (``only``). The roles whose published facts a checked role
reads (its ``needs``) are always added, because their read-only preflight is what publishes those
facts. A tag that names no role selects every role: a selection that cannot be read is checked
whole.
"""

from __future__ import annotations

# Tags that select every role's tasks; 'untagged' selects none of them, which is checked whole too
# rather than not at all.
_EVERY_ROLE = frozenset(('all', 'tagged', 'untagged'))


class CheckInputsError(ValueError):
    pass


def role_of_tag(tag, names):
    """The role a tag belongs to (its name, or ``<role>_...``, the longest name first), or None."""
    best = None
    for name in names:
        if (tag == name or tag.startswith(name + '_')) and (best is None or len(name) > len(best)):
            best = name
    return best


def _names(roles):
    if not isinstance(roles, list) or not roles:
        raise CheckInputsError('check_inputs_roles: must be a non-empty list of {role, hosts, needs}')
    names = []
    for entry in roles:
        if not isinstance(entry, dict) or not isinstance(entry.get('role'), str) \
                or not isinstance(entry.get('hosts'), str):
            raise CheckInputsError('check_inputs_roles: %r is not {role: <name>, hosts: <group>}' % (entry,))
        if entry['role'] in names:
            raise CheckInputsError('check_inputs_roles: %s is listed twice' % entry['role'])
        names.append(entry['role'])
    return names


def _needs(roles, names):
    needs = {}
    for position, entry in enumerate(roles):
        wanted = entry.get('needs', [])
        if not isinstance(wanted, list):
            raise CheckInputsError('check_inputs_roles: needs of %s must be a list of roles' % entry['role'])
        for provider in wanted:
            if provider not in names:
                raise CheckInputsError('check_inputs_roles: %s needs %r, which is not listed' % (entry['role'], provider))
            # The provider's preflight must have published its facts when the consumer's runs.
            if names.index(provider) >= position:
                raise CheckInputsError('check_inputs_roles: %s needs %s, so %s must come first'
                                       % (entry['role'], provider, provider))
        needs[entry['role']] = list(wanted)
    return needs


def select(roles, run_tags=None, skip_tags=None, only=None):
    """The entries of ``roles`` a run with these tags checks, in their order.

    ``roles``: [{role, hosts, needs: [roles listed before it]}]; ``run_tags`` and ``skip_tags`` as
    Ansible gives them (``ansible_run_tags``: ['all'] without --tags); ``only``: the roles the
    importing playbook applies, or None for every role.
    """
    names = _names(roles)
    needs = _needs(roles, names)
    if only is not None:
        if not isinstance(only, list) or not only:
            raise CheckInputsError('check_inputs_only: must be a non-empty list of roles, not %r' % (only,))
        unknown = [name for name in only if name not in names]
        if unknown:
            raise CheckInputsError('check_inputs_only: %s not in check_inputs_roles' % ', '.join(map(str, unknown)))
    run_tags = set(run_tags or ['all'])
    if run_tags & _EVERY_ROLE:
        chosen = set(names)
    else:
        chosen = set()
        # 'always' alone runs no role's own tasks.
        for tag in run_tags - {'always'}:
            role = role_of_tag(tag, names)
            if role is None:
                chosen = set(names)
                break
            chosen.add(role)
    # A phase skipped leaves the role's other phases, which still need its checks.
    chosen -= set(skip_tags or []) & set(names)
    if only is not None:
        chosen &= set(only)
    pending = list(chosen)
    while pending:
        for provider in needs[pending.pop()]:
            if provider not in chosen:
                chosen.add(provider)
                pending.append(provider)
    return [entry for entry in roles if entry['role'] in chosen]

# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release notes stay true: what a release lists carries that release's version_added, what
came after it carries the version galaxy.yml is building, and fragments leave the "New Modules",
"New Plugins" and "New Roles" sections to antsibull-changelog, which writes them from version_added.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _version(text):
    return tuple(int(part) for part in str(text).split('.'))


def _doc_version_added(path):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == 'DOCUMENTATION':
            return str(yaml.safe_load(node.value.value)['version_added'])
    raise AssertionError('%s has no DOCUMENTATION' % path)


def _items():
    """(kind, name) -> version_added of every module, filter and role entry point."""
    items = {}
    for path in sorted((ROOT / 'plugins' / 'modules').glob('*.py')):
        items[('module', path.stem)] = _doc_version_added(path)
    for path in sorted((ROOT / 'plugins' / 'filter').glob('*.py')):
        items[('filter', path.stem)] = _doc_version_added(path)
    for spec in sorted((ROOT / 'roles').glob('*/meta/argument_specs.yml')):
        role = spec.parent.parent.name
        for entry, body in yaml.safe_load(spec.read_text())['argument_specs'].items():
            items[('role', role if entry == 'main' else '%s/%s' % (role, entry))] = str(body.get('version_added'))
    return items


def _released():
    """(kind, name) -> the release whose notes list it."""
    changes = yaml.safe_load((ROOT / 'changelogs' / 'changelog.yaml').read_text())['releases']
    listed = {}
    for version, release in changes.items():
        for module in release.get('modules', []):
            listed[('module', module['name'])] = version
        for name in (f['name'] for f in release.get('plugins', {}).get('filter', [])):
            listed[('filter', name)] = version
        for role in release.get('objects', {}).get('role', []):
            listed[('role', role['name'])] = version
    return listed


GALAXY_VERSION = str(yaml.safe_load((ROOT / 'galaxy.yml').read_text())['version'])
RELEASES = sorted(yaml.safe_load((ROOT / 'changelogs' / 'changelog.yaml').read_text())['releases'], key=_version)
ITEMS = _items()
RELEASED = _released()


def test_galaxy_version_is_after_the_last_release():
    assert RELEASES, 'changelogs/changelog.yaml has no release'
    assert _version(GALAXY_VERSION) > _version(RELEASES[-1]), (
        'galaxy.yml version %s: the next release must be after %s, the last one in changelogs/changelog.yaml'
        % (GALAXY_VERSION, RELEASES[-1]))


@pytest.mark.parametrize('kind, name', sorted(ITEMS), ids=['%s:%s' % key for key in sorted(ITEMS)])
def test_version_added_matches_the_release_notes(kind, name):
    added = ITEMS[(kind, name)]
    top = (kind, name.split('/')[0])
    if top in RELEASED and '/' not in name:
        assert added == RELEASED[top], '%s %s is in the %s release notes: version_added must be %s, not %s' % (
            kind, name, RELEASED[top], RELEASED[top], added)
    elif top in RELEASED:
        # An entry point of a released role: in that release or a later one, never after galaxy.yml's.
        assert _version(RELEASED[top]) <= _version(added) <= _version(GALAXY_VERSION), (kind, name, added)
    else:
        assert added == GALAXY_VERSION, (
            '%s %s is in no release yet: version_added must be galaxy.yml\'s version %s, not %s'
            % (kind, name, GALAXY_VERSION, added))


def test_every_released_item_still_exists():
    assert set(RELEASED) <= {(kind, name) for kind, name in ITEMS if '/' not in name}


NEW_ITEM = re.compile(r'\bnew (module|role|filter|plugin|lookup)s?\b', re.IGNORECASE)


@pytest.mark.parametrize('fragment', sorted((ROOT / 'changelogs' / 'fragments').glob('*.yml')),
                         ids=lambda p: p.name)
def test_fragments_leave_new_items_to_the_generated_sections(fragment):
    for section, entries in (yaml.safe_load(fragment.read_text()) or {}).items():
        if section == 'trivial':  # not in the release notes
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            assert not NEW_ITEM.search(entry), (
                '%s (%s): "%s" - antsibull-changelog lists new modules, plugins and roles from their '
                'version_added; describe what changes for the user instead' % (fragment.name, section, entry[:80]))


def test_the_new_item_pattern():
    assert NEW_ITEM.search('service_states - new module: systemd states')
    assert NEW_ITEM.search('scrape_plan, port_filter - New filters: jobs')
    assert not NEW_ITEM.search('the new PIN is tried first; the module renews keys')


@pytest.mark.parametrize('path', ['examples/execution-environment.yml', 'examples/awx-project/collections/requirements.yml'])
def test_examples_pin_a_range_that_holds_this_version(path):
    text = (ROOT / path).read_text()
    ranges = re.findall(r'name: onprem\.deepseek\s+version: ">=([\d.]+),<([\d.]+)"', text)
    assert ranges, '%s pins no version range of onprem.deepseek' % path
    for low, high in ranges:
        assert _version(low) <= _version(GALAXY_VERSION) < _version(high), (path, low, high, GALAXY_VERSION)

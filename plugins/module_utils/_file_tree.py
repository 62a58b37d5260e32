# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Whether a directory tree of the controller is in place on a host.

ansible.builtin.copy with a directory as its source runs two module runs per file on the host even
when nothing changed. One ansible.builtin.find with checksums (recurse, file_type any, hidden)
lists what the host has; comparing it with the source tree here tells whether the copy is needed.
"""

from __future__ import annotations

import hashlib
import os


class FileTreeError(ValueError):
    pass


def source_tree(root):
    """{path relative to root: sha1 of the file, or None for a directory} of everything under root."""
    if not os.path.isdir(root):
        raise FileTreeError('%s is not a directory' % root)
    tree = {}
    for base, dirs, files in os.walk(root):
        for name, is_dir in [(d, True) for d in dirs] + [(f, False) for f in files]:
            path = os.path.join(base, name)
            if os.path.islink(path):
                raise FileTreeError('%s is a link; the tree must hold files and directories only' % path)
            rel = os.path.relpath(path, root)
            if is_dir:
                tree[rel] = None
            else:
                with open(path, 'rb') as handle:
                    tree[rel] = hashlib.sha1(handle.read()).hexdigest()
    if not any(checksum is not None for checksum in tree.values()):
        raise FileTreeError('%s holds no file' % root)
    return tree


def out_of_place(found, source, dest, mode, owner, group):
    """The relative paths of ``source`` (source_tree's result) that are not in place under ``dest``.

    ``found`` is find's ``files``: path, isdir, isreg, checksum (sha1), mode ('0644'), pw_name,
    gr_name. A file is in place with the same content, mode, owner and group; a directory when it is
    one. Entries of ``dest`` that the source does not have are left alone, as the copy does.
    """
    if not isinstance(found, list):
        raise FileTreeError('the host listing must be a list of find results, not %r' % (found,))
    have = {}
    for entry in found:
        if not isinstance(entry, dict) or not isinstance(entry.get('path'), str):
            raise FileTreeError('the host listing has an entry without a path: %r' % (entry,))
        have[os.path.relpath(entry['path'], dest)] = entry
    missing = []
    for rel, checksum in sorted(source.items()):
        entry = have.get(rel)
        if entry is None:
            missing.append(rel)
        elif checksum is None:
            if not entry.get('isdir'):
                missing.append(rel)
        elif not (entry.get('isreg') and entry.get('checksum') == checksum and entry.get('mode') == mode
                  and entry.get('pw_name') == owner and entry.get('gr_name') == group):
            missing.append(rel)
    return missing

"""Whether a controller's tree is in place on a host, from what ansible.builtin.find reports there.

The host side is listed the way find lists it (its own statinfo and SHA-1), on a temporary copy."""
import hashlib
import os
import pwd
import grp
import shutil

import pytest

from ansible.errors import AnsibleFilterError
from ansible.modules.find import statinfo
from ansible_collections.onprem.deepseek.plugins.filter.tree_out_of_place import tree_out_of_place
from ansible_collections.onprem.deepseek.plugins.module_utils._file_tree import (
    FileTreeError,
    out_of_place,
    source_tree,
)

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def find(dest):
    """find's files for dest with recurse, file_type any, hidden and get_checksum."""
    found = []
    for base, dirs, files in os.walk(dest):
        for name in dirs + files:
            path = os.path.join(base, name)
            entry = {'path': path}
            entry.update(statinfo(os.lstat(path)))
            if entry['isreg']:
                with open(path, 'rb') as handle:
                    entry['checksum'] = hashlib.sha1(handle.read()).hexdigest()
            found.append(entry)
    return found


@pytest.fixture
def trees(tmp_path):
    src = tmp_path / 'src'
    (src / 'pkg' / 'sub').mkdir(parents=True)
    (src / 'pkg' / 'a.lua').write_text('return 1\n')
    (src / 'pkg' / 'sub' / 'b.lua').write_text('return 2\n')
    (src / 'pkg' / '.hidden').write_text('x')
    dest = tmp_path / 'dest'
    shutil.copytree(src, dest)
    for path in dest.rglob('*'):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return src, dest


def check(src, dest, mode='0644'):
    return out_of_place(find(str(dest)), source_tree(str(src)), str(dest), mode, ME, MY_GROUP)


def test_the_source_tree_lists_directories_and_file_checksums(trees):
    src = trees[0]
    assert source_tree(str(src)) == {
        'pkg': None, 'pkg/sub': None, 'pkg/a.lua': hashlib.sha1(b'return 1\n').hexdigest(),
        'pkg/sub/b.lua': hashlib.sha1(b'return 2\n').hexdigest(), 'pkg/.hidden': hashlib.sha1(b'x').hexdigest()}


def test_a_copy_in_place_needs_nothing(trees):
    assert check(*trees) == []


def test_extra_files_on_the_host_are_left_alone(trees):
    src, dest = trees
    (dest / 'pkg' / 'local.lua').write_text('-- site\n')
    assert check(src, dest) == []


def test_a_changed_file_is_out_of_place(trees):
    src, dest = trees
    (dest / 'pkg' / 'sub' / 'b.lua').write_text('return 3\n')
    assert check(src, dest) == ['pkg/sub/b.lua']


def test_a_missing_file_directory_or_tree_is_out_of_place(trees):
    src, dest = trees
    (dest / 'pkg' / '.hidden').unlink()
    assert check(src, dest) == ['pkg/.hidden']
    shutil.rmtree(dest / 'pkg' / 'sub')
    assert check(src, dest) == ['pkg/.hidden', 'pkg/sub', 'pkg/sub/b.lua']
    assert out_of_place([], source_tree(str(src)), str(dest), '0644', ME, MY_GROUP) == sorted(source_tree(str(src)))


def test_a_file_with_another_mode_owner_or_group_is_out_of_place(trees):
    src, dest = trees
    (dest / 'pkg' / 'a.lua').chmod(0o664)
    assert check(src, dest) == ['pkg/a.lua']
    assert check(src, dest, mode='0664') == ['pkg/.hidden', 'pkg/sub/b.lua']
    found = find(str(dest))
    assert out_of_place(found, source_tree(str(src)), str(dest), '0664', 'nobody', MY_GROUP) == sorted(
        k for k, v in source_tree(str(src)).items() if v)
    assert out_of_place(found, source_tree(str(src)), str(dest), '0664', ME, 'nogroup-x') == sorted(
        k for k, v in source_tree(str(src)).items() if v)


def test_a_file_where_a_directory_belongs_and_the_reverse_are_out_of_place(trees):
    src, dest = trees
    shutil.rmtree(dest / 'pkg' / 'sub')
    (dest / 'pkg' / 'sub').write_text('not a directory\n')
    shutil.rmtree(src / 'pkg' / 'sub')
    (src / 'pkg' / 'sub').mkdir()
    (src / 'pkg' / 'sub' / 'c.lua').write_text('return 4\n')
    assert check(src, dest) == ['pkg/sub', 'pkg/sub/c.lua']
    (dest / 'pkg' / 'a.lua').unlink()
    (dest / 'pkg' / 'a.lua').mkdir()
    assert 'pkg/a.lua' in check(src, dest)


def test_a_link_on_the_host_is_not_the_file(trees):
    src, dest = trees
    (dest / 'pkg' / 'a.lua').unlink()
    (dest / 'pkg' / 'a.lua').symlink_to(src / 'pkg' / 'a.lua')
    assert check(src, dest) == ['pkg/a.lua']


@pytest.mark.parametrize('make, message', [
    (shutil.rmtree, 'is not a directory'),
    (lambda src: [p.unlink() for p in src.rglob('*') if p.is_file()], 'holds no file'),
    (lambda src: (src / 'pkg' / 'l.lua').symlink_to(src / 'pkg' / 'a.lua'), 'l.lua is a link'),
])
def test_a_source_that_is_not_a_plain_tree_is_refused(trees, make, message):
    src = trees[0]
    make(src)
    with pytest.raises(FileTreeError, match=message):
        source_tree(str(src))


@pytest.mark.parametrize('found, message', [
    ('files', 'must be a list of find results'),
    ([{'mode': '0644'}], 'an entry without a path'),
])
def test_a_listing_that_is_not_finds_is_refused(trees, found, message):
    with pytest.raises(FileTreeError, match=message):
        out_of_place(found, source_tree(str(trees[0])), str(trees[1]), '0644', ME, MY_GROUP)


def test_the_filter_compares_and_names_itself_in_errors(trees, tmp_path):
    src, dest = trees
    (dest / 'pkg' / 'a.lua').write_text('changed\n')
    assert tree_out_of_place(find(str(dest)), str(src), str(dest), owner=ME, group=MY_GROUP) == ['pkg/a.lua']
    with pytest.raises(AnsibleFilterError, match='^tree_out_of_place: .* is not a directory'):
        tree_out_of_place([], str(tmp_path / 'none'), str(dest))

"""_artifact_manifest: entries, names, paths and both manifest formats, message by message."""
import hashlib
import json

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_manifest import (
    ArtifactError,
    ManifestEntry,
    parse_manifest,
    parse_manifest_json,
    parse_sha256sums,
    validate_component,
    validate_relpath,
)

SHA_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
SHA_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _json(files, **extra):
    doc = {"model": "m", "version": "v1", "files": files}
    doc.update(extra)
    return json.dumps(doc).encode()


def _error(func, *args):
    with pytest.raises(ArtifactError) as err:
        func(*args)
    return str(err.value)


# -- entries -------------------------------------------------------------------


def test_entry_repr_names_all_three_fields():
    assert repr(ManifestEntry("w/a.bin", 3, SHA_ABC)) == "ManifestEntry('w/a.bin', 3, '%s')" % SHA_ABC
    assert repr(ManifestEntry("a", None, SHA_EMPTY)) == "ManifestEntry('a', None, '%s')" % SHA_EMPTY


def test_entry_equality_needs_an_entry_with_the_same_fields():
    entry = ManifestEntry("a", 3, SHA_ABC)
    assert entry == ManifestEntry("a", 3, SHA_ABC)
    assert entry != ManifestEntry("a", 4, SHA_ABC)
    assert entry != ManifestEntry("b", 3, SHA_ABC)
    assert entry != ManifestEntry("a", 3, SHA_EMPTY)
    # anything else is simply unequal, even with the same values
    assert entry != ("a", 3, SHA_ABC)
    assert entry != object()


# -- names and paths -------------------------------------------------------------


@pytest.mark.parametrize("value", ["", None, 7, b"v1"])
def test_component_must_be_a_non_empty_string(value):
    assert _error(validate_component, "version", value) == "version must be a non-empty string"


@pytest.mark.parametrize("value", [".hidden", "a/b", "a\\b", "a\0b", "x" * 201])
def test_component_unusable_as_a_directory_name(value):
    assert _error(validate_component, "name", value) == (
        "name %r is not usable as a directory name (no '/', no leading '.', at most 200 characters)" % value)


def test_component_of_exactly_200_characters_is_allowed():
    assert validate_component("name", "x" * 200) == "x" * 200
    assert validate_component("version", "v1.0") == "v1.0"


@pytest.mark.parametrize("path", ["", None, 5])
def test_relpath_empty_or_not_a_string(path):
    assert _error(validate_relpath, path) == "manifest.json: file entry with an empty or non-string path"
    assert _error(validate_relpath, path, "SHA256SUMS") == "SHA256SUMS: file entry with an empty or non-string path"


@pytest.mark.parametrize("path", ["a\0b", "a\\b", "\0"])
def test_relpath_with_nul_or_backslash(path):
    assert _error(validate_relpath, path) == "manifest.json: file %r: invalid character in path" % path


def test_relpath_messages_name_the_manifest():
    assert _error(validate_relpath, "/x", "SHA256SUMS") == "SHA256SUMS: file '/x': absolute paths are not allowed"
    assert _error(validate_relpath, "a/..", "SHA256SUMS") == (
        "SHA256SUMS: file 'a/..': '..' (path traversal) is not allowed")
    assert _error(validate_relpath, "./.", "SHA256SUMS") == "SHA256SUMS: file './.': path names no file"
    assert _error(validate_relpath, ".manifest/x", "SHA256SUMS") == (
        "SHA256SUMS: file '.manifest/x': name is reserved by the model store")
    # reserved only as the first component
    assert validate_relpath("sub/.manifest") == "sub/.manifest"


def test_file_below_a_nested_file_is_refused():
    files = [{"path": "a/b", "size": 1, "sha256": SHA_ABC}, {"path": "a/b/c", "size": 1, "sha256": SHA_ABC}]
    assert _error(parse_manifest_json, _json(files)) == "manifest.json: file 'a/b/c' lies below file 'a/b'"
    siblings = [{"path": "a/b", "size": 1, "sha256": SHA_ABC}, {"path": "a/bc/d", "size": 1, "sha256": SHA_ABC}]
    assert [e.path for e in parse_manifest_json(_json(siblings)).files] == ["a/b", "a/bc/d"]


# -- manifest.json ----------------------------------------------------------------


def test_manifest_json_keeps_model_version_raw_and_digest():
    raw = _json([{"path": "a", "size": 3, "sha256": SHA_ABC}], model="DeepSeek-V3", version="2025-05")
    man = parse_manifest_json(raw, "DeepSeek-V3", "2025-05")
    assert (man.fmt, man.raw, man.model, man.version) == ("json", raw, "DeepSeek-V3", "2025-05")
    assert man.digest == hashlib.sha256(raw).hexdigest()
    # model and version are optional in the document and unchecked when not asked for
    bare = json.dumps({"files": [{"path": "a", "size": 3, "sha256": SHA_ABC}]}).encode()
    man = parse_manifest_json(bare, "m", "v1")
    assert (man.model, man.version) == (None, None)
    assert parse_manifest_json(raw).model == "DeepSeek-V3"


@pytest.mark.parametrize("doc", [[], "files", {"files": {}}, {"files": None}, {}])
def test_manifest_json_must_be_an_object_with_a_files_list(doc):
    assert _error(parse_manifest_json, json.dumps(doc).encode()) == (
        "manifest.json: expected an object with a 'files' list")


def test_manifest_json_not_utf8():
    assert _error(parse_manifest_json, b'{"files": ["\xff"]}') == (
        "manifest.json: not valid JSON: 'utf-8' codec can't decode byte 0xff in position 12: invalid start byte")


def test_manifest_json_names_the_wrong_model():
    raw = _json([{"path": "a", "size": 3, "sha256": SHA_ABC}])
    assert _error(parse_manifest_json, raw, "m2", "v1") == "manifest.json names model 'm', expected 'm2'"
    # a non-string value is compared as text
    raw = _json([{"path": "a", "size": 3, "sha256": SHA_ABC}], version=2)
    assert parse_manifest_json(raw, "m", "2").version == 2


@pytest.mark.parametrize("item", ["a", ["a", 3, SHA_ABC], None])
def test_manifest_json_items_must_be_objects(item):
    assert _error(parse_manifest_json, _json([item])) == "manifest.json: every 'files' item must be an object"


@pytest.mark.parametrize("digest", [None, 12, SHA_ABC[:-1], SHA_ABC + "0", "g" * 64])
def test_manifest_json_sha256_must_be_64_hex_digits(digest):
    assert _error(parse_manifest_json, _json([{"path": "a", "size": 3, "sha256": digest}])) == (
        "manifest.json: file 'a': 'sha256' must be 64 hex digits")


@pytest.mark.parametrize("size", [None, "3", 3.0, False])
def test_manifest_json_size_must_be_an_integer(size):
    assert _error(parse_manifest_json, _json([{"path": "a", "size": size, "sha256": SHA_ABC}])) == (
        "manifest.json: file 'a': 'size' must be a non-negative integer")


# -- SHA256SUMS --------------------------------------------------------------------


def test_sha256sums_not_utf8():
    assert _error(parse_sha256sums, b"\xff") == (
        "SHA256SUMS: not UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte")


def test_sha256sums_skips_comments_blank_lines_and_the_json_manifest():
    raw = ("# sha256sum output\n"
           "   # an indented comment\n"
           "\n"
           "  \n"
           "%s  manifest.json\n"
           "%s  d/a.txt\n"
           "%s *e.bin\n" % (SHA_EMPTY, SHA_ABC.upper(), SHA_EMPTY)).encode()
    man = parse_sha256sums(raw)
    assert (man.fmt, man.raw, man.model, man.version) == ("sha256sums", raw, None, None)
    assert man.files == [ManifestEntry("d/a.txt", None, SHA_ABC), ManifestEntry("e.bin", None, SHA_EMPTY)]
    assert man.total_size == 0


def test_sha256sums_with_no_files():
    assert _error(parse_sha256sums, b"# nothing here\n") == "SHA256SUMS lists no files"
    assert _error(parse_sha256sums, ("%s  manifest.json\n" % SHA_ABC).encode()) == "SHA256SUMS lists no files"


def test_sha256sums_duplicate_names_the_file():
    raw = ("%s  a\n%s *a\n" % (SHA_ABC, SHA_EMPTY)).encode()
    assert _error(parse_sha256sums, raw) == "SHA256SUMS: file 'a' is listed twice"


# -- parse_manifest ------------------------------------------------------------------


def test_parse_manifest_checks_name_and_version_of_a_json_manifest():
    raw = _json([{"path": "a", "size": 3, "sha256": SHA_ABC}])
    assert parse_manifest("json", raw, "m", "v1").files == [ManifestEntry("a", 3, SHA_ABC)]
    assert _error(parse_manifest, "json", raw, "m", "v2") == "manifest.json names version 'v1', expected 'v2'"
    assert _error(parse_manifest, "json", raw, "x", "v1") == "manifest.json names model 'm', expected 'x'"


def test_parse_manifest_reads_other_formats_as_sha256sums():
    raw = ("%s  a\n" % SHA_ABC).encode()
    man = parse_manifest("sha256sums", raw, "m", "v1")
    assert man.fmt == "sha256sums" and man.files == [ManifestEntry("a", None, SHA_ABC)]

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_artifact
short_description: Stage a verified model version on the hot tier and switch to it atomically
version_added: 0.1.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Fetches one version of a model from the site's artifact store (HTTPS with the site CA, HTTP,
    or a local or NFS-mounted directory).
  - Every file is hashed with SHA-256 while it is copied (one pass over the data) and compared with
    the version's manifest; size is checked too, so a truncated file is reported as truncated.
  - Files are staged into C(<dest>/<name>/.staging-<version>-<random>/), renamed to
    C(<dest>/<name>/versions/<version>/) once all of them verified, and only then the
    C(<dest>/<name>/current) symlink is replaced atomically (a new symlink renamed over it).
  - A checksum mismatch, a truncated or oversized file, an unreachable source or a full disk removes
    the staging directory and fails with the file's name; the live version and C(current) are
    left untouched.
  - Free space is checked before anything is fetched.
  - Several files are staged at once (see O(workers)), largest first; when one fails, the others
    stop and the staging directory is removed once they have.
  - Keeps O(keep) previously activated versions for rollback and deletes older ones after the switch.
  - 'B(Manifest format.) The source holds, per version, C(<source>/<name>/<version>/manifest.json)
    of the form C({"model": "<name>", "version": "<version>", "files": [{"path": "config.json",
    "size": 123, "sha256": "<64 hex digits>"}]}).'
  - In C(manifest.json), C(model) and C(version) are optional; when present they must equal
    O(name) and O(version).
    C(path) is relative to the version directory and may contain C(/); absolute paths, C(..)
    components, duplicates and the reserved names C(.manifest) and C(.manifest.sha256) are
    rejected with an error naming the entry.
  - When there is no C(manifest.json), a C(SHA256SUMS) file in C(sha256sum) output format
    (C(<hex>  <path>) or C(<hex> *<path>)) is used instead. It carries no sizes, so sizes are taken
    from the source (file size, or HTTP C(Content-Length) via C(HEAD)) where it gives them.
options:
  name:
    description:
      - Model name; one directory name below O(dest) and below the source.
    type: str
    required: true
  version:
    description:
      - Model version; one directory name.
      - Required for O(state=present), O(state=staged) and O(state=absent).
      - With O(state=rollback), the version to switch to; when omitted, the version activated
        before the current one (see O(state)).
    type: str
  state:
    description:
      - V(present) stages O(version) if needed, switches C(current) to it and prunes old versions.
      - V(rollback) switches C(current) to an existing version and never fetches or deletes anything.
        Without O(version) it undoes the latest activation; once current is no longer the most
        recently activated version, it changes nothing, so repeated runs do not step further back.
        Name O(version) to go back further.
      - V(staged) (added in 0.2.0) fetches and verifies O(version) like V(present) but leaves C(current), the activation
        history and the other versions as they are, so a later V(present) of that version only switches.
        A release stages its candidate on every node this way before it changes any of them.
      - V(absent) deletes O(version); it fails when that version is live.
    type: str
    choices: [present, staged, rollback, absent]
    default: present
  released:
    description:
      - This switch is a release's (C(playbooks/model_release.yml), through the inference role). The store records
        in C(.release.json) that the version it makes current was released, next to the version the inventory's runs
        made current. Applies to O(state=present) and O(state=rollback).
      - A switch that is not a release records its version as the inventory's, and no release.
    type: bool
    default: false
    version_added: 0.2.0
  replace_release:
    description:
      - With O(state=present) and O(released=false), switch away from a version that a release made current.
        Without it such a run fails before it fetches or changes anything, naming both versions, so that a run from
        an inventory that still names the older version does not silently undo a release.
    type: bool
    default: false
    version_added: 0.2.0
  source:
    description:
      - Root of the artifact store; the version is read from C(<source>/<name>/<version>/).
      - An C(https://) or C(http://) URL, a C(file:///) URL, or an absolute path.
      - With C(http://), integrity rests on the manifest alone; pin it with O(manifest_sha256).
      - Required for O(state=present) and O(state=staged).
    type: str
  dest:
    description:
      - Root of the model store on the hot tier, for example C(/srv/deepseek/hot/models).
      - Must already exist, so an unmounted storage tier is not silently filled.
    type: path
    required: true
  keep:
    description:
      - Number of previously activated versions kept besides the current one.
    type: int
    default: 2
  verify_existing:
    description:
      - When O(version) is already staged with the same manifest, re-hash its files instead of
        trusting the stored manifest digest. A damaged copy that is not live is staged again;
        a damaged live copy makes the module fail naming the file.
      - Up to O(workers) files are re-hashed at once.
    type: bool
    default: false
  manifest_sha256:
    description:
      - Expected SHA-256 of the manifest file itself, for example from a signed release note.
        The module fails before fetching anything when it differs.
    type: str
  space_margin:
    description:
      - Free space that must remain on O(dest) after staging, in addition to the files' sizes
        (for example V(1G), V(512M), V(0)).
      - Versions that will be pruned are not counted as free, since pruning happens after the switch.
    type: str
    default: 1G
  owner:
    description:
      - Owner of the staged files and directories (name or uid). Needs privileges.
    type: str
  group:
    description:
      - Group of the staged files and directories (name or gid).
    type: str
  mode:
    description:
      - Octal mode of the staged files, such as V('0644') or V('0640'). Directories get the same
        mode plus the execute bit wherever it grants read, and always C(u+rwx).
    type: raw
    default: '0644'
  timeout:
    description:
      - Socket timeout in seconds for each HTTP request.
    type: int
    default: 60
  validate_certs:
    description:
      - Verify the artifact store's TLS certificate.
    type: bool
    default: true
  ca_path:
    description:
      - PEM bundle of the site CA used to verify the artifact store.
    type: path
  client_cert:
    description:
      - PEM client certificate for mutual TLS to the artifact store.
    type: path
  client_key:
    description:
      - PEM private key for O(client_cert), when it is not in the same file.
    type: path
  use_proxy:
    description:
      - Use the proxy from the environment for HTTP(S) sources.
    type: bool
    default: true
  workers:
    description:
      - How many files are fetched, hashed and written (or re-hashed, see O(verify_existing)) at
        the same time.
      - SHA-256 of one file runs on one core, so a model of many files stages faster with
        several at once; each file in flight holds three 4 MiB buffers.
      - When omitted, one per CPU the module may run on, at most 16.
    type: int
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the manifest (and, for C(SHA256SUMS), the file sizes) from the source, checks free
        space and returns RV(would_fetch); writes nothing.
      - A O(dest) that does not exist yet (a first deploy, whose tier and directories earlier tasks only
        predict in check mode) predicts the whole version staged, without the free space check; RV(dest_exists) says so.
  diff_mode:
    support: full
    details:
      - Shows the C(current) symlink target before and after.
  platform:
    support: full
    platforms: posix
notes:
  - Staged files are written with C(fsync) before the switch, and the C(current) symlink is
    replaced with one atomic rename, so readers see either the old or the new version.
  - Staged files are written with C(O_DIRECT) where the filesystem allows it, around the page
    cache, since they must reach the disk before the switch anyway.
  - The version C(current) points at is never modified; re-publishing different content under a
    live version fails. Publish a new version instead.
  - A lock file C(<dest>/<name>/.lock) keeps concurrent runs apart; leftover staging directories
    of interrupted runs are removed by the next run that changes the store.
  - The activation order is kept in C(<dest>/<name>/.history.json).
seealso:
  - name: sha256sum
    description: Output format accepted as C(SHA256SUMS).
    link: https://www.gnu.org/software/coreutils/manual/html_node/sha2-utilities.html
"""

EXAMPLES = r"""
- name: Stage DeepSeek-R1 2025-05-28 from the artifact store and make it current
  onprem.deepseek.model_artifact:
    name: DeepSeek-R1-Distill-Qwen-32B
    version: "2025-05-28"
    source: https://artifacts.example.internal/models
    ca_path: /etc/pki/onprem/site-ca.pem
    dest: /srv/deepseek/hot/models
    owner: deepseek
    group: deepseek
    mode: "0640"
    keep: 2
  register: model

- name: Stage from the NFS-mounted store, pinning the manifest digest
  onprem.deepseek.model_artifact:
    name: DeepSeek-V3
    version: v3.1
    source: /mnt/artifacts/models
    dest: /srv/deepseek/hot/models
    manifest_sha256: 9f2c4f1b0e8a7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d

- name: Stage the next version beside the live one, without switching to it
  onprem.deepseek.model_artifact:
    name: DeepSeek-V3
    version: v3.2
    source: https://artifacts.example.internal/models
    dest: /srv/deepseek/hot/models
    state: staged

- name: Undo the latest activation
  onprem.deepseek.model_artifact:
    name: DeepSeek-V3
    dest: /srv/deepseek/hot/models
    state: rollback

- name: Delete an old, non-live version
  onprem.deepseek.model_artifact:
    name: DeepSeek-V3
    version: v3.0
    dest: /srv/deepseek/hot/models
    state: absent
"""

RETURN = r"""
version:
  description: Version C(current) points at after the run (would point at, in check mode).
  returned: always
  type: str
  sample: "2025-05-28"
current:
  description: Directory of that version.
  returned: always
  type: str
  sample: /srv/deepseek/hot/models/DeepSeek-R1-Distill-Qwen-32B/versions/2025-05-28
previous:
  description: Version C(current) pointed at before the run; null when there was none.
  returned: always
  type: str
  sample: "2025-04-02"
fetched:
  description: Manifest paths fetched and verified in this run.
  returned: always
  type: list
  elements: str
  sample: [config.json, model-00001-of-00002.safetensors, model-00002-of-00002.safetensors]
bytes:
  description: Bytes fetched; in check mode the bytes that would be fetched (as far as known).
  returned: always
  type: int
  sample: 65498237184
kept_versions:
  description: Versions left in the store after the run, most recently activated first.
  returned: always
  type: list
  elements: str
  sample: ["2025-05-28", "2025-04-02", "2025-03-10"]
release_record:
  description:
    - The store's C(.release.json) after the run (predicted in check mode) - C(inventory), the version the runs that
      are not releases made current, and C(release), the version a release made current since, or V(null).
  returned: with O(state=present) and O(state=rollback)
  type: dict
  sample: {inventory: "2025-04-02", release: "2025-05-28"}
  version_added: 0.2.0
removed_versions:
  description: Versions deleted (or that would be deleted in check mode).
  returned: always
  type: list
  elements: str
  sample: ["2025-01-20"]
dest_exists:
  description: Whether O(dest) exists; V(false) only in check mode, where a run would find it created by earlier tasks.
  returned: in check mode
  type: bool
  sample: true
would_fetch:
  description: Manifest paths that would be fetched.
  returned: in check mode
  type: list
  elements: str
  sample: [config.json, model-00001-of-00002.safetensors]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.formatters import human_to_bytes

from ansible_collections.onprem.deepseek.plugins.module_utils._artifact import ArtifactError, run


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            version=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "staged", "rollback", "absent"]),
            source=dict(type="str"),
            dest=dict(type="path", required=True),
            keep=dict(type="int", default=2),
            verify_existing=dict(type="bool", default=False),
            manifest_sha256=dict(type="str"),
            space_margin=dict(type="str", default="1G"),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw", default="0644"),
            timeout=dict(type="int", default=60),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            client_cert=dict(type="path"),
            client_key=dict(type="path", no_log=False),
            use_proxy=dict(type="bool", default=True),
            workers=dict(type="int"),
            released=dict(type="bool", default=False),
            replace_release=dict(type="bool", default=False),
        ),
        required_if=[
            ("state", "present", ("version", "source")),
            ("state", "staged", ("version", "source")),
            ("state", "absent", ("version",)),
        ],
        supports_check_mode=True,
    )
    params = dict(module.params)
    try:
        params["reserve_bytes"] = human_to_bytes(params["space_margin"])
    except ValueError as exc:
        module.fail_json(msg="space_margin: %s" % exc)

    try:
        result = run(params, check_mode=module.check_mode)
    except ArtifactError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="model store %s: %s" % (params["dest"], exc))

    diff = result.pop("diff", None)
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()

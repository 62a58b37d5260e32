"""The collection works when installed from its built artifact, not only from this tree."""
import json
import tarfile

import pytest
import yaml

from conftest import ROOT, run


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    colls = tmp_path_factory.mktemp("collections")
    # An empty configuration, so that nothing of this source tree's ansible.cfg applies.
    cfg = colls / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    env = {"ANSIBLE_COLLECTIONS_PATH": str(colls), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
           "ANSIBLE_CONFIG": str(cfg), "ANSIBLE_PYTHON_INTERPRETER": str(ROOT / ".venv/bin/python")}
    out = tmp_path_factory.mktemp("artifact")
    run(["ansible-galaxy", "collection", "build", "--output-path", out, ROOT], env=env)
    artifact = next(out.glob("onprem-deepseek-*.tar.gz"))
    run(["ansible-galaxy", "collection", "install", "--offline", "--no-deps", "-p", colls, artifact], env=env)
    # Dependencies from the toolchain, but not this source tree.
    deps = ROOT / ".venv/collections/ansible_collections"
    for ns, name in (("ansible", "posix"), ("community", "general"), ("community", "crypto")):
        (colls / "ansible_collections" / ns).mkdir(parents=True, exist_ok=True)
        (colls / "ansible_collections" / ns / name).symlink_to(deps / ns / name)
    return artifact, colls, env


def test_artifact_holds_the_collection_and_leaves_development_files_out(installed):
    artifact = installed[0]
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    for wanted in ("MANIFEST.json", "README.md", "meta/runtime.yml", "playbooks/site.yml",
                   "roles/baseline/meta/argument_specs.yml", "plugins/modules/gpu_facts.py",
                   "tests/sanity/ignore-2.19.txt", "tests/unit/conftest.py"):
        assert wanted in names, wanted
    # Development tooling and everything of the sandbox stay out.
    for unwanted in ("molecule/", "tools/", ".ci/", ".venv/", "dev", "inventories/", "docs/sandbox",
                     "tests/integration/", "tests/sandbox/", "tests/sandbox_model/", "tests/tooling/",
                     "tests/fixtures/nvidia_repo/"):
        assert not any(n == unwanted.rstrip("/") or n.startswith(unwanted) for n in names), unwanted
    assert not any("sandbox" in n for n in names if n.startswith(("roles/", "playbooks/", "meta/"))), \
        [n for n in names if "sandbox" in n]


def test_sanity_passes_on_the_installed_artifact(installed):
    """tests/sanity ships, so ansible-test sanity runs on the artifact as an installer receives it."""
    colls = installed[1]
    env = dict(SANITY_SOURCE=str(colls / "ansible_collections/onprem/deepseek"))
    proc = run([ROOT / "tools/sanity", "--test", "validate-modules", "--test", "compile", "--test", "ignores"],
               env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "sanity: passed" in proc.stdout


def test_installed_collection_is_the_one_ansible_loads(installed, tmp_path):
    colls, env = installed[1:]
    out = run(["ansible-galaxy", "collection", "list", "onprem.deepseek", "--format", "json"], env=env).stdout
    paths = json.loads(out)
    assert list(paths) == [str(colls / "ansible_collections")]
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    assert paths[str(colls / "ansible_collections")]["onprem.deepseek"]["version"] == version


def test_installed_module_runs(installed):
    env = installed[2]
    proc = run(["ansible", "localhost", "-m", "onprem.deepseek.gpu_facts",
                "-a", "nvidia_smi_path=/nonexistent/nvidia-smi", "-o"], env=env)
    result = json.loads(proc.stdout.split("=>", 1)[1])
    assert result["gpu"]["gpus"] == []
    assert "nvidia-smi" in result["gpu"]["reason"]


def test_installed_role_refuses_bad_input_by_name(installed, tmp_path):
    env = installed[2]
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - onprem.deepseek.baseline\n"
    )
    proc = run(["ansible-playbook", "-i", "localhost,", "-c", "local", "--check",
                "-e", "baseline_swappiness=high", play], env=env, check=False)
    assert proc.returncode != 0
    assert "baseline_swappiness" in proc.stdout
    assert "changed=0" in proc.stdout


def test_installed_site_playbook_parses(installed):
    env = installed[2]
    run(["ansible-playbook", "-i", ROOT / "inventories/sandbox", "--syntax-check", "onprem.deepseek.site"], env=env)

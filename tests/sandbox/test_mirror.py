"""The mirror's Python package index: a PEP 503 index pip can use, built from a wheelhouse."""
import hashlib
import subprocess
import sys

from onprem_sandbox.mirror import dist_name, normalize, write_simple_index


def test_names_are_normalised_as_pep_503_says():
    assert normalize("Python_PKCS11") == "python-pkcs11"
    assert normalize("zope.interface") == "zope-interface"
    assert dist_name("python_pkcs11-0.10.1-cp311-cp311-manylinux_2_28_x86_64.whl") == "python_pkcs11"
    assert dist_name("asn1crypto-1.5.1.tar.gz") == "asn1crypto"


def test_simple_index_links_each_file_with_its_sha256(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    w = wheels / "Demo_Pkg-1.0-py3-none-any.whl"
    w.write_bytes(b"not really a wheel")
    (wheels / "readme.txt").write_text("ignored")
    projects = write_simple_index(wheels, tmp_path / "pypi")
    assert projects == ["demo-pkg"]
    page = (tmp_path / "pypi/simple/demo-pkg/index.html").read_text()
    digest = hashlib.sha256(b"not really a wheel").hexdigest()
    assert f'href="../../files/Demo_Pkg-1.0-py3-none-any.whl#sha256={digest}"' in page
    assert (tmp_path / "pypi/files/Demo_Pkg-1.0-py3-none-any.whl").read_bytes() == b"not really a wheel"
    assert 'href="demo-pkg/"' in (tmp_path / "pypi/simple/index.html").read_text()


def test_pip_installs_from_the_index_with_no_other_source(tmp_path):
    """Build a real wheel, index it, and let pip resolve it from that index alone."""
    src = tmp_path / "src"
    (src / "onprem_probe").mkdir(parents=True)
    (src / "onprem_probe/__init__.py").write_text("VALUE = 42\n")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        '[project]\nname = "onprem-probe"\nversion = "1.0"\n'
    )
    # A tiny PEP 517 backend so the wheel builds without fetching setuptools.
    (src / "backend.py").write_text(
        "import base64, hashlib, zipfile\n"
        "def _rec(data):\n"
        "    return 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()\n"
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
        "    name = 'onprem_probe-1.0-py3-none-any.whl'\n"
        "    files = {'onprem_probe/__init__.py': b'VALUE = 42\\n',\n"
        "             'onprem_probe-1.0.dist-info/METADATA': b'Metadata-Version: 2.1\\nName: onprem-probe\\nVersion: 1.0\\n',\n"
        "             'onprem_probe-1.0.dist-info/WHEEL': b'Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}\n"
        "    record = ''.join(f'{p},{_rec(d)},{len(d)}\\n' for p, d in files.items()) + 'onprem_probe-1.0.dist-info/RECORD,,\\n'\n"
        "    with zipfile.ZipFile(f'{wheel_directory}/{name}', 'w') as z:\n"
        "        for p, d in files.items():\n"
        "            z.writestr(p, d)\n"
        "        z.writestr('onprem_probe-1.0.dist-info/RECORD', record)\n"
        "    return name\n"
    )
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(wheels), str(src)], check=True)
    write_simple_index(wheels, tmp_path / "pypi")
    target = tmp_path / "target"
    env = {"PIP_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--index-url", (tmp_path / "pypi/simple").as_uri(), "--target", str(target), "onprem-probe==1.0"],
                   check=True, env=env)
    assert (target / "onprem_probe/__init__.py").read_text() == "VALUE = 42\n"

# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the scenario's STAND-IN NVIDIA repository with two driver versions of one branch.

Each driver version is built with tests/fixtures/nvidia_repo/build_repo.py into the same directory
(its index lists every version, --multiversion), so the scenario can install the first and then
upgrade to the second. The stand-in nvidia-smi of each version replays the recorded capture with
<driver_version> replaced by the version of the stand-in package that installed it, and logs each
call (time and version) to /var/log/onprem-stand-in-nvidia-smi.log. Nothing here is NVIDIA software.

With --dcgm DCGM:EXPORTER, each build also carries the stand-in DCGM and exporter packages.

Usage: python3 build_stand_in_repo.py [--dcgm DCGM:EXPORTER] OUTDIR CUDA TENSORRT DRIVER [DRIVER...]
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
BUILDER = PROJECT / 'tests' / 'fixtures' / 'nvidia_repo' / 'build_repo.py'

SMI = '''#!/usr/bin/env python3
"""TEST STAND-IN for nvidia-smi {version} (onprem.deepseek molecule gpu_stack). Not NVIDIA software; reads no GPU.

Replays the recorded capture named by NVIDIA_SMI_REPLAY or /etc/nvidia-smi-replay.path, reporting
driver {version}: the version of the stand-in package that installed this file. Where a (stand-in)
kernel module is loaded and its version differs, it fails as the real one does after an upgrade
without a reboot.
"""
import os
import re
import sys
import time

VERSION = {version!r}
PATH_FILE = '/etc/nvidia-smi-replay.path'
LOG = '/var/log/onprem-stand-in-nvidia-smi.log'
PROC_VERSION = '/proc/driver/nvidia/version'


def main(argv):
    path = os.environ.get('NVIDIA_SMI_REPLAY', '').strip()
    if not path:
        try:
            with open(PATH_FILE) as handle:
                path = handle.read().strip()
        except OSError:
            path = ''
    if not path:
        print("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
        return 9
    try:
        with open(PROC_VERSION) as handle:
            loaded = re.search(r'Kernel Module(?:\\s+for\\s+\\S+)?\\s+([0-9.]+)', handle.read())
    except OSError:
        loaded = None
    if loaded and loaded.group(1) != VERSION:
        print('Failed to initialize NVML: Driver/library version mismatch')
        print('NVML library version: %s' % VERSION.rsplit('.', 1)[0])
        return 18
    flags = set(argv)
    if not ({{'-q', '--query'}} & flags and {{'-x', '--xml-format'}} & flags):
        sys.stderr.write('nvidia-smi stand-in: only "-q -x" is replayed\\n')
        return 2
    with open(path, 'rb') as handle:
        data = handle.read()
    data = re.sub(rb'<driver_version>[^<]*</driver_version>',
                  b'<driver_version>' + VERSION.encode() + b'</driver_version>', data)
    try:
        with open(LOG, 'a') as handle:
            handle.write('%s %s\\n' % (time.strftime('%Y-%m-%d %H:%M:%S'), VERSION))
    except OSError:
        pass
    sys.stdout.buffer.write(data)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
'''


def load_builder():
    spec = importlib.util.spec_from_file_location('stand_in_build_repo', BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv):
    dcgm = exporter = None
    if argv[:1] == ['--dcgm'] and len(argv) > 1:
        dcgm, exporter = (argv[1].split(":", 1) + [""])[:2]
        argv = argv[2:]
    if len(argv) < 4:
        sys.exit(__doc__)
    out, cuda, tensorrt = argv[:3]
    builder = load_builder()
    with tempfile.TemporaryDirectory(prefix='nvidia-smi-stand-in-') as tmp:
        for driver in argv[3:]:
            smi = Path(tmp, 'nvidia-smi-%s' % driver)
            smi.write_text(SMI.format(version=driver))
            os.chmod(smi, 0o755)
            builder.REPLAY = smi
            # The last build signs the index of all versions (the key is made anew each time).
            builder.build(out, driver, cuda, tensorrt, dcgm, exporter)


if __name__ == '__main__':
    main(sys.argv[1:])

#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print the mean time to parse and evaluate each recorded nvidia-smi capture.

Usage: tools/bench/gpu_readiness_bench.py [-n RUNS] [FIXTURE.xml ...]
Defaults to every capture in tests/unit/fixtures/nvidia_smi. Measures the controller-side
logic only (parse + policy), not the nvidia-smi call on the host.
"""
import argparse
import importlib
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / 'tests' / 'unit' / 'fixtures' / 'nvidia_smi'


def load_gpu_utils():
    # This tree as onprem.deepseek (tools/bootstrap links it there): _gpu_readiness imports _gpu_facts.
    sys.path.insert(0, str(ROOT / '.venv' / 'collections'))
    facts = importlib.import_module('ansible_collections.onprem.deepseek.plugins.module_utils._gpu_facts')
    readiness = importlib.import_module('ansible_collections.onprem.deepseek.plugins.module_utils._gpu_readiness')
    return types.SimpleNamespace(build_gpu_facts=facts.build_gpu_facts, evaluate_readiness=readiness.evaluate_readiness)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', '--runs', type=int, default=200)
    parser.add_argument('fixtures', nargs='*', type=Path)
    args = parser.parse_args()
    gpu = load_gpu_utils()
    paths = args.fixtures or sorted(FIXTURES.glob('*.xml'))
    print('%-48s %5s %12s %8s' % ('capture', 'gpus', 'mean (ms)', 'ready'))
    for path in paths:
        text = path.read_text()
        start = time.perf_counter()
        for dummy in range(args.runs):
            facts = gpu.build_gpu_facts(xml_text=text, fabric_manager=(True, 'active'))
            result = gpu.evaluate_readiness(facts, {'require_kernel_module_match': False})
        mean_ms = (time.perf_counter() - start) * 1000.0 / args.runs
        print('%-48s %5d %12.3f %8s' % (path.name, facts['gpu_count'], mean_ms, result['ready']))


if __name__ == '__main__':
    main()

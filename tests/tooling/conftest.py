# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the development tooling's Ansible plugins (tools/ansible_plugins): importable here, with
the unit tests' helper for ansible-playbook runs."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "ansible_plugins" / "callback"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

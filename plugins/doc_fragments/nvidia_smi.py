# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The nvidia-smi option shared by gpu_facts and gpu_readiness (both call it once, the same way).
    DOCUMENTATION = r"""
options:
  nvidia_smi_path:
    description:
      - Name or absolute path of the C(nvidia-smi) program.
      - A bare name is looked up in E(PATH) and the usual system directories.
    type: str
    default: nvidia-smi
"""

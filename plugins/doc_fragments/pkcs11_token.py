# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The token options shared by the modules of the pkcs11 action group (one argument spec in
    # module_utils/_pkcs11_spec.py), so that module_defaults for group/onprem.deepseek.pkcs11 covers both.
    DOCUMENTATION = r"""
options:
  module_path:
    description:
      - Path of the PKCS#11 library on the managed host.
      - SoftHSM2 is V(/usr/lib/softhsm/libsofthsm2.so) on Debian and Ubuntu and
        V(/usr/lib64/pkcs11/libsofthsm2.so) on RHEL; Thales Luna uses for example
        V(/usr/safenet/lunaclient/lib/libCryptoki2_64.so), Entrust nShield V(/opt/nfast/toolkits/pkcs11/libcknfast.so).
    type: path
    default: /usr/lib/softhsm/libsofthsm2.so
  token_label:
    description:
      - Label of the token (C(CKA_LABEL) of the token, as C(softhsm2-util --show-slots) or
        C(pkcs11-tool --list-slots) shows it). It must name exactly one initialised token.
    type: str
    required: true
  pin:
    description:
      - User PIN of the token.
      - Exactly one of O(pin) and O(pin_file) is required.
    type: str
  pin_file:
    description:
      - File on the managed host whose first line is the user PIN, so that the PIN does not travel in
        the module arguments.
      - Exactly one of O(pin) and O(pin_file) is required.
    type: path
notes:
  - Both modules of the C(onprem.deepseek.pkcs11) action group take these options, so a play can set
    them once with C(module_defaults) for C(group/onprem.deepseek.pkcs11).
"""

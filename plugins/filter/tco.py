# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: tco
short_description: Total cost of ownership, ROI and break-even month of a local deployment against the cloud
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - "The model of the deployment guide (section 5.1): TCO = hardware + electricity (kWh x price) + operations staff
    (person-years x cost per person-year) - avoided cloud spend, over O(years). Hardware is bought in month 0;
    electricity, staff and the avoided cloud spend accrue every month (730 hours). Money is in CNY."
  - "ROI is (avoided cloud spend - local cost) / local cost over the horizon, positive when the local deployment
    costs less. The break-even month is the first month whose cumulative local cost is no more than the cumulative
    cloud spend; V(null) when that does not happen within the horizon."
  - "Power per server: O(node_watts) when set; else the mean of the servers whose GPUs reported their draw in
    O(gpu_facts) (the GPUs' draw plus the profile's C(other_watts)); else the profile's nominal figure. The facility
    draws that times O(pue)."
  - "Every wrong value fails, all of them in one message, each named with O(variable_prefix) before the option's
    name. The result carries the report's rows and the chart's geometry, so templates only print them."
  - Used by C(playbooks/capacity_report.yml); see C(docs/capacity-report.md).
positional: _input
options:
  _input:
    description:
      - "A hardware profile: V(a100_2x) (2 x A100 80GB, development and test), V(h100_4x) (4 x H100 80GB, medium
        production), V(h100_8x_sxm) (8 x H100 SXM, large enterprise), or a dict with C(label), C(gpus),
        C(hardware_cny), C(gpu_watts), C(other_watts), C(cloud_cny_per_gpu_hour) and optionally C(name)."
    type: raw
    required: true
  years:
    description: The horizon, a whole number of years from 1 to 10. V(null) means 5.
    type: int
  nodes:
    description: Number of servers. V(null) means the number of O(hosts), or 1 without hosts.
    type: int
  hardware_cny:
    description: Purchase price of one server. V(null) means the profile's.
    type: float
  electricity_cny_per_kwh:
    description: Electricity price. V(null) means 0.8.
    type: float
  pue:
    description: Power usage effectiveness of the room, from 1 to 3. V(null) means 1 (the servers' own draw).
    type: float
  node_watts:
    description: Average draw of one server in watts, greater than 0. V(null) means measured, else nominal.
    type: float
  ops_staff:
    description: Operations staff in full-time equivalents. V(null) means 1.
    type: float
  ops_staff_cny_per_year:
    description: Cost of one person-year. V(null) means 250000.
    type: float
  cloud_cny_per_gpu_hour:
    description: Cloud price of one GPU-hour, for the avoided cloud spend. V(null) means the profile's.
    type: float
  cloud_cny_per_month:
    description: The avoided cloud spend per month, replacing the GPU-hour estimate. V(null) means not set.
    type: float
  hosts:
    description: The inventory's GPU servers; their number is the default of O(nodes).
    type: list
    elements: str
  gpu_facts:
    description: Host name to its C(ansible_facts.gpu) from M(onprem.deepseek.gpu_facts); V(null) when not read.
    type: dict
  date:
    description: A date (YYYY-MM-DD) the report prints; V(null) prints none, so the report stays the same.
    type: str
  variable_prefix:
    description: Put before each option's name in errors, so that they name the caller's variables.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: The large profile over 5 years, with a measured draw and a PUE
  ansible.builtin.set_fact:
    tco: "{{ 'h100_8x_sxm' | onprem.deepseek.tco(years=5, node_watts=8200, pue=1.4) }}"

- name: A customer's own server and cloud bill
  ansible.builtin.set_fact:
    tco: >-
      {{ {'name': 'h200_8x', 'label': '8 x H200', 'gpus': 8, 'hardware_cny': 4500000, 'gpu_watts': 700,
          'other_watts': 4600, 'cloud_cny_per_gpu_hour': 60}
         | onprem.deepseek.tco(cloud_cny_per_month=250000, ops_staff=1.5) }}
"""

RETURN = r"""
_value:
  description: The figures, the report's rows and the chart's geometry.
  type: dict
  contains:
    profile:
      description: C(name), C(label) and C(gpus) of the profile.
      type: dict
      returned: always
      sample: {name: h100_8x_sxm, label: "8 x NVIDIA H100 SXM, 512 GB memory (large enterprise)", gpus: 8}
    years:
      description: The horizon in years.
      type: int
      returned: always
      sample: 5
    months:
      description: The horizon in months.
      type: int
      returned: always
      sample: 60
    nodes:
      description: Number of servers counted.
      type: int
      returned: always
      sample: 1
    power:
      description: "C(node_watts), C(facility_watts) (all servers times PUE), C(kwh_per_month), C(basis),
        C(nominal_node_watts), and per host what was read (C(host), C(gpus), C(gpu_watts), C(node_watts), C(measured),
        C(reason))."
      type: dict
      returned: always
      sample: {node_watts: 10200.0, facility_watts: 10200.0, kwh_per_month: 7446.0, basis: nominal (profile h100_8x_sxm),
               nominal_node_watts: 10200.0, hosts: []}
    monthly:
      description: CNY per month of electricity, staff, both (C(operating_cny)) and avoided cloud spend.
      type: dict
      returned: always
      sample: {electricity_cny: 5956.8, ops_staff_cny: 20833.33, operating_cny: 26790.13, cloud_cny: 292000.0}
    totals:
      description: CNY over the horizon; C(tco_cny) is local cost minus avoided cloud spend.
      type: dict
      returned: always
      sample: {hardware_cny: 4000000.0, electricity_cny: 357408.0, ops_staff_cny: 1250000.0, local_cny: 5607408.0,
               cloud_cny: 17520000.0, tco_cny: -11912592.0}
    roi:
      description: (avoided cloud spend - local cost) / local cost; V(null) when the local cost is 0.
      type: float
      returned: always
      sample: 2.1244
    break_even_month:
      description: First month with cumulative local cost no more than the cumulative cloud spend; V(null) if none.
      type: int
      returned: always
      sample: 16
    cumulative:
      description: Per month from 0, the cumulative C(local_cny) and C(cloud_cny).
      type: list
      elements: dict
      returned: always
      sample: [{month: 0, local_cny: 4000000.0, cloud_cny: 0.0}]
    chart:
      description: The SVG chart's size, axes, tick positions and labels, the two polylines and the break-even marker.
      type: dict
      returned: always
      sample: {width: 720, height: 360, local_points: "100.0,237.5 ...", break_even: {x: 420.0, label: "break-even: month 16"}}
    report:
      description: The report's title, summary and table rows as text.
      type: dict
      returned: always
      sample: {title: "Capacity and TCO report: 8 x NVIDIA H100 SXM, 512 GB memory (large enterprise)", date: null}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._tco import OPTION_NAMES, TcoError, tco as compute_tco


def tco(profile, **options):
    """Filter entry point; see DOCUMENTATION."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise AnsibleFilterError("tco: unknown options %s (known: %s)" % (', '.join(unknown), ', '.join(OPTION_NAMES)))
    try:
        return compute_tco(profile, **options)
    except TcoError as exc:
        raise AnsibleFilterError("tco: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {'tco': tco}

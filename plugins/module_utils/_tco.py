# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Total cost of ownership of a local deployment against the cloud spend it avoids.

The model is the deployment guide's (section 5.1): TCO = hardware + electricity (kWh x price)
+ operations staff (person-years x salary) - avoided cloud spend, over a number of years.
Hardware is bought in month 0; electricity, staff and the avoided cloud spend accrue every
month. Money is in CNY.

Arithmetic is exact (fractions) so that a break-even on a month boundary is found on it; the
figures returned are rounded to cents. Everything the reports show, the chart's geometry
included, is computed here: the templates only print it.
"""

from __future__ import annotations

import datetime
import math
from fractions import Fraction

HOURS_PER_MONTH = 730  # 8760 h / 12
MAX_YEARS = 10

# The deployment guide's hardware table (section 2.1.1). hardware_cny is the midpoint of its price
# range per server. Power is the server's nominal maximum: GPUs at their board power plus the
# rest of the server; a customer sets measured or quoted figures instead.
# cloud_cny_per_gpu_hour is an assumption, not a quote: about the 2025 on-demand price of one
# GPU of an 8-GPU 80 GB A100 (USD 5.1) or H100 (USD 6.9) instance at a large public cloud, at
# 7.2 CNY/USD, rounded. The customer replaces it with the spend the deployment really avoids.
PROFILES = {
    'a100_2x': {
        'label': '2 x NVIDIA A100 80GB, 128 GB memory (development and test)',
        'gpus': 2,
        'hardware_cny': 525000,  # guide: 450,000-600,000
        'gpu_watts': 300,  # A100 80GB PCIe board power, NVIDIA A100 datasheet
        'other_watts': 600,  # assumption: 2 CPUs, 128 GB memory, disks, fans, supply losses
        'cloud_cny_per_gpu_hour': 37,
    },
    'h100_4x': {
        'label': '4 x NVIDIA H100 80GB, 256 GB memory (medium production)',
        'gpus': 4,
        'hardware_cny': 1500000,  # guide: 1,200,000-1,800,000
        'gpu_watts': 350,  # H100 PCIe maximum board power, NVIDIA H100 datasheet
        'other_watts': 800,  # assumption: 2 CPUs, 256 GB memory, disks, fans, supply losses
        'cloud_cny_per_gpu_hour': 50,
    },
    'h100_8x_sxm': {
        'label': '8 x NVIDIA H100 SXM, 512 GB memory (large enterprise)',
        'gpus': 8,
        'hardware_cny': 4000000,  # guide: 3,000,000-5,000,000
        'gpu_watts': 700,  # H100 SXM maximum TDP, NVIDIA H100 datasheet
        # DGX H100 datasheet: 10.2 kW system maximum, less 8 x 700 W of GPUs (NVSwitches, CPUs, NICs, fans).
        'other_watts': 4600,
        'cloud_cny_per_gpu_hour': 50,
    },
}
PROFILE_KEYS = ('label', 'gpus', 'hardware_cny', 'gpu_watts', 'other_watts', 'cloud_cny_per_gpu_hour')

DEFAULTS = {
    'years': 5,  # the guide's 5-year example
    'electricity_cny_per_kwh': Fraction(4, 5),  # guide: 0.8 CNY/kWh
    'pue': 1,  # the guide counts the servers' own energy; a data centre's PUE is typically 1.3-1.6
    'ops_staff': 1,
    'ops_staff_cny_per_year': 250000,  # guide: 250,000 CNY per person-year
}

# Every option of tco(), in the order the reports list them.
OPTION_NAMES = ('years', 'nodes', 'hardware_cny', 'electricity_cny_per_kwh', 'pue', 'node_watts', 'ops_staff',
                'ops_staff_cny_per_year', 'cloud_cny_per_gpu_hour', 'cloud_cny_per_month', 'hosts', 'gpu_facts',
                'date', 'variable_prefix')

# Chart geometry, in SVG user units.
CHART_WIDTH = 720
CHART_HEIGHT = 360
CHART_LEFT = 100
CHART_RIGHT = 20
CHART_TOP = 20
CHART_BOTTOM = 50


class TcoError(ValueError):
    pass


def _show(value):
    # Numbers as written, also when they come as strings (extra vars); anything else as Python shows it.
    if _fraction(value) is not None:
        return str(value).strip()
    return repr(value)


def _fraction(value):
    """The exact value of a number or numeric string, None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Fraction)):
        return None
    try:
        # Through str, so 0.8 is 4/5 and not the binary float nearest to it.
        return Fraction(value) if isinstance(value, (int, Fraction)) else Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        return None


class _Inputs(object):
    """Reads the options, collecting every error so one run names them all."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.errors = []

    def fail(self, name, text):
        self.errors.append('%s%s: %s' % (self.prefix, name, text))

    def number(self, name, value, low=0, high=None, low_open=False):
        number = _fraction(value)
        ok = number is not None and (number > low if low_open else number >= low) and (high is None or number <= high)
        if not ok:
            if high is not None:
                text = 'must be a number from %s to %s' % (low, high)
            else:
                text = 'must be a number greater than %s' % low if low_open else 'must be a number of at least %s' % low
            self.fail(name, '%s, not %s' % (text, _show(value)))
            return None
        return number

    def whole(self, name, value, low, high=None):
        number = _fraction(value)
        if number is None or number.denominator != 1 or number < low or (high is not None and number > high):
            text = 'must be a whole number from %s to %s' % (low, high) if high is not None else \
                'must be a whole number of at least %s' % low
            self.fail(name, '%s, not %s' % (text, _show(value)))
            return None
        return int(number)


def _profile(inputs, value):
    if isinstance(value, str) and value in PROFILES:
        return dict(PROFILES[value], name=value)
    if not isinstance(value, dict):
        inputs.fail('profile', 'must be one of %s or a dict of %s, not %s'
                    % (', '.join(sorted(PROFILES)), ', '.join(PROFILE_KEYS), _show(value)))
        return None
    unknown = sorted(str(k) for k in value if k not in PROFILE_KEYS + ('name',))
    missing = [k for k in PROFILE_KEYS if value.get(k) is None]
    if unknown or missing:
        inputs.fail('profile', ' '.join(
            (['unknown keys %s (known: %s, name).' % (', '.join(unknown), ', '.join(PROFILE_KEYS))] if unknown else [])
            + (['missing keys %s.' % ', '.join(missing)] if missing else [])))
        return None
    label, name = value['label'], value.get('name', 'custom')
    for key, text in (('label', label), ('name', name)):
        if not isinstance(text, str) or not text.strip() or any(c in text for c in '|\r\n\t'):
            inputs.fail('profile.' + key, 'must be a non-empty line of text without |, not %s' % _show(text))
    profile = {'name': name, 'label': label, 'gpus': inputs.whole('profile.gpus', value['gpus'], 1)}
    for key in ('hardware_cny', 'gpu_watts', 'other_watts', 'cloud_cny_per_gpu_hour'):
        profile[key] = inputs.number('profile.' + key, value[key])
    return profile


def _host_reading(host, fact, other_watts):
    """One host's GPU power as gpu_facts read it: measured when every GPU reported its draw."""
    reading = {'host': host, 'gpus': 0, 'gpu_watts': None, 'node_watts': None, 'measured': False}
    if fact is None:
        return dict(reading, reason='GPU facts not read in this run')
    if not isinstance(fact, dict) or not isinstance(fact.get('gpus'), list):
        raise TcoError('gpu_facts[%s]: must be the gpu facts of onprem.deepseek.gpu_facts (a dict with gpus), not %s'
                       % (host, _show(fact)))
    gpus = fact['gpus']
    reading['gpus'] = len(gpus)
    if not gpus:
        # The reason is printed in a Markdown table.
        return dict(reading, reason=str(fact.get('reason') or 'no GPUs found').replace('|', '/'))
    draws = [_fraction(g.get('power_draw_w')) if isinstance(g, dict) else None for g in gpus]
    if any(d is None or d < 0 for d in draws):
        return dict(reading, reason='%d of %d GPUs did not report their power draw'
                    % (sum(1 for d in draws if d is None or d < 0), len(gpus)))
    gpu_watts = sum(draws)
    return dict(reading, measured=True, gpu_watts=gpu_watts, node_watts=gpu_watts + other_watts, reason=None)


def _cny(value):
    return round(float(value), 2)


def _money(value):
    return '{:,.0f}'.format(float(value))


def _plain(value):
    """A number as people write it: 50, 0.8, 1.25."""
    value = Fraction(value)
    return str(value.numerator) if value.denominator == 1 else repr(float(value))


def _nice_step(raw):
    """The smallest of 1, 2, 2.5, 5 x 10^k at least raw: round tick spacing for the chart."""
    if raw <= 0:
        return Fraction(1)
    power = Fraction(10) ** int(math.floor(math.log10(float(raw))))
    for factor in (1, 2, Fraction(5, 2), 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def _chart(months, local, cloud, break_even):
    plot_w = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_h = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    highest = max(local[-1], cloud[-1])
    step = _nice_step(highest / 5)
    top = step * max(1, math.ceil(highest / step))

    def x(month):
        return round(float(CHART_LEFT + Fraction(month, months) * plot_w), 1)

    def y(value):
        return round(float(CHART_TOP + plot_h - value / top * plot_h), 1)

    def points(series):
        return ' '.join('%s,%s' % (x(m), y(v)) for m, v in enumerate(series))

    bottom = CHART_TOP + plot_h
    # Tick labels: y labels right-aligned left of the axis, x labels centred below it.
    y_ticks = [{'y': y(step * i), 'label_y': y(step * i) + 4, 'label': _money(step * i)}
               for i in range(int(top / step) + 1)]
    x_ticks = [{'x': x(m), 'label': 'year %d' % (m // 12) if m else 'start'} for m in range(0, months + 1, 12)]
    marker = None
    if break_even is not None:
        at = x(break_even)
        # The label goes on the side of the marker with more room.
        right_half = at > CHART_LEFT + plot_w / 2
        marker = {'x': at, 'label': 'break-even: month %d' % break_even, 'label_x': at - 4 if right_half else at + 4,
                  'label_y': CHART_TOP + 12, 'anchor': 'end' if right_half else 'start'}
    return {
        'width': CHART_WIDTH, 'height': CHART_HEIGHT,
        'left': CHART_LEFT, 'right': CHART_WIDTH - CHART_RIGHT, 'top': CHART_TOP, 'bottom': bottom,
        'y_label_x': CHART_LEFT - 6, 'x_label_y': bottom + 16,
        'legend': {'y': CHART_HEIGHT - 10, 'local_x': CHART_LEFT, 'cloud_x': CHART_LEFT + plot_w // 2},
        'local_points': points(local), 'cloud_points': points(cloud),
        'y_ticks': y_ticks, 'x_ticks': x_ticks, 'break_even': marker,
        'title': 'Cumulative cost in CNY, month 0 to %d: local deployment against the cloud spend it avoids' % months,
    }


def tco(profile, years=None, nodes=None, hardware_cny=None, electricity_cny_per_kwh=None, pue=None, node_watts=None,
        ops_staff=None, ops_staff_cny_per_year=None, cloud_cny_per_gpu_hour=None, cloud_cny_per_month=None,
        hosts=None, gpu_facts=None, date=None, variable_prefix=''):
    """The TCO, ROI and break-even month of a deployment of ``nodes`` servers of ``profile``.

    profile: a name of PROFILES or a dict of PROFILE_KEYS. None for an option means its default.
    hosts: the inventory's GPU servers; their number is the default for ``nodes``.
    gpu_facts: host name to its ``gpu`` fact from onprem.deepseek.gpu_facts (None when not read).
    Power per server: ``node_watts`` when set, else the mean of the measured servers (their GPUs'
    draw plus the profile's other_watts), else the profile's nominal figure.
    Errors name each option with ``variable_prefix`` before it (a playbook's variable names).
    """
    if not isinstance(variable_prefix, str):
        raise TcoError('variable_prefix: must be a string, not %s' % _show(variable_prefix))
    # 'set' for what the caller gave; the reports say where every other figure comes from.
    basis = {name: 'set' if value is not None else None for name, value in (
        ('hardware_cny', hardware_cny), ('pue', pue), ('electricity_cny_per_kwh', electricity_cny_per_kwh),
        ('ops_staff', ops_staff), ('ops_staff_cny_per_year', ops_staff_cny_per_year), ('years', years))}
    inputs = _Inputs(variable_prefix)
    prof = _profile(inputs, profile)
    years = inputs.whole('years', DEFAULTS['years'] if years is None else years, 1, MAX_YEARS)
    if nodes is not None:
        nodes = inputs.whole('nodes', nodes, 1)
    price = inputs.number('electricity_cny_per_kwh',
                          DEFAULTS['electricity_cny_per_kwh'] if electricity_cny_per_kwh is None else electricity_cny_per_kwh)
    pue = inputs.number('pue', DEFAULTS['pue'] if pue is None else pue, 1, 3)
    staff = inputs.number('ops_staff', DEFAULTS['ops_staff'] if ops_staff is None else ops_staff)
    salary = inputs.number('ops_staff_cny_per_year',
                           DEFAULTS['ops_staff_cny_per_year'] if ops_staff_cny_per_year is None else ops_staff_cny_per_year)
    set_hardware = None if hardware_cny is None else inputs.number('hardware_cny', hardware_cny)
    set_watts = None if node_watts is None else inputs.number('node_watts', node_watts, low_open=True)
    set_gpu_hour = None if cloud_cny_per_gpu_hour is None else inputs.number('cloud_cny_per_gpu_hour', cloud_cny_per_gpu_hour)
    set_cloud = None if cloud_cny_per_month is None else inputs.number('cloud_cny_per_month', cloud_cny_per_month)
    hosts = [] if hosts is None else hosts
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        inputs.fail('hosts', 'must be a list of host names, not %s' % _show(hosts))
        hosts = []
    gpu_facts = {} if gpu_facts is None else gpu_facts
    if not isinstance(gpu_facts, dict):
        inputs.fail('gpu_facts', 'must be a dict of host name to gpu facts, not %s' % _show(gpu_facts))
        gpu_facts = {}
    if isinstance(date, datetime.date) and not isinstance(date, datetime.datetime):
        # An unquoted date in YAML.
        date = date.isoformat()
    if date is not None:
        try:
            datetime.date.fromisoformat(date if isinstance(date, str) and len(date) == 10 else '')
        except ValueError:
            inputs.fail('date', 'must be a date as YYYY-MM-DD, not %s' % _show(date))
    if inputs.errors:
        raise TcoError('; '.join(inputs.errors))

    hosts = sorted(set(hosts))
    nodes_basis = 'set' if nodes is not None else ('hosts in the inventory group' if hosts else 'default')
    nodes = nodes if nodes is not None else (len(hosts) or 1)
    hardware = prof['hardware_cny'] if set_hardware is None else set_hardware
    gpu_hour = prof['cloud_cny_per_gpu_hour'] if set_gpu_hour is None else set_gpu_hour

    readings = [_host_reading(h, gpu_facts.get(h), prof['other_watts']) for h in hosts]
    measured = [r for r in readings if r['measured']]
    nominal = prof['gpus'] * prof['gpu_watts'] + prof['other_watts']
    if set_watts is not None:
        per_node, power_basis = set_watts, 'set'
    elif measured:
        per_node = sum(r['node_watts'] for r in measured) / len(measured)
        power_basis = 'measured on %d of %d servers (mean), GPUs read by gpu_facts plus %s W for the rest' % (
            len(measured), len(readings), _money(prof['other_watts']))
    else:
        per_node, power_basis = nominal, 'nominal (profile %s)' % prof['name']
    facility_watts = per_node * nodes * pue
    kwh_month = facility_watts * HOURS_PER_MONTH / 1000

    months = years * 12
    electricity_month = kwh_month * price
    staff_month = staff * salary / 12
    operating_month = electricity_month + staff_month
    if set_cloud is not None:
        cloud_month, cloud_basis = set_cloud, 'set'
    else:
        cloud_month = prof['gpus'] * nodes * HOURS_PER_MONTH * gpu_hour
        cloud_basis = '%d GPUs x %d h x %s CNY per GPU-hour (%s)' % (
            prof['gpus'] * nodes, HOURS_PER_MONTH, _plain(gpu_hour), 'set' if set_gpu_hour is not None else 'profile')
    hardware_total = hardware * nodes

    local = [hardware_total + m * operating_month for m in range(months + 1)]
    cloud = [m * cloud_month for m in range(months + 1)]
    break_even = next((m for m in range(1, months + 1) if local[m] <= cloud[m]), None)
    local_total, cloud_total = local[-1], cloud[-1]
    net = local_total - cloud_total
    roi = None if local_total == 0 else (cloud_total - local_total) / local_total

    horizon = '1 year' if years == 1 else '%d years' % years
    if break_even is None:
        verdict = 'Over %s the local deployment does not cost less than the cloud spend it avoids.' % horizon
    else:
        verdict = ('From month %d on, the local deployment has cost no more than the cloud spend it avoids.'
                   % break_even)
    summary = '%d %s of %s, over %s: local cost %s CNY, avoided cloud spend %s CNY, ROI %s. %s' % (
        nodes, 'server' if nodes == 1 else 'servers', prof['label'], horizon, _money(local_total), _money(cloud_total),
        'n/a' if roi is None else '%.1f %%' % float(roi * 100), verdict)

    profile_basis = ('profile %s (midpoint of the guide\'s price range)' % prof['name'] if isinstance(profile, str)
                     else 'profile %s' % prof['name'])
    report = {
        'title': 'Capacity and TCO report: %s' % prof['label'],
        'date': date,
        'summary': summary,
        'inputs': [
            ['Servers', str(nodes), nodes_basis],
            ['GPUs per server', str(prof['gpus']), 'profile %s' % prof['name']],
            ['Hardware per server', '%s CNY' % _money(hardware), basis['hardware_cny'] or profile_basis],
            ['Power per server', '%s W' % _money(per_node), power_basis],
            ['PUE', _plain(pue), basis['pue'] or 'default'],
            ['Electricity price', '%s CNY/kWh' % _plain(price), basis['electricity_cny_per_kwh'] or 'default (deployment guide)'],
            ['Operations staff (full-time equivalents)', _plain(staff), basis['ops_staff'] or 'default'],
            ['Staff cost', '%s CNY per person-year' % _money(salary), basis['ops_staff_cny_per_year'] or 'default (deployment guide)'],
            ['Avoided cloud spend', '%s CNY per month' % _money(cloud_month), cloud_basis],
            ['Horizon', '%d years (%d months)' % (years, months), basis['years'] or 'default (deployment guide)'],
        ],
        'monthly': [
            ['Electricity', '%s kWh' % _money(kwh_month), '%s CNY' % _money(electricity_month)],
            ['Operations staff', '', '%s CNY' % _money(staff_month)],
            ['Local running cost', '', '%s CNY' % _money(operating_month)],
            ['Avoided cloud spend', '', '%s CNY' % _money(cloud_month)],
        ],
        'totals': [
            ['Hardware', '%s CNY' % _money(hardware_total)],
            ['Electricity', '%s CNY' % _money(electricity_month * months)],
            ['Operations staff', '%s CNY' % _money(staff_month * months)],
            ['Local cost', '%s CNY' % _money(local_total)],
            ['Avoided cloud spend', '%s CNY' % _money(cloud_total)],
            ['TCO (local cost - avoided cloud spend)', '%s CNY' % _money(net)],
            ['ROI ((avoided cloud spend - local cost) / local cost)', 'n/a' if roi is None else '%.1f %%' % float(roi * 100)],
            ['Break-even', 'month %d' % break_even if break_even is not None else 'not within %d years' % years],
        ],
        # Year, cumulative local cost, cumulative cloud spend, cloud - local.
        'years': [[str(y), _money(local[y * 12]), _money(cloud[y * 12]), _money(cloud[y * 12] - local[y * 12])]
                  for y in range(1, years + 1)],
        'hosts': [[r['host'], str(r['gpus']), '-' if r['gpu_watts'] is None else _money(r['gpu_watts']),
                   'measured' if r['measured'] else r['reason']] for r in readings],
    }
    return {
        'profile': {'name': prof['name'], 'label': prof['label'], 'gpus': prof['gpus']},
        'years': years,
        'months': months,
        'nodes': nodes,
        'power': {
            'node_watts': _cny(per_node), 'facility_watts': _cny(facility_watts), 'kwh_per_month': _cny(kwh_month),
            'basis': power_basis, 'nominal_node_watts': _cny(nominal),
            'hosts': [dict(r, gpu_watts=None if r['gpu_watts'] is None else _cny(r['gpu_watts']),
                           node_watts=None if r['node_watts'] is None else _cny(r['node_watts'])) for r in readings],
        },
        'monthly': {
            'electricity_cny': _cny(electricity_month), 'ops_staff_cny': _cny(staff_month),
            'operating_cny': _cny(operating_month), 'cloud_cny': _cny(cloud_month),
        },
        'totals': {
            'hardware_cny': _cny(hardware_total), 'electricity_cny': _cny(electricity_month * months),
            'ops_staff_cny': _cny(staff_month * months), 'local_cny': _cny(local_total),
            'cloud_cny': _cny(cloud_total), 'tco_cny': _cny(net),
        },
        'roi': None if roi is None else round(float(roi), 4),
        'break_even_month': break_even,
        'cumulative': [{'month': m, 'local_cny': _cny(local[m]), 'cloud_cny': _cny(cloud[m])} for m in range(months + 1)],
        'chart': _chart(months, local, cloud, break_even),
        'report': report,
    }

# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The remediation role's preflight on both sides of each check, and the settings its defaults give.

The read-only preflight runs as playbooks/check_inputs.yml runs it, on inventory hosts that are
this machine (local connection): one host of deepseek_automation per bad value, each refused with
a message naming the variable, and hosts whose values must pass. The defaults are read from an
inventory of nodes that published node_exporter_target and a monitoring host with a client
certificate. Nothing on this machine is changed but the test's own directory.
"""
from __future__ import annotations

import json
import sys

from playbook_runs import needs_playbook, run_playbook

PLAY = '''---
- name: The remediation role's preflight, as check_inputs.yml runs it
  hosts: deepseek_automation
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Run it
      ansible.builtin.include_role:
        name: onprem.deepseek.remediation
        tasks_from: preflight.yml
        public: true

    - name: Write the settings the role would give the receiver
      ansible.builtin.copy:
        content: "{{ __remediation_config | to_json }}"
        dest: "{{ playbook_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
'''
SERVER = {'name': 'receiver', 'common_name': 'receiver', 'sans': ['IP:10.0.0.5'], 'usage': 'server', 'key_backend': 'file'}
GOOD = {'remediation_tls_certificate': 'receiver', 'pki_certificates': [SERVER], 'remediation_listen_host': '10.0.0.5'}
# Host name -> (its variables, the message its run must stop with).
BAD = {
    'cooldown_negative': ({'remediation_cooldown_s': -1}, 'remediation_cooldown_s: -1 is not a number of seconds'),
    'cooldown_text': ({'remediation_cooldown_s': '1h'}, 'remediation_cooldown_s: "1h" is not a number of seconds'),
    'max_zero': ({'remediation_max_per_hour': 0}, 'remediation_max_per_hour: 0 is not an integer >= 1'),
    'timeout_zero': ({'remediation_command_timeout_s': 0}, 'remediation_command_timeout_s: 0 is not a number of seconds'),
    'command_no_node': ({'remediation_command': ['ansible-playbook', 'site.yml']},
                        'remediation_command: ["ansible-playbook", "site.yml"] is not a list of arguments (no shell) with one holding {node}'),
    'command_string': ({'remediation_command': 'ansible-playbook -l {node} x.yml'},
                       'remediation_command: "ansible-playbook -l {node} x.yml" is not a list of arguments'),
    'listen_name': ({'remediation_listen_host': 'automation.example'},
                    'remediation_listen_host: "automation.example" on listen_name is not an IPv4 address'),
    'listen_ipv6': ({'remediation_listen_host': 'fd00::5'}, 'remediation_listen_host: "fd00::5" on listen_ipv6 is not an IPv4 address'),
    'port_high': ({'remediation_listen_port': 70000}, 'remediation_listen_port: 70000 on port_high is not a port (1-65535)'),
    'cert_empty': ({'remediation_tls_certificate': ''},
                   'remediation_tls_certificate: "" on cert_empty is not the name of one of this host\'s pki_certificates'),
    'cert_unknown': ({'remediation_tls_certificate': 'gateway'},
                     'remediation_tls_certificate: "gateway" on cert_unknown is not the name of one of this host\'s '
                     'pki_certificates with usage server and key_backend file (its names: receiver)'),
    'cert_client': ({'pki_certificates': [dict(SERVER, usage='client')]},
                    'remediation_tls_certificate: "receiver" on cert_client is not the name'),
    'cert_token': ({'pki_certificates': [dict(SERVER, key_backend='pkcs11', key_label='r1')]},
                   'remediation_tls_certificate: "receiver" on cert_token is not the name'),
    'subjects_plain': ({'remediation_allowed_subjects': ['prometheus']},
                       'remediation_allowed_subjects: ["prometheus"] is not a non-empty list of client certificate subjects'),
    'targets_bad_host': ({'remediation_targets': {'10.0.0.1:9100': 'node one'}},
                         'remediation_targets: {"10.0.0.1:9100": "node one"} is not a non-empty mapping'),
    'alertname_space': ({'remediation_alertname': 'Host Memory'}, 'remediation_alertname: "Host Memory" is not an alert name'),
    'user_upper': ({'remediation_user': 'Ops'}, 'remediation_user: "Ops" on user_upper is not a user name'),
    'clients_everyone': ({'remediation_allowed_clients': ['0.0.0.0/0']}, 'remediation_allowed_clients'),
}
# Values on the passing side of the same checks.
PASS = {
    'defaults': {},
    'edges': {'remediation_cooldown_s': 0, 'remediation_max_per_hour': 1, 'remediation_command_timeout_s': 1,
              'remediation_listen_port': 1, 'remediation_allowed_subjects': ['CN=alertmanager,OU=ops,O=example'],
              'remediation_targets': {'node1.example:9100': 'node1'},
              'pki_certificates': [dict(SERVER, usage='both')], 'remediation_allowed_clients': ['10.0.0.0/24', 'fd00::/64']},
}
MONITORING = {'ansible_host': '10.0.0.9', 'monitoring_scrape_client_certificate': 'prometheus',
              'pki_certificates': [{'name': 'prometheus', 'common_name': 'prometheus', 'usage': 'client', 'key_backend': 'file'},
                                   {'name': 'other', 'common_name': 'other', 'usage': 'client', 'key_backend': 'file'}]}


def inventory(automation, nodes):
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    return {'all': {'vars': local, 'children': {
        'deepseek_nodes': {'hosts': nodes},
        'deepseek_monitoring': {'hosts': {'mon1': MONITORING}},
        'deepseek_automation': {'hosts': {name: dict(GOOD, **values) for name, values in automation.items()}}}}}


def run(tmp_path, automation, nodes):
    (tmp_path / 'preflight.yml').write_text(PLAY)
    (tmp_path / 'hosts.json').write_text(json.dumps(inventory(automation, nodes)))
    result = run_playbook(['-i', 'hosts.json', '--limit', 'deepseek_automation', 'preflight.yml'], cwd=tmp_path,
                          ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json')
    report = json.loads(result.stdout)
    failures = {}
    for task in report['plays'][0]['tasks']:
        for host, res in task['hosts'].items():
            if res.get('failed'):
                failed = [str(r.get('msg', '')) for r in res.get('results', []) if r.get('failed')]
                failures[host] = ' | '.join([str(res.get('msg', ''))] + failed)
    return report, failures


NODES = {'node1': {'node_exporter_target': '10.0.0.1:9100'}, 'node2': {'node_exporter_target': '10.0.0.2:9100'}}


@needs_playbook
def test_bad_values_are_refused_naming_the_variable_and_good_ones_pass(tmp_path):
    hosts = {name: values for name, (values, _message) in BAD.items()}
    hosts.update(PASS)
    report, failures = run(tmp_path, hosts, NODES)
    missing = {name: failures.get(name) for name, (_values, message) in BAD.items()
               if message not in ' '.join(failures.get(name, '').split())}
    assert not missing, missing
    assert not set(PASS) & set(failures), failures
    assert all(report['stats'][name]['changed'] == 1 for name in PASS)  # only the test's own file


@needs_playbook
def test_the_defaults_act_on_every_node_for_the_monitoring_hosts_certificate(tmp_path):
    _report, failures = run(tmp_path, {'defaults': {}, 'edges': PASS['edges']}, NODES)
    assert not failures, failures
    config = json.loads((tmp_path / 'defaults.json').read_text())
    assert config['targets'] == {'10.0.0.1:9100': 'node1', '10.0.0.2:9100': 'node2'}
    assert config['allowed_subjects'] == ['CN=prometheus,O=onprem.deepseek']
    assert config['command'][-1] == 'onprem.deepseek.rolling_update' and 'rolling_update_hosts={node}' in config['command']
    assert (config['listen_host'], config['listen_port'], config['cooldown_s'], config['max_per_hour']) == ('10.0.0.5', 9443, 3600, 2)
    assert config['cert_file'].startswith('/etc/onprem-deepseek/remediation-tls/')
    edges = json.loads((tmp_path / 'edges.json').read_text())
    assert edges['targets'] == {'node1.example:9100': 'node1'} and edges['cooldown_s'] == 0


@needs_playbook
def test_default_targets_need_every_node_read_in_the_run(tmp_path):
    nodes = dict(NODES, node3={})
    _report, failures = run(tmp_path, {'defaults': {}, 'explicit': {'remediation_targets': {'10.0.0.1:9100': 'node1'}}}, nodes)
    assert set(failures) == {'defaults'}, failures
    assert 'this run did not read it on node3' in ' '.join(failures['defaults'].split())


@needs_playbook
def test_no_monitoring_certificate_and_no_subjects_is_refused(tmp_path):
    (tmp_path / 'preflight.yml').write_text(PLAY)
    hosts = inventory({'defaults': {}}, NODES)
    hosts['all']['children']['deepseek_monitoring']['hosts']['mon1'] = {'ansible_host': '10.0.0.9'}
    (tmp_path / 'hosts.json').write_text(json.dumps(hosts))
    result = run_playbook(['-i', 'hosts.json', '--limit', 'deepseek_automation', 'preflight.yml'], cwd=tmp_path)
    assert result.returncode != 0
    assert ('remediation_allowed_subjects: [] is not a non-empty list of client certificate subjects'
            in ' '.join((result.stdout + result.stderr).split()))

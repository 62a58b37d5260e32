# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a customer takes to AWX: the execution environment, the thin project and the AWX
configuration as code (examples/).

No AWX server and no container engine run here, so: ``ansible-builder create`` must produce a
build context, every survey question is checked against the argument specs of the roles (or the
playbook) it feeds, and the playbooks pass ``--syntax-check``. awx.awx resolves to the unmodified
copy of its modules in tests/awx/vendor_collections (no reachable registry offers the collection),
so lint checks configure.yml's module options against the real argument specs.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / 'examples'
AWX = EXAMPLES / 'awx'
PROJECT = EXAMPLES / 'awx-project'
VENDORED = Path(__file__).resolve().parent / 'vendor_collections'
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted(p.stem for p in (ROOT / 'playbooks').glob('*.yml'))
ROLES = sorted(p.name for p in (ROOT / 'roles').iterdir() if (p / 'meta' / 'argument_specs.yml').is_file())


def tool(name):
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or pytest.fail('%s is not installed (requirements/dev.txt)' % name)


class Loader(yaml.SafeLoader):
    """Reads Ansible's !unsafe (a string Ansible does not template) as the plain string."""


Loader.add_constructor('!unsafe', lambda loader, node: loader.construct_scalar(node))


def load(path):
    return yaml.load(Path(path).read_text(), Loader=Loader)  # noqa: S506 - a SafeLoader


def env():
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
                ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([str(ROOT / '.venv' / 'collections'), str(VENDORED)]))


# --- which specs a playbook feeds ---------------------------------------------------------------

def playbook_roles(name, seen=None):
    """Roles a playbook of playbooks/ runs, following import_playbook (by its text: the role names
    appear as onprem.deepseek.<role> or in loops as `role: <role>`)."""
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    text = (ROOT / 'playbooks' / (name + '.yml')).read_text()
    found = set(re.findall(r'onprem\.deepseek\.(\w+)', text)) | set(re.findall(r'\brole: (\w+)', text))
    roles = found & set(ROLES)
    for imported in re.findall(r'import_playbook: (\w+)\.yml', text):
        roles |= playbook_roles(imported, seen)
    return roles


def playbook_imports(name, seen=None):
    seen = set() if seen is None else seen
    seen.add(name)
    text = (ROOT / 'playbooks' / (name + '.yml')).read_text()
    for imported in re.findall(r'import_playbook: (\w+)\.yml', text):
        if imported not in seen:
            playbook_imports(imported, seen)
    return seen


def specs_for(playbook, playbook_specs):
    """{variable: (spec, where)} of every role the playbook runs and of the playbook itself."""
    options = {}
    for role in sorted(playbook_roles(playbook)):
        for entry, spec in load(ROOT / 'roles' / role / 'meta' / 'argument_specs.yml')['argument_specs'].items():
            for var, opt in (spec.get('options') or {}).items():
                options.setdefault(var, (opt, 'roles/%s (%s)' % (role, entry)))
    for name in playbook_imports(playbook):
        for var, opt in (playbook_specs.get(name, {}).get('options') or {}).items():
            options.setdefault(var, (opt, 'playbook %s' % name))
    return options


# --- the checker --------------------------------------------------------------------------------

# Spec types a survey answer of each AWX type can satisfy. AWX answers text, numbers and lists,
# never booleans, and the roles read the value as given: a bool or dict variable cannot be surveyed.
FITS = {
    'text': {'str', 'path', 'raw'},
    'textarea': {'str', 'raw'},
    'password': {'str', 'raw'},
    'integer': {'int', 'float', 'raw'},
    'float': {'float', 'raw'},
    'multiplechoice': {'str', 'path', 'raw'},
    'multiselect': {'list', 'raw'},
}


def accepts(var, opt, value):
    """The argument spec's own verdict on one value (what the role's first task would say)."""
    clean = {k: v for k, v in opt.items() if k not in ('description', 'version_added')}
    result = ArgumentSpecValidator({var: clean}).validate({var: value})
    return result.error_messages


def survey_problems(survey, options):
    """Every way the survey disagrees with the specs; empty when it fits."""
    problems = []
    for q in survey:
        var, qtype = q.get('variable'), q.get('type')
        where = '%s (%s)' % (var, q.get('question_name'))
        if var not in options:
            problems.append('%s: no argument spec of the playbook or its roles has this variable' % where)
            continue
        opt, source = options[var]
        stype = opt.get('type', 'str')
        if qtype not in FITS:
            problems.append('%s: unknown survey type %r' % (where, qtype))
            continue
        if stype not in FITS[qtype]:
            problems.append('%s: a %s question cannot answer %s, which is %s' % (where, qtype, source, stype))
            continue
        choices = q.get('choices') or []
        if isinstance(choices, str):
            choices = choices.split('\n')
        values = []
        if qtype in ('multiplechoice', 'multiselect'):
            if not choices:
                problems.append('%s: offers no choices' % where)
            if qtype == 'multiplechoice':
                values += [('choice', c) for c in choices]
            else:
                values += [('choice', [c]) for c in choices] + [('all choices', list(choices))]
            if 'default' in q and q['default'] not in ('', None):
                defaults = q['default'] if qtype == 'multiplechoice' else str(q['default']).split('\n')
                if (qtype == 'multiplechoice' and defaults not in choices) or \
                        (qtype == 'multiselect' and not set(defaults) <= set(choices)):
                    problems.append('%s: default %r is not among its choices' % (where, q['default']))
        elif opt.get('choices') and stype != 'raw':
            problems.append('%s: a free %s answer is not limited to the spec choices %s' % (where, qtype, opt['choices']))
        if qtype in ('integer', 'float'):
            cast = int if qtype == 'integer' else float
            low, high = q.get('min'), q.get('max')
            if low is None or high is None:
                problems.append('%s: a number question needs min and max' % where)
            else:
                low, high = cast(low), cast(high)
                if low > high:
                    problems.append('%s: min %s is above max %s' % (where, low, high))
                values += [('min', low), ('max', high)]
                if opt.get('choices') and qtype == 'integer':
                    refused = [n for n in range(low, min(high, low + 10000) + 1) if n not in opt['choices']]
                    if refused or high > low + 10000:
                        problems.append('%s: %s..%s offers values outside the spec choices %s' % (where, low, high, opt['choices']))
                if q.get('default') not in ('', None) and not low <= cast(q['default']) <= high:
                    problems.append('%s: default %s is outside %s..%s' % (where, q['default'], low, high))
        if q.get('default') not in ('', None) and qtype not in ('multiplechoice', 'multiselect'):
            default = q['default']
            if qtype in ('integer', 'float'):
                default = int(default) if qtype == 'integer' else float(default)
            values.append(('default', default))
        for label, value in values:
            for message in accepts(var, opt, value):
                problems.append('%s: %s %r is refused by %s: %s' % (where, label, value, source, message))
    return problems


def extra_vars_problems(extra_vars, options):
    problems = []
    for var, value in (extra_vars or {}).items():
        if var not in options:
            problems.append('%s: no argument spec of the playbook or its roles has this variable' % var)
            continue
        opt, source = options[var]
        problems += ['%s: %r is refused by %s: %s' % (var, value, source, m) for m in accepts(var, opt, value)]
    return problems


@pytest.fixture(scope='module')
def config():
    objects = load(AWX / 'vars' / 'objects.yml')
    templates = load(AWX / 'vars' / 'job_templates.yml')
    specs = load(AWX / 'vars' / 'playbook_argument_specs.yml')['argument_specs']
    return objects, templates, specs


def template_playbook(jt):
    match = re.fullmatch(r'playbooks/(\w+)\.yml', jt['playbook'])
    assert match and match.group(1) in PLAYBOOKS, '%s: %s is not a playbook of the thin project' % (jt['name'], jt['playbook'])
    assert (PROJECT / jt['playbook']).is_file(), jt['playbook']
    return match.group(1)


# --- (b) surveys against argument specs ---------------------------------------------------------

def test_playbook_specs_name_variables_the_playbooks_read(config):
    specs = config[2]
    for playbook, spec in specs.items():
        text = (ROOT / 'playbooks' / (playbook + '.yml')).read_text()
        for var in spec['options']:
            assert re.search(r'\b%s\b' % var, text), '%s is not read by playbooks/%s.yml' % (var, playbook)
            assert var not in {v for r in ROLES for v in load(ROOT / 'roles' / r / 'meta' / 'argument_specs.yml')
                               ['argument_specs'].get('main', {}).get('options', {})}, var


def test_every_survey_fits_the_specs_of_what_it_runs(config):
    templates, specs = config[1], config[2]
    assert {jt['name'] for jt in templates['awx_job_templates']} >= {
        'onprem.deepseek deploy', 'onprem.deepseek validate readiness', 'onprem.deepseek rolling driver upgrade'}
    checked = 0
    for jt in templates['awx_job_templates']:
        options = specs_for(template_playbook(jt), specs)
        assert survey_problems(jt.get('survey', []), options) == [], jt['name']
        assert extra_vars_problems(jt.get('extra_vars'), options) == [], jt['name']
        checked += len(jt.get('survey', []))
    by_name = {jt['name']: jt for jt in templates['awx_job_templates']}
    for wf in templates['awx_workflows']:
        playbooks = {template_playbook(by_name[n['unified_job_template']['name']]) for n in wf['schema']
                     if n['unified_job_template']['type'] == 'job_template'}
        options = {}
        for playbook in sorted(playbooks):
            options.update(specs_for(playbook, specs))
        survey = by_name[wf['survey_from']]['survey']
        assert survey_problems(survey, options) == [], wf['name']
        checked += len(survey)
    assert checked >= 6


def test_the_checker_finds_a_bad_survey(config):
    specs = config[2]
    gpu_stack = specs_for('gpu_stack', specs)
    validate = specs_for('validate', specs)
    bad = {
        'a choice the spec refuses': ([{'question_name': 'm', 'variable': 'nvidia_driver_kernel_modules', 'type': 'multiplechoice',
                                        'choices': ['open', 'closed']}], gpu_stack, "choice 'closed' is refused"),
        'a variable no spec has': ([{'question_name': 'x', 'variable': 'nvidia_driver_version', 'type': 'text'}],
                                   gpu_stack, 'no argument spec'),
        'a boolean': ([{'question_name': 'r', 'variable': 'nvidia_driver_reboot', 'type': 'multiplechoice',
                        'choices': ['true', 'false']}], gpu_stack, 'cannot answer'),
        'text for a number': ([{'question_name': 'g', 'variable': 'gpu_host_min_free_gib', 'type': 'text'}],
                              validate, 'cannot answer'),
        'free text for a choice': ([{'question_name': 'i', 'variable': 'gpu_host_iommu', 'type': 'text'}],
                                   validate, 'not limited to the spec choices'),
        'a default outside the choices': ([{'question_name': 'i', 'variable': 'gpu_host_iommu', 'type': 'multiplechoice',
                                            'choices': ['any'], 'default': 'off'}], validate, 'is not among its choices'),
        'min above max': ([{'question_name': 'g', 'variable': 'gpu_host_min_free_gib', 'type': 'integer', 'min': 9, 'max': 1}],
                          validate, 'min 9 is above max 1'),
        'a float range for an int': ([{'question_name': 'g', 'variable': 'gpu_host_min_free_gib', 'type': 'float',
                                       'min': 0.5, 'max': 2}], validate, 'cannot answer'),
        'a number without bounds': ([{'question_name': 'g', 'variable': 'gpu_host_min_free_gib', 'type': 'integer'}],
                                    validate, 'needs min and max'),
    }
    for case, (survey, options, expected) in bad.items():
        problems = survey_problems(survey, options)
        assert any(expected in p for p in problems), (case, problems)
    # A number range checked value by value against an int spec with choices.
    options = {'n': ({'type': 'int', 'choices': [1, 2, 4]}, 'test spec')}
    problems = survey_problems([{'question_name': 'n', 'variable': 'n', 'type': 'integer', 'min': 1, 'max': 4}], options)
    assert any('outside the spec choices' in p for p in problems), problems
    assert survey_problems([{'question_name': 'n', 'variable': 'n', 'type': 'multiplechoice', 'choices': ['1']}],
                           options) != []
    # Fixed extra vars are checked too.
    assert extra_vars_problems({'nvidia_driver_reboot': 'maybe'}, gpu_stack) != []
    assert extra_vars_problems({'nvidia_driver_reboot': True}, gpu_stack) == []


def test_hsm_credential_type_injects_the_hsm_roles_variables(config):
    objects = config[0]
    hsm_options = load(ROOT / 'roles' / 'hsm' / 'meta' / 'argument_specs.yml')['argument_specs']['main']['options']
    (ctype,) = [c for c in objects['awx_credential_types'] if c['name'] == '{{ awx_hsm_credential_type }}']
    fields = {f['id']: f for f in ctype['inputs']['fields']}
    assert set(ctype['injectors']['extra_vars']) == {'hsm_user_pin', 'hsm_so_pin'} <= set(hsm_options)
    assert all(fields[name]['secret'] for name in ('hsm_user_pin', 'hsm_so_pin'))
    for var, template in ctype['injectors']['extra_vars'].items():
        assert re.match(r'\{\{ %s\b' % var, template), (var, template)


def test_workflow_is_check_approval_run_validate(config):
    templates = config[1]
    by_name = {jt['name']: jt for jt in templates['awx_job_templates']}
    (wf,) = templates['awx_workflows']
    nodes = {n['identifier']: n for n in wf['schema']}
    order, node = [], nodes['check']
    while node:
        order.append(node)
        following = node['related']['success_nodes']
        assert len(following) <= 1 and not node['related']['failure_nodes'] and not node['related']['always_nodes']
        node = nodes[following[0]['identifier']] if following else None
    assert [(n['unified_job_template']['type'], n['unified_job_template']['name'], n.get('job_type')) for n in order] == [
        ('job_template', 'onprem.deepseek deploy', 'check'),
        ('workflow_approval', order[1]['unified_job_template']['name'], None),
        ('job_template', 'onprem.deepseek deploy', 'run'),
        ('job_template', 'onprem.deepseek validate readiness', None)]
    assert len(order) == len(nodes)
    for n in order:
        jt = by_name.get(n['unified_job_template']['name'])
        if 'job_type' in n:
            assert jt['ask_job_type_on_launch'], n['identifier']
        if 'diff_mode' in n:
            assert jt['ask_diff_mode_on_launch'], n['identifier']


# --- (a) the execution environment --------------------------------------------------------------

def test_ansible_builder_creates_a_build_context(tmp_path):
    result = subprocess.run([tool('ansible-builder'), 'create', '-f', str(EXAMPLES / 'execution-environment.yml'),
                             '-c', str(tmp_path / 'context'), '--output-filename', 'Containerfile'],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (tmp_path / 'context' / 'Containerfile').read_text()
    # Every source is a build argument, and an empty one stops the build.
    for arg in ('PIP_INDEX_URL', 'ANSIBLE_GALAXY_SERVER'):
        assert 'ARG %s\nRUN test -n "$%s"' % (arg, arg) in containerfile
    assert re.search(r'^ARG EE_BASE_IMAGE="SET-', containerfile, re.M)
    assert load(tmp_path / 'context' / '_build' / 'requirements.yml')['collections'][0]['name'] == 'onprem.deepseek'
    # What the build reads from the installed collection (meta/execution-environment.yml).
    result = subprocess.run([sys.executable, str(tmp_path / 'context' / '_build' / 'scripts' / 'introspect.py'), 'introspect',
                             str(ROOT / '.venv' / 'collections')], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    found = yaml.safe_load(result.stdout)
    assert 'cryptography>=46.0.7  # from collection onprem.deepseek' in found['python']
    assert {'gnupg [platform:dpkg]  # from collection onprem.deepseek',
            'gnupg2 [platform:rpm]  # from collection onprem.deepseek'} <= set(found['system'])


def test_bindep_has_platform_tags():
    lines = [line for line in (ROOT / 'bindep.txt').read_text().splitlines() if line and not line.startswith('#')]
    assert lines and all(re.search(r'\[platform:(dpkg|rpm)\]', line) for line in lines)
    assert load(ROOT / 'meta' / 'execution-environment.yml')['dependencies'] == {
        'python': 'requirements.txt', 'system': 'bindep.txt'}


# --- (c) syntax checks --------------------------------------------------------------------------

def test_thin_project_has_every_playbook():
    thin = sorted(p.stem for p in (PROJECT / 'playbooks').glob('*.yml'))
    assert thin == PLAYBOOKS
    for name in thin:
        plays = load(PROJECT / 'playbooks' / (name + '.yml'))
        assert [p['ansible.builtin.import_playbook'] for p in plays] == ['onprem.deepseek.' + name]


@pytest.mark.parametrize('playbook', ['awx/configure.yml'] + ['awx-project/playbooks/%s.yml' % p for p in PLAYBOOKS])
def test_syntax_check(playbook):
    result = subprocess.run([tool('ansible-playbook'), '--syntax-check', '-i', 'localhost,', str(EXAMPLES / playbook)],
                            cwd=EXAMPLES, env=env(), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# --- (d) the module options, against awx.awx's own argument specs -----------------------------------

def test_vendored_awx_is_the_real_collection():
    collection = VENDORED / 'ansible_collections' / 'awx' / 'awx'
    info = load(collection / 'galaxy.yml')
    assert (info['namespace'], info['name'], info['version']) == ('awx', 'awx', '24.6.1')
    used = set(re.findall(r'^\s+awx\.awx\.(\w+):', (AWX / 'configure.yml').read_text(), re.M))
    assert sorted(p.stem for p in (collection / 'plugins' / 'modules').glob('*.py')) == sorted(used)
    assert 'ControllerAPIModule' in (collection / 'plugins' / 'module_utils' / 'controller_api.py').read_text()


JOB_TEMPLATE_PLAY = """---
- name: A job template
  hosts: localhost
  gather_facts: false
  tasks:
    - name: A job template with a survey
      awx.awx.job_template:
        name: probe
        project: probe
        playbook: playbooks/site.yml
        %s:
          name: probe
          description: probe
          spec: []
        state: present
"""


def lint(path, cwd):
    # --strict: `args` is an experimental rule, so without it a wrong option is only a warning.
    return subprocess.run([tool('ansible-lint'), '--offline', '--strict', '--nocolor', '-f', 'pep8', str(path)],
                          cwd=cwd, env=env(), capture_output=True, text=True, timeout=120, check=False)


def test_lint_checks_options_against_the_vendored_specs(tmp_path):
    bad, good = tmp_path / 'bad.yml', tmp_path / 'good.yml'
    bad.write_text(JOB_TEMPLATE_PLAY % 'survey_specc')
    good.write_text(JOB_TEMPLATE_PLAY % 'survey_spec')
    result = lint(bad, tmp_path)
    assert result.returncode != 0, result.stdout + result.stderr
    assert re.search(r'bad\.yml:\d+: args\[module\].*Unsupported parameters.*survey_specc', result.stdout), result.stdout
    result = lint(good, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The configuration playbook itself, with the repository's .ansible-lint, `args` warnings fatal.
    result = lint(AWX / 'configure.yml', ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_configure_passes_the_module_argument_specs(tmp_path):
    """Lint leaves templated values alone, and every value configure.yml passes is templated from
    vars/. So run it: each module validates its rendered arguments before it connects to AWX, and
    here nothing listens, so a task that fails for its connection has passed validation."""
    shutil.copytree(AWX / 'vars', tmp_path / 'vars')
    text = (AWX / 'configure.yml').read_text()
    text = re.sub(r'^(    - name: .*)$', r'\1\n      ignore_errors: true', text, flags=re.M)
    text = text.replace('      no_log: true\n', '')  # the PINs below are not secret
    (tmp_path / 'configure.yml').write_text(text)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    run_env = {k: v for k, v in env().items() if not k.lower().endswith('_proxy') and not k.startswith('CONTROLLER_')}
    run_env.update(CONTROLLER_HOST='https://127.0.0.1:%d' % port, CONTROLLER_OAUTH_TOKEN='not-a-token',
                   ANSIBLE_CALLBACK_RESULT_FORMAT='json')
    result = subprocess.run([tool('ansible-playbook'), '-i', 'localhost,', 'configure.yml',
                             '-e', 'ansible_python_interpreter=%s' % sys.executable,
                             '-e', 'awx_project_scm_url=https://git.invalid/project.git', '-e', 'awx_ee_image=ee.invalid/ee:1',
                             '-e', 'awx_hsm_user_pin=1234', '-e', 'awx_hsm_so_pin=5678'],
                            cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=300, check=False)
    out = result.stdout
    tasks = len(re.findall(r'^      awx\.awx\.\w+:', text, re.M))
    templates = load(AWX / 'vars' / 'job_templates.yml')
    calls = (tasks - 3 + len(load(AWX / 'vars' / 'objects.yml')['awx_credential_types'])
             + len(templates['awx_job_templates']) + len(templates['awx_workflows']))  # three tasks loop
    assert re.search(r'localhost\s*: .*failed=0 .*ignored=%d\b' % tasks, out), out[-3000:]
    messages = re.findall(r'"msg": "(.*?)"', out)
    assert len(messages) == calls, messages
    assert all('error when trying to connect to https://127.0.0.1:%d/' % port in m for m in messages), messages

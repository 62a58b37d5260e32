# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/pki/files/pki-cert-expiry: the daily expiry check the pki role installs on each host.

The script is loaded from the role and run with a fixed clock against certificates made here,
so the renewal window is tested on both sides of its boundary to the second.
"""
from __future__ import annotations

import datetime
import importlib.machinery
import importlib.util
import os
import stat
import subprocess
import sys
import types
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'roles' / 'pki' / 'files' / 'pki-cert-expiry'
NOW = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
DAY = 86400
PREFIX = 'onprem_deepseek_pki_certificate_'


def load():
    loader = importlib.machinery.SourceFileLoader('pki_cert_expiry', str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


@pytest.fixture
def expiry(monkeypatch):
    module = load()

    class FixedClock(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return NOW

    monkeypatch.setattr(module, 'datetime', types.SimpleNamespace(datetime=FixedClock, timezone=datetime.timezone))
    monkeypatch.delenv('JOURNAL_STREAM', raising=False)
    return module


def certificate(path, seconds_left):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'test')])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(seconds=seconds_left))
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def metrics(path):
    return [line for line in Path(path).read_text().splitlines() if not line.startswith('#')]


def test_a_certificate_expiring_exactly_at_the_window_is_due(expiry, tmp_path, capsys):
    cert = certificate(tmp_path / 'a.crt', 30 * DAY)
    out = tmp_path / 'm.prom'
    assert expiry.main(['--renew-before-days', '30', '--output', str(out), 'a=' + cert]) == 0
    assert capsys.readouterr().err == (
        'certificate a (%s) expires 2026-07-01T12:00:00Z, within the renewal window of 30 days: '
        'run the pki role to renew it\n' % cert)
    assert '%srenewal_due{name="a",path="%s"} 1' % (PREFIX, cert) in metrics(out)


def test_a_certificate_expiring_a_second_after_the_window_is_not_due(expiry, tmp_path, capsys):
    cert = certificate(tmp_path / 'a.crt', 30 * DAY + 1)
    out = tmp_path / 'm.prom'
    assert expiry.main(['--renew-before-days', '30', '--output', str(out), 'a=' + cert]) == 0
    assert capsys.readouterr().err == 'certificate a (%s) expires 2026-07-01T12:00:01Z\n' % cert
    assert '%srenewal_due{name="a",path="%s"} 0' % (PREFIX, cert) in metrics(out)


def test_the_whole_metrics_file(expiry, tmp_path):
    good = certificate(tmp_path / 'good.crt', 90 * DAY)
    out = tmp_path / 'm.prom'
    assert expiry.main(['--renew-before-days', '7', '--output', str(out), 'good=' + good,
                        'gone=' + str(tmp_path / 'missing.crt')]) == 1
    expires = int(NOW.timestamp()) + 90 * DAY
    assert Path(out).read_text().splitlines() == [
        '# HELP %sexpiry_timestamp_seconds Time (Unix seconds) after which the certificate is no longer valid.' % PREFIX,
        '# TYPE %sexpiry_timestamp_seconds gauge' % PREFIX,
        '%sexpiry_timestamp_seconds{name="good",path="%s"} %d' % (PREFIX, good, expires),
        '# HELP %srenewal_due 1 when the certificate expires within the renewal window (pki_renew_before_days).' % PREFIX,
        '# TYPE %srenewal_due gauge' % PREFIX,
        '%srenewal_due{name="good",path="%s"} 0' % (PREFIX, good),
        '# HELP %sread_ok 1 when the certificate file could be read and parsed.' % PREFIX,
        '# TYPE %sread_ok gauge' % PREFIX,
        '%sread_ok{name="good",path="%s"} 1' % (PREFIX, good),
        '%sread_ok{name="gone",path="%s"} 0' % (PREFIX, tmp_path / 'missing.crt'),
        '# HELP %srenew_before_seconds The renewal window, in seconds.' % PREFIX,
        '# TYPE %srenew_before_seconds gauge' % PREFIX,
        '%srenew_before_seconds %d' % (PREFIX, 7 * DAY),
        '# HELP %scheck_timestamp_seconds When this check ran (Unix seconds).' % PREFIX,
        '# TYPE %scheck_timestamp_seconds gauge' % PREFIX,
        '%scheck_timestamp_seconds %d' % (PREFIX, int(NOW.timestamp())),
    ]
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ['good.crt', 'm.prom']


def test_an_unreadable_certificate_is_an_error_and_the_others_are_still_reported(expiry, tmp_path, capsys):
    bad = tmp_path / 'bad.crt'
    bad.write_text('not a certificate')
    good = certificate(tmp_path / 'good.crt', 90 * DAY)
    out = tmp_path / 'm.prom'
    assert expiry.main(['--renew-before-days', '7', '--output', str(out), 'bad=' + str(bad), 'good=' + good]) == 1
    assert capsys.readouterr().err.splitlines() == [
        'certificate bad: cannot read %s (ValueError)' % bad,
        'certificate good (%s) expires 2026-08-30T12:00:00Z' % good,
    ]
    assert '%sread_ok{name="bad",path="%s"} 0' % (PREFIX, bad) in metrics(out)
    assert not [line for line in metrics(out) if 'name="bad"' in line and 'read_ok' not in line]


def test_journal_levels_under_systemd(expiry, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('JOURNAL_STREAM', '8:1234')
    due = certificate(tmp_path / 'due.crt', DAY)
    later = certificate(tmp_path / 'later.crt', 90 * DAY)
    assert expiry.main(['--renew-before-days', '7', '--output', str(tmp_path / 'm.prom'), 'due=' + due,
                        'later=' + later, 'gone=' + str(tmp_path / 'missing.crt')]) == 1
    assert [line[:3] for line in capsys.readouterr().err.splitlines()] == ['<4>', '<6>', '<3>']


def test_names_and_paths_are_escaped_as_label_values(expiry, tmp_path):
    odd = tmp_path / 'a"b\\c.crt'
    certificate(odd, 90 * DAY)
    out = tmp_path / 'm.prom'
    assert expiry.main(['--renew-before-days', '7', '--output', str(out), 'x"y=' + str(odd)]) == 0
    escaped = str(odd).replace('\\', '\\\\').replace('"', '\\"')
    assert '%sread_ok{name="x\\"y",path="%s"} 1' % (PREFIX, escaped) in metrics(out)
    assert expiry.label('a\nb') == 'a\\nb'


@pytest.mark.parametrize('argv', [
    [],
    ['--output', 'm.prom', 'a=/x'],
    ['--renew-before-days', '-1', '--output', 'm.prom', 'a=/x'],
    ['--renew-before-days', 'seven', '--output', 'm.prom', 'a=/x'],
    ['--renew-before-days', '7', 'a=/x'],
    ['--renew-before-days', '7', '--output', 'm.prom'],
    ['--renew-before-days', '7', '--output', 'm.prom', 'a=/x', '--verbose'],
    ['--renew-before-days', '7', '--output', 'm.prom', '-a=/x'],
    ['--renew-before-days'],
])
def test_usage_errors_exit_2_and_write_nothing(expiry, tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    assert expiry.main(argv) == 2
    assert capsys.readouterr().err.startswith('python3 -I pki-cert-expiry --renew-before-days DAYS')
    assert list(tmp_path.iterdir()) == []


def test_zero_days_is_a_valid_window(expiry, tmp_path, capsys):
    cert = certificate(tmp_path / 'a.crt', 1)
    assert expiry.main(['--renew-before-days', '0', '--output', str(tmp_path / 'm.prom'), 'a=' + cert]) == 0
    assert 'within the renewal window' not in capsys.readouterr().err


def test_a_failed_write_leaves_no_temporary_file(expiry, tmp_path, monkeypatch):
    cert = certificate(tmp_path / 'a.crt', 90 * DAY)

    def refuse(src, dst):
        raise OSError('no space')

    monkeypatch.setattr(expiry.os, 'replace', refuse)
    with pytest.raises(OSError):
        expiry.main(['--renew-before-days', '7', '--output', str(tmp_path / 'm.prom'), 'a=' + cert])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.crt']


def test_it_runs_as_the_unit_runs_it(tmp_path):
    # python3 -I, as the unit's ExecStart: no environment, the real clock.
    since = datetime.datetime.now(datetime.timezone.utc) - NOW
    cert = certificate(tmp_path / 'a.crt', int(since.total_seconds()) + 400 * DAY)
    run = subprocess.run([sys.executable, '-I', str(SCRIPT), '--renew-before-days', '30', '--output',
                          str(tmp_path / 'm.prom'), 'a=' + cert], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert '%srenewal_due{name="a",path="%s"} 0' % (PREFIX, cert) in metrics(tmp_path / 'm.prom')

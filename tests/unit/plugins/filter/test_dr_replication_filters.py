"""The filters of the audit replication: dr_replication_peers (each error names the variable) and
dr_replication_loss (the chain as text or lines, the inputs of dr_report)."""
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.filter import dr_replication_loss as loss_plugin
from ansible_collections.onprem.deepseek.plugins.filter import dr_replication_peers as peers_plugin

GATEWAYS = [{"name": "mol-dr-a1", "site": "site_a", "address": "10.87.1.21"},
            {"name": "mol-dr-b1", "site": "site_b", "address": "10.87.2.21"}]


def record(seq, when):
    return json.dumps({"seq": seq, "time": when, "prev": "0" * 64, "hash": "%064x" % seq}, sort_keys=True)


def test_the_filters_are_registered():
    assert peers_plugin.FilterModule().filters() == {"dr_replication_peers": peers_plugin.dr_replication_peers}
    assert loss_plugin.FilterModule().filters() == {"dr_replication_loss": loss_plugin.dr_replication_loss}


def test_peers_of_each_site():
    plan = peers_plugin.dr_replication_peers(GATEWAYS, "mol-dr-b1", 2514)
    assert plan["senders"] == [{"name": "mol-dr-a1", "site": "site_a"}]
    assert plan["targets"][0]["address"] == "10.87.1.21"
    assert peers_plugin.dr_replication_peers(GATEWAYS, "mol-dr-a1")["port"] == 2514


@pytest.mark.parametrize("gateways, port, message", [
    ([dict(GATEWAYS[0], site=""), GATEWAYS[1]], 2514, "dr_replication_peers: deepseek_site: gateway mol-dr-a1 has no site"),
    ([GATEWAYS[0], dict(GATEWAYS[1], site="site_a")], 2514, "dr_replication_peers: deepseek_site: every gateway is in site_a"),
    (GATEWAYS, 70000, "dr_replication_peers: dr_replication_port: must be a TCP port"),
])
def test_peer_errors_name_the_variable(gateways, port, message):
    with pytest.raises(AnsibleFilterError, match="^" + message):
        peers_plugin.dr_replication_peers(gateways, "mol-dr-a1", port)


REPLICA = ("2026-12-05T11:26:50.010000+00:00 2026-12-05T11:26:50.000000+00:00 onprem-deepseek-audit %s\n"
           % record(1, "2026-12-05T11:26:50+00:00"))
CHAIN = "\n".join([record(1, "2026-12-05T11:26:50+00:00"), record(2, "2026-12-05T11:26:52+00:00"),
                   record(3, "2026-12-05T11:26:58+00:00")]) + "\n"
FAULT = 1796470014.0  # 2026-12-05T11:26:54Z


@pytest.mark.parametrize("chain", [CHAIN, CHAIN.splitlines()])
def test_loss_from_the_chain_and_the_replica(chain):
    result = loss_plugin.dr_replication_loss(chain, REPLICA, FAULT)
    assert result == {"records_written": 2, "records_lost": 1, "lost_seqs": [2], "rpo_s": 2.0,
                      "written": [{"seq": 1, "time": FAULT - 4}, {"seq": 2, "time": FAULT - 2}], "present": [1]}


@pytest.mark.parametrize("chain, replica, fault, message", [
    (5, REPLICA, FAULT, "the chain must be text or a list of lines"),
    ([1], REPLICA, FAULT, "the chain must be text or a list of lines"),
    (CHAIN, None, FAULT, "replica must be the replica file's text"),
    (CHAIN, REPLICA, "now", "fault_time must be seconds since the epoch"),
    (CHAIN, REPLICA, True, "fault_time must be seconds since the epoch"),
])
def test_loss_refuses_wrong_inputs(chain, replica, fault, message):
    with pytest.raises(AnsibleFilterError, match="^dr_replication_loss: " + message):
        loss_plugin.dr_replication_loss(chain, replica, fault)

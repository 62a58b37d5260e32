"""The port filter's sets: loopback plus the clients by family, each once; bad entries name the variable."""
import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.deepseek.plugins.filter.port_filter import port_filter
from ansible_collections.onprem.deepseek.plugins.module_utils._port_filter import PortFilterError
from ansible_collections.onprem.deepseek.plugins.module_utils._port_filter import port_filter as plain


def test_loopback_and_the_clients_by_family_each_once_ports_sorted():
    assert plain("v", ["10.0.0.5", "10.0.1.0/24", "fd00::7", "10.0.0.5", "127.0.0.1"], [9100, 9090, 9100]) == {
        "ipv4": ["127.0.0.0/8", "10.0.0.5/32", "10.0.1.0/24", "127.0.0.1/32"],
        "ipv6": ["::1/128", "fd00::7/128"],
        "ports": [9090, 9100],
    }


def test_no_clients_leaves_loopback():
    assert plain("v", [], [1]) == {"ipv4": ["127.0.0.0/8"], "ipv6": ["::1/128"], "ports": [1]}


def test_a_host_part_in_a_network_is_masked():
    assert plain("v", ["10.0.1.7/24"], [9100])["ipv4"][1] == "10.0.1.0/24"


@pytest.mark.parametrize("entry, message", [
    ("mon-1", r"'mon-1' is not an IP address or network \(CIDR\); name hosts by address"),
    ("10.0.0.300", "is not an IP address"),
    ("0.0.0.0/0", r"'0.0.0.0/0' admits every address; list the clients' addresses or networks$"),
    ("::/0", "admits every address"),
])
def test_bad_clients_name_the_variable(entry, message):
    with pytest.raises(PortFilterError, match="^node_exporter_allowed_clients: .*" + message):
        plain("node_exporter_allowed_clients", [entry], [9100])


def test_the_narrowest_wide_network_is_allowed():
    assert plain("v", ["0.0.0.0/1"], [9100])["ipv4"][1] == "0.0.0.0/1"


def test_clients_must_be_a_list():
    with pytest.raises(PortFilterError, match=r"^v: must be a list of addresses or networks \(CIDR\), not '10.0.0.5'$"):
        plain("v", "10.0.0.5", [9100])


@pytest.mark.parametrize("ports", [[0], [65536], [True], ["9100"], [], None])
def test_bad_ports(ports):
    with pytest.raises(PortFilterError, match="^v: (port .* is not from 1 to 65535|no port to filter)$"):
        plain("v", [], ports)


@pytest.mark.parametrize("ports", [[1], [65535]])
def test_port_bounds(ports):
    assert plain("v", [], ports)["ports"] == ports


def test_the_filter_names_itself():
    assert port_filter(["10.0.0.5"], variable="v", ports=[9100])["ipv4"][1] == "10.0.0.5/32"
    with pytest.raises(AnsibleFilterError, match="^port_filter: v: 'x' is not"):
        port_filter(["x"], variable="v", ports=[9100])


@pytest.mark.parametrize("entry", ["gw.example", "10.0.0.300", "0.0.0.0/0", "::/0", ""])
def test_the_inference_engine_refuses_the_same_entries_with_the_same_words(entry):
    from ansible_collections.onprem.deepseek.plugins.module_utils import _inference_engine
    from ansible_collections.onprem.deepseek.plugins.module_utils._port_filter import client_network

    with pytest.raises(ValueError) as caught:
        client_network(entry)
    with pytest.raises(PortFilterError) as filtered:
        plain("v", [entry], [9100])
    assert str(filtered.value) == "v: %s" % caught.value
    problems = _inference_engine._Problems()
    assert _inference_engine._networks(problems, "inference_allowed_clients", [entry, "10.0.0.5"]) == ["10.0.0.5/32"]
    assert problems.items == ["inference_allowed_clients: %s" % caught.value]

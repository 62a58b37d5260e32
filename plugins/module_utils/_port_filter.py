# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which clients may connect to a set of ports: the elements of an nftables table's sets."""

from __future__ import annotations

import ipaddress

_LOOPBACK = ("127.0.0.0/8", "::1/128")


class PortFilterError(ValueError):
    pass


def client_network(entry):
    """The network of one client entry (an address or a CIDR network); ValueError says what is wrong.

    Shared by every role that admits clients to its ports (the inference engine, the exporters,
    Prometheus), so that all of them accept and refuse the same entries.
    """
    try:
        network = ipaddress.ip_network(str(entry).strip(), strict=False)
    except ValueError:
        raise ValueError("%r is not an IP address or network (CIDR); name hosts by address" % (entry,))
    if network.prefixlen == 0:
        raise ValueError("%r admits every address; list the clients' addresses or networks" % (entry,))
    return network


def port_filter(variable, clients, ports):
    """Loopback and the clients, by address family, and the ports; raises naming ``variable``."""
    if not isinstance(clients, (list, tuple)):
        raise PortFilterError("%s: must be a list of addresses or networks (CIDR), not %r" % (variable, clients))
    if not isinstance(ports, (list, tuple)) or not ports:
        raise PortFilterError("%s: no port to filter" % variable)
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise PortFilterError("%s: port %r is not from 1 to 65535" % (variable, port))
    out = {"ipv4": [], "ipv6": [], "ports": sorted(set(ports))}
    for entry in list(_LOOPBACK) + list(clients):
        try:
            network = client_network(entry)
        except ValueError as exc:
            raise PortFilterError("%s: %s" % (variable, exc))
        family = out["ipv4" if network.version == 4 else "ipv6"]
        if str(network) not in family:
            family.append(str(network))
    return out

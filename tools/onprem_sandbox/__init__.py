"""The sandbox: booted Debian hosts in network namespaces, reached over real SSH.

`spec` reads and validates what to build from an Ansible inventory (pure, unit-tested),
`rootfs` builds the cached Debian image, `network` lays out the sites and the router,
`mirror` runs the site mirror, `hosts` boots the containers, and `cli` ties them together.
"""

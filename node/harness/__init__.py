"""The planet on one machine: regions as Linux network namespaces joined by a userspace WAN router.

``topology`` describes sites and links, ``netns`` makes and removes namespaces, ``router`` is the
delay/loss router process, ``portal`` lets the host reach a node API inside a namespace, and
``planet`` ties them to real node processes. Nothing here is used by a running node.
"""

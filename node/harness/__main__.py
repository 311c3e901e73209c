"""``python -m node.harness check|clean``: can this machine build a planet; remove crashed runs' leftovers."""

from __future__ import annotations

import sys

from node.harness import netns


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "check":
        reason = netns.unavailable()
        print(reason or "network namespaces, TUN and tc are available: the WAN harness can run here")
        return 1 if reason else 0
    if command == "clean":
        orphans = netns.orphans()
        for name in orphans:
            netns.destroy(name)
        print(f"removed {len(orphans)} namespace(s) left by runs that no longer exist")
        return 0
    print("usage: python -m node.harness check|clean", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``/netcheck`` in plain words: the lines both faces show (pure: a NetCheck report in, text out).
"""

from __future__ import annotations

from collections.abc import Iterable

from client.reach.nat import Addr, NetCheck, Reach
from client.reach.paths import PathKind

_REACH = {Reach.YES: "yes", Reach.NO: "no (only peers we write to first reach us)"}


def netcheck_lines(report: NetCheck, server: tuple[Addr, bool] | None, *, port: int,
                   lan_on: bool, clashes: dict[str, int], checking: bool,
                   paths: Iterable[PathKind]) -> list[str]:
    """``server``: (address, online) of the directory, None in LAN mode; ``clashes``: nickname
    -> how many keys announce it; ``checking``: a PROBE answer is awaited; ``paths``: the kind
    of each peer's path in use."""
    if server is None:
        lines = ["server: none (chatting with the peers on this network only)"]
    else:
        (host, sport), online = server
        lines = [f"server: {host}:{sport} ({'online' if online else 'not answering'})"]
    lines.append("public address: " + (f"{report.public[0]}:{report.public[1]}"
                                       if report.public else "unknown (no answer yet)"))
    nat = {True: "yes", False: "no", None: "unknown"}[report.behind_nat]
    lines.append(f"behind NAT: {nat}")
    lines.append(f"local address: {', '.join(report.lan_addrs) or 'none'} (UDP port {port})")
    if not lan_on:
        lines.append("LAN discovery: off")
    else:
        lines.append(f"LAN peers heard: {', '.join(report.lan_peers) or 'none'}")
        lines.append("servers heard on the LAN: "
                     + (", ".join(f"{h}:{p}" for h, p in report.servers) or "none"))
    for nick in sorted(clashes):
        lines.append(f"nickname clash on the LAN: {nick} is announced by {clashes[nick]} "
                     "different keys")
    unknown = "unknown (checking)" if checking else "unknown"
    lines.append(f"unsolicited UDP reaches us: {_REACH.get(report.unsolicited, unknown)}")
    kinds = list(paths)
    lines.append(f"paths: {len(kinds)} peer(s) reached "
                 f"({sum(k == PathKind.LAN for k in kinds)} on the LAN)")
    return lines

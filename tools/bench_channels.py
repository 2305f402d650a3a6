"""Channels and backfill cost (issue 11): what a channel message costs its sender, and how long
backfill of 200 messages takes.

Run from the repository root::

    python tools/bench_channels.py [--peers 200] [--small 20] [--rounds 200] [--backfill 200]

Everything runs in memory through the real code (no sockets, so the kernel's share is left out;
``tools/bench_messenger.py`` measures that): the sender is a ``ChatService`` with a history
file, its ``Messenger`` and an encrypted ``SecureTransport``; ``--peers`` peers each have a
Messenger and a SecureTransport (handshakes done before timing) and acknowledge what they get.

1. **Channel message, 200 vs 20 members.** All ``--peers`` peers are online and in ``#room``;
   all of them are also in ``#big``, ``--small`` of them in ``#small``. The sender says a
   100-byte line in each channel ``--rounds`` times; per message we count the datagrams the
   sender sends and its CPU time (``time.thread_time``) for signing, storing, sending and
   processing the acknowledgements. Expected: datagrams exactly one per member, nothing to
   non-members; CPU = a fixed part per message (signing, the history insert) + a part per
   member (encryption, the ACK), both printed (fitted from the two channels).
2. **Backfill of 200 messages.** A member holds ``--backfill`` lines of ``#ops`` (signed by
   itself); a newcomer joins ``#ops`` and asks it. Timed: from ``join`` to the last line merged
   into the newcomer's history and shown (request, lookup, packing, encryption both ways,
   signature checks, insert). Target: <= 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nacl.signing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client.chat import events as cev  # noqa: E402
from client.chat import wire  # noqa: E402
from client.chat.history import History  # noqa: E402
from client.chat.service import ChatService  # noqa: E402
from client.peer.messenger import KIND_CONTROL, Delivered, Messenger  # noqa: E402
from client.peer.pins import PinStore  # noqa: E402
from client.peer.secure import SecureTransport  # noqa: E402

T0 = 1_700_000_000.0


class Node:
    """One peer in memory: identity, Messenger, SecureTransport, maybe a ChatService."""

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.key = nacl.signing.SigningKey.generate()
        self.pins = PinStore(None)
        self.messenger = Messenger(now=now, deadline=60.0)
        self.transport = SecureTransport(self.key, name, self.pins, now=now)
        self.chat: ChatService | None = None
        self.sent = 0  # datagrams

    def key_of(self, nick: str) -> bytes | None:
        if nick == self.name:
            return bytes(self.key.verify_key)
        pin = self.pins.get(nick)
        return None if pin is None else pin.key


class Mesh:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def add(self, node: Node) -> Node:
        self.nodes[node.name] = node
        return node

    def flush_chat(self, node: Node, now: float) -> None:
        assert node.chat is not None
        for send in node.chat.take_sends():
            node.messenger.send(list(send.peers), KIND_CONTROL, send.payload, now)

    def step(self, node: Node, now: float) -> list[tuple[str, str, bytes]]:
        """Move node's frames out: (from, to, datagram) to deliver."""
        t, m = node.transport, node.messenger
        for _ in t.take_events():
            pass
        for peer, frame in t.take_frames():
            m.receive(peer, frame, now)
        for event in m.take_events():
            if isinstance(event, Delivered) and event.kind == KIND_CONTROL \
                    and node.chat is not None:
                node.chat.on_control(event.peer, event.payload, now)
        if node.chat is not None:
            self.flush_chat(node, now)
        for peer, frame in m.take_outgoing():
            t.wrap(peer, frame, now)
        out = [(node.name, peer, d) for peer, d in t.take_outgoing()]
        node.sent += len(out)
        return out

    def run(self, now: float, first: list[Node], watch: Node | None = None) -> float:
        """Deliver until quiet; returns ``watch``'s thread CPU time spent in its own steps."""
        cpu = 0.0
        queue: list[tuple[str, str, bytes]] = []
        pending = {n.name for n in first}
        while pending or queue:
            for name in sorted(pending):
                node = self.nodes[name]
                c0 = time.thread_time()
                queue += self.step(node, now)
                if node is watch:
                    cpu += time.thread_time() - c0
            pending = set()
            batch, queue = queue, []
            for src, dst, datagram in batch:
                node = self.nodes[dst]
                c0 = time.thread_time()
                node.transport.unwrap(src, datagram, now)
                if node is watch:
                    cpu += time.thread_time() - c0
                pending.add(dst)
        return cpu


def chat_node(mesh: Mesh, name: str, tmp: Path, now: float) -> Node:
    node = mesh.add(Node(name, now))
    node.chat = ChatService(name, node.key, node.key_of, History(tmp / f"{name}.sqlite3", name))
    return node


def bench_fanout(peers: int, small: int, rounds: int, tmp: Path) -> dict[str, float]:
    mesh = Mesh()
    now = T0
    sender = chat_node(mesh, "sender", tmp, now)
    names = [f"peer{i:03d}" for i in range(peers)]
    for n in names:
        mesh.add(Node(n, now))
    svc = sender.chat
    assert svc is not None
    svc.start(["#room", "#big", "#small"], now)
    for i, n in enumerate(names):
        svc.peer_online(n, now)
        chans = ("#room", "#big", "#small") if i < small else ("#room", "#big")
        svc.on_control(n, wire.encode(wire.State(False, "", chans)), now)
    svc.take_events()
    mesh.flush_chat(sender, now)
    mesh.run(now, [sender])  # handshakes and the STATEs: not timed
    out: dict[str, float] = {}
    for channel in ("#big", "#small"):
        cpu: list[float] = []
        grams: list[int] = []
        for _ in range(rounds):
            now += 0.01
            before = sender.sent
            c0 = time.thread_time()
            svc.say(channel, "x" * 100, now)
            svc.take_events()
            mesh.flush_chat(sender, now)
            spent = time.thread_time() - c0
            spent += mesh.run(now, [sender], watch=sender)
            cpu.append(spent)
            grams.append(sender.sent - before)
        members = len(svc.channels.members(channel))
        out[f"{channel} members"] = members
        out[f"{channel} datagrams/msg"] = statistics.median(grams)
        out[f"{channel} sender ms/msg"] = statistics.median(cpu) * 1e3
        out[f"{channel} sender us/member"] = statistics.median(cpu) * 1e6 / members
    svc.history.close()
    return out


def bench_backfill(lines: int, tmp: Path) -> float:
    mesh = Mesh()
    now = T0
    member = chat_node(mesh, "member", tmp, now)
    newcomer = chat_node(mesh, "newcomer", tmp, now)
    assert member.chat is not None and newcomer.chat is not None
    member.chat.start(["#ops"], now)
    for i in range(lines):
        member.chat.say("#ops", f"line {i}: some words of an ordinary chat message", now + i * 0.01)
    member.chat.take_events()
    newcomer.chat.start(["#room"], now)
    now += lines * 0.01 + 1
    for a, b in ((member, newcomer), (newcomer, member)):
        a.chat.peer_online(b.name, now)  # type: ignore[union-attr]
        mesh.flush_chat(a, now)
    mesh.run(now, [member, newcomer])  # handshakes, STATEs: the newcomer knows the member
    newcomer.chat.take_events()
    t0 = time.perf_counter()
    newcomer.chat.join("#ops", now)
    mesh.flush_chat(newcomer, now)
    mesh.run(now, [newcomer])
    shown = [e for e in newcomer.chat.take_events()
             if isinstance(e, cev.ChannelMessage) and e.history]
    elapsed = time.perf_counter() - t0
    if len(shown) != lines:
        raise SystemExit(f"backfill showed {len(shown)} of {lines} lines")
    for node in (member, newcomer):
        node.chat.history.close()  # type: ignore[union-attr]
    return elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peers", type=int, default=200)
    p.add_argument("--small", type=int, default=20)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--backfill", type=int, default=200)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        fan = bench_fanout(args.peers, args.small, args.rounds, Path(tmp))
        print(f"channel message, {args.peers} peers online, medians of {args.rounds} rounds:")
        for channel in ("#big", "#small"):
            print(f"  {channel:7} {fan[f'{channel} members']:4.0f} members: "
                  f"{fan[f'{channel} datagrams/msg']:5.0f} datagrams/msg, sender "
                  f"{fan[f'{channel} sender ms/msg']:7.2f} ms/msg "
                  f"({fan[f'{channel} sender us/member']:.1f} us/member)")
        big, small = fan["#big sender ms/msg"], fan["#small sender ms/msg"]
        per_member = (big - small) / (args.peers - args.small)  # cost = fixed + k * members
        fixed = small - per_member * args.small
        print(f"  = {fixed:.2f} ms per message (sign, store in history) + "
              f"{per_member * 1e3:.1f} us per member (encrypt, send, its ACK); "
              f"datagrams ratio {fan['#small datagrams/msg'] / fan['#big datagrams/msg']:.2f} "
              f"= members ratio {args.small / args.peers:.2f}")
        times = [bench_backfill(args.backfill, Path(tmp) / f"bf{i}") for i in range(3)
                 if (Path(tmp) / f"bf{i}").mkdir() is None]
        print(f"backfill of {args.backfill} messages: median {statistics.median(times) * 1e3:.0f} "
              f"ms (target <= 1000 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""models.directory without sockets: times are 0, 1, 2..., addresses are made up."""

from __future__ import annotations

import itertools

import pytest

from models import directory_wire as w
from models.directory import Directory, KeyedRateLimiter, Refused, TokenBucket


def make(**kw) -> Directory:
    counter = itertools.count()
    kw.setdefault("make_keyword", lambda: f"kw{next(counter):04d}")
    return Directory(ping_interval=10.0, **kw)


def ping(d: Directory, reg, addr, now, digest=None, nick=None):
    data = w.encode_datagram(w.Ping(reg.keyword, nick or reg.nickname, digest))
    return d.on_datagram(data, addr, now)


def decoded(out):
    return [(addr, w.decode_datagram(data)) for addr, data in out]


def join(d: Directory, nick: str, addr, now: float = 0.0):
    reg, reclaimed = d.register(nick, None, now)
    assert not reclaimed
    d.reference(reg, now)
    ping(d, reg, addr, now)
    return reg


A, B, C = ("10.0.0.1", 1001), ("10.0.0.2", 1002), ("10.0.0.3", 1003)


def test_register_is_unique_case_and_width_insensitive() -> None:
    d = make()
    reg, _ = d.register("Ｅｖａｎ", None, 0)
    assert reg.nickname == "Evan" and reg.key == "evan"
    for other in ("evan", "EVAN", "Evan"):
        with pytest.raises(Refused) as info:
            d.register(other, None, 0)
        assert info.value.code == "NICK_TAKEN"
    with pytest.raises(Refused) as info:
        d.register("bad nick", None, 0)
    assert info.value.code == "BAD_NICK"


def test_first_ping_announces_and_writes() -> None:
    d = make()
    a = join(d, "a", A)
    assert d.take_store_ops() == [("addr", "a", a.keyword, "10.0.0.1", 1001)]
    assert d.take_outgoing() == []  # nobody else to tell
    b = join(d, "b", B)
    out = decoded(d.take_outgoing())
    assert out == [(A, w.RefAdd(a.keyword, (w.Entry("b", *B),)))]
    assert d.reference(None, 1) == (w.Entry("a", *A), w.Entry("b", *B))
    assert d.reference(b, 1) == (w.Entry("a", *A),)


def test_unconfirmed_registration_is_not_listed_and_expires_after_one_interval() -> None:
    d = make()
    reg, _ = d.register("squat", None, 0)
    assert d.reference(None, 0) == ()
    assert d.expire(9.9) == []
    assert d.expire(10.0) == [(reg, "no PING")]
    assert d.take_outgoing() == []  # never announced: nothing to retract
    assert ("del", "squat", reg.keyword) in d.take_store_ops()
    d.register("squat", None, 11)  # free again


def test_liveness_timeout_is_one_and_a_half_intervals() -> None:
    d = make()
    a = join(d, "a", A, 0)
    join(d, "b", B, 0)
    d.take_outgoing()
    ping(d, a, A, 10)
    gone = d.expire(15.0)
    assert [(r.nickname, why) for r, why in gone] == [("b", "timeout")]
    assert decoded(d.take_outgoing()) == [(A, w.RefDel(a.keyword, ("b",)))]
    assert d.expire(24.9) == []
    assert [r.nickname for r, _ in d.expire(25.0)] == ["a"]


def test_quit_removes_at_once_and_needs_matching_keyword_and_nick() -> None:
    d = make()
    a = join(d, "a", A)
    b = join(d, "b", B)
    d.take_outgoing()
    d.on_datagram(w.encode_datagram(w.Quit(b.keyword, "a")), B, 1)  # wrong nick
    d.on_datagram(w.encode_datagram(w.Quit("nope", "b")), B, 1)  # unknown keyword
    assert len(d) == 2 and d.stats.nick_mismatch == 1 and d.stats.unknown_keyword == 1
    d.on_datagram(w.encode_datagram(w.Quit(b.keyword, "B")), B, 1)  # case-insensitive match
    assert len(d) == 1
    assert decoded(d.take_outgoing()) == [(A, w.RefDel(a.keyword, ("b",)))]


def test_pong_digest_is_roster_minus_self() -> None:
    d = make()
    a = join(d, "a", A)
    b = join(d, "b", B)
    reply = ping(d, a, A, 1, digest=w.EMPTY_DIGEST)
    assert w.decode_datagram(reply) == w.Pong(a.keyword, w.roster_digest([w.Entry("b", *B)]))
    reply = ping(d, b, B, 1, digest=w.EMPTY_DIGEST)
    assert w.decode_datagram(reply) == w.Pong(b.keyword, w.roster_digest([w.Entry("a", *A)]))
    assert len(reply) < len(w.encode_datagram(w.Ping(b.keyword, "b", w.EMPTY_DIGEST)))
    assert ping(d, a, A, 1) is None  # design PING: no reply


def test_address_change_is_announced_as_ref_add() -> None:
    d = make()
    a = join(d, "a", A)
    b = join(d, "b", B)
    d.take_outgoing()
    d.take_store_ops()
    ping(d, b, C, 2)
    assert decoded(d.take_outgoing()) == [(A, w.RefAdd(a.keyword, (w.Entry("b", *C),)))]
    assert d.take_store_ops() == [("addr", "b", b.keyword, *C)]
    reply = ping(d, a, A, 2, digest=w.EMPTY_DIGEST)
    assert w.decode_datagram(reply).digest == w.roster_digest([w.Entry("b", *C)])


def test_reclaim_with_keyword() -> None:
    d = make()
    a = join(d, "a", A)
    d.take_outgoing()
    with pytest.raises(Refused):
        d.register("A", "wrongkeyword", 5)
    reg, reclaimed = d.register("A", a.keyword, 5)
    assert reg is a and reclaimed
    assert d.take_outgoing() == []  # nothing announced
    assert d.expire(15.0 + 0.5 - 1) == []  # deadline refreshed at 5: 5 + 15
    assert d.expire(20.0) != []


def test_unknown_keyword_reply_is_small_and_rate_limited() -> None:
    d = make(unknown_rate=2.0, unknown_burst=2.0)
    data = w.encode_datagram(w.Ping("ghostkeyword", "ghost", w.EMPTY_DIGEST))
    assert w.decode_datagram(d.on_datagram(data, A, 0)) == w.Unknown("ghostkeyword")
    assert d.on_datagram(data, A, 0) is not None
    assert d.on_datagram(data, A, 0) is None  # bucket empty
    assert d.on_datagram(data, A, 0.5) is not None  # refilled one
    # a PING too small to answer without amplification gets nothing
    tiny = w.encode_datagram(w.Ping("k", "x"))
    assert d.on_datagram(tiny, A, 10) is None
    for reply_to in (data, w.encode_datagram(w.Ping("k", "xy"))):
        reply = d.on_datagram(reply_to, A, 20)
        assert reply is None or len(reply) <= len(reply_to)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"kw0000 99 PING a", w.encode_datagram(w.RefAdd("kw0000", ())),
     w.encode_datagram(w.Pong("kw0000", w.EMPTY_DIGEST)), b"\xc1\x01\x10frame"],
)
def test_bad_datagrams_are_dropped_and_counted(data: bytes) -> None:
    d = make()
    join(d, "a", A)
    assert d.on_datagram(data, B, 1) is None
    assert d.stats.bad_datagrams == 1 and d.stats.dropped >= 1
    assert d.take_outgoing() == []


def test_coalescing_many_joins_into_few_datagrams() -> None:
    d = make()
    join(d, "listener", A)
    d.take_outgoing()
    regs = [d.register(f"user{i}", None, 1)[0] for i in range(50)]
    for i, reg in enumerate(regs):
        ping(d, reg, ("10.1.0.1", 2000 + i), 1)
    out = d.take_outgoing()
    to_listener = [w.decode_datagram(data) for addr, data in out if addr == A]
    assert 1 <= len(to_listener) <= 3
    assert sum(len(m.entries) for m in to_listener) == 50
    assert all(len(data) <= 1200 for _, data in out)
    # every joiner hears of the other 49 and of the listener, never of itself
    for i, reg in enumerate(regs):
        mine = [w.decode_datagram(data) for addr, data in out if addr == ("10.1.0.1", 2000 + i)]
        names = [e.nickname for m in mine for e in m.entries]
        assert reg.nickname not in names
        assert set(names) >= {f"user{j}" for j in range(50) if j != i}


def test_net_effect_of_join_then_leave_in_one_batch() -> None:
    d = make()
    a = join(d, "a", A)
    d.take_outgoing()
    b = join(d, "b", B)
    d.on_datagram(w.encode_datagram(w.Quit(b.keyword, "b")), B, 1)
    assert decoded(d.take_outgoing()) == [(A, w.RefDel(a.keyword, ("b",)))]


def test_catch_up_sends_changes_since_reference() -> None:
    d = make()
    a = join(d, "a", A)
    late, _ = d.register("late", None, 0)
    assert d.reference(late, 0) == (w.Entry("a", *A),)
    b = join(d, "b", B)  # joins after late's REFERENCE?
    d.on_datagram(w.encode_datagram(w.Quit(a.keyword, "a")), A, 1)  # a leaves
    d.take_outgoing()
    ping(d, late, C, 2)
    out = decoded(d.take_outgoing())
    to_late = [m for addr, m in out if addr == C]
    assert w.RefDel(late.keyword, ("a",)) in to_late
    assert w.RefAdd(late.keyword, (w.Entry("b", *B),)) in to_late
    assert (B, w.RefAdd(b.keyword, (w.Entry("late", *C),))) in out


def test_catch_up_falls_back_to_full_roster_when_log_is_short() -> None:
    d = make(log_size=2)
    late, _ = d.register("late", None, 0)
    d.reference(late, 0)
    for i in range(5):
        join(d, f"u{i}", ("10.2.0.1", 3000 + i))
    d.take_outgoing()
    ping(d, late, C, 1)
    to_late = [m for addr, m in decoded(d.take_outgoing()) if addr == C]
    names = {e.nickname for m in to_late for e in m.entries}
    assert names == {f"u{i}" for i in range(5)}


def test_load_gives_fresh_deadlines_and_skips_bad_rows() -> None:
    d = make()
    rows = [("Evan", "kwA", "10.0.0.1", 1001), ("evan", "kwB", "10.0.0.2", 1002),
            ("bad nick", "kwC", None, None), ("pending", "kwD", None, None),
            ("odd host", "kwE", "not an ip", 5), ("badkw", "a b", None, None),
            ("weird", "kwF", "1.2.3.4 5", 6)]
    assert d.load(rows, now=100) == 3  # "weird": an unusable address waits for a PING
    assert d.reference(None, 100) == (w.Entry("Evan", "10.0.0.1", 1001),)
    assert ("del", "evan", "kwB") in d.take_store_ops()
    assert d.take_outgoing() == []  # restart is silent
    reg = d.by_key["evan"]
    assert ping(d, reg, ("10.0.0.1", 1001), 110, digest=w.EMPTY_DIGEST) is not None
    assert d.take_outgoing() == []  # same address: no REF_ADD noise
    assert [r.nickname for r, _ in d.expire(110)] == ["pending", "weird"]  # 100 + 1 x interval


def test_cancel_frees_the_nickname() -> None:
    d = make()
    reg, _ = d.register("x", None, 0)
    d.cancel(reg)
    d.register("x", None, 0)


def test_next_deadline() -> None:
    d = make()
    assert d.next_deadline() is None
    d.register("x", None, 3)
    assert d.next_deadline() == 13


def test_token_bucket_and_keyed_limiter() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, now=0)
    assert bucket.take(0) and bucket.take(0) and not bucket.take(0)
    assert bucket.take(1.0) and not bucket.take(1.0)
    limiter = KeyedRateLimiter(rate=1.0, burst=1.0, max_keys=2)
    assert limiter.allow("a", 0) and not limiter.allow("a", 0)
    assert limiter.allow("b", 0) and limiter.allow("c", 0)
    assert limiter.allow("a", 0)  # forgotten (bounded memory): a fresh bucket
    assert KeyedRateLimiter(rate=0, burst=1).allow("x", 0)  # 0 = disabled


def test_reference_line_matches_the_codec_and_is_cached() -> None:
    d = make()
    assert d.reference_line(None, 0) == b"REFERENCE 0\n"
    a = join(d, "a", A)
    b = join(d, "Вася", B)
    line = d.reference_line(None, 1)
    assert w.decode_reply(line) == w.Reference(d.reference(None, 1))
    assert line == w.encode_line(w.Reference((w.Entry("a", *A), w.Entry("Вася", *B))))
    assert d.reference_line(None, 1) is line  # nothing changed: reused
    # a reclaiming client is not listed to itself
    assert w.decode_reply(d.reference_line(b, 1)) == w.Reference((w.Entry("a", *A),))
    assert w.decode_reply(d.reference_line(a, 1)) == w.Reference((w.Entry("Вася", *B),))
    ping(d, b, C, 2)  # moved: the cache must not serve the old address
    assert w.decode_reply(d.reference_line(None, 2)) == w.Reference(
        (w.Entry("a", *A), w.Entry("Вася", *C)))


def test_reference_line_after_load() -> None:
    d = make()
    d.load([("x", "kwX", "10.0.0.9", 9)], now=0)
    assert d.reference_line(None, 0) == b"REFERENCE 1 x 10.0.0.9 9\n"


# ------------------------------------------------------------------ a property: rosters converge

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NICKS = ["ann", "Bob", "вася", "Dee", "eve"]
ops_st = st.lists(
    st.tuples(st.sampled_from(["register", "ping", "move", "quit", "reclaim", "wait", "flush"]),
              st.integers(0, len(NICKS) - 1)),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops_st, st.integers(2, 64), st.booleans())
# found by hypothesis: a client moving right after its first PING still gets its catch-up
@example(ops=[("register", 0), ("register", 1), ("ping", 0), ("wait", 0), ("ping", 1),
              ("move", 1)], log_size=12, hold=False)
def test_every_client_ends_with_the_servers_roster(ops, log_size, hold) -> None:
    """Whatever happens, a client that applies what it is sent (REFERENCE, then REF_ADD /
    REF_DEL) holds exactly the roster the server lists for it, and PONG digests agree.
    ``hold``: pushes made as the server makes them, removals spread over pushes while
    additions go (the last delivery sends everything)."""
    d = make(log_size=log_size, del_spread=2 if hold else 0)
    now = 0.0
    sims: dict[str, dict] = {}  # nickname -> {"reg", "roster", "addr"}
    port = iter(range(1000, 100000))

    def deliver(final: bool = False) -> None:
        for addr, data in d.take_outgoing() if final else d.iter_outgoing(now):
            msg = w.decode_datagram(data)
            for sim in sims.values():
                if sim["addr"] == addr and sim["reg"].keyword == msg.keyword:
                    if isinstance(msg, w.RefAdd):
                        for e in msg.entries:
                            assert e.nickname != sim["reg"].nickname  # never told of itself
                            sim["roster"][e.nickname] = (e.host, e.port)
                    elif isinstance(msg, w.RefDel):
                        for n in msg.nicknames:
                            sim["roster"].pop(n, None)

    def fetch(sim: dict) -> None:
        ref = w.decode_reply(d.reference_line(sim["reg"], now))
        sim["roster"] = {e.nickname: (e.host, e.port) for e in ref.entries}

    for op, i in ops:
        nick = NICKS[i]
        sim = sims.get(nick)
        current = sim is not None and d.by_key.get(sim["reg"].key) is sim["reg"]
        if op == "register" and not current:
            reg, _ = d.register(nick, None, now)
            sims[nick] = sim = {"reg": reg, "addr": ("10.9.0.1", next(port)), "roster": {}}
            fetch(sim)
        elif op in ("ping", "move") and current:
            if op == "move":
                sim["addr"] = ("10.9.0.2", next(port))
            d.on_datagram(w.encode_datagram(w.Ping(sim["reg"].keyword, nick)), sim["addr"], now)
        elif op == "quit" and current:
            d.on_datagram(w.encode_datagram(w.Quit(sim["reg"].keyword, nick)), sim["addr"], now)
        elif op == "reclaim" and current:
            reg, reclaimed = d.register(nick.upper(), sim["reg"].keyword, now)
            assert reclaimed and reg is sim["reg"]
            fetch(sim)
        elif op == "wait":
            now += 6.0  # unconfirmed ones (10 s) and silent ones (15 s) expire over time
            d.expire(now)
        if op == "flush" or op == "wait":
            deliver()
    deliver(final=True)
    log_covers_all = log_size >= 2 * len(ops)
    for sim in sims.values():
        reg = sim["reg"]
        if d.by_key.get(reg.key) is not reg or not reg.announced:
            continue
        want = {e.nickname: (e.host, e.port) for e in d.reference(None, now) if e.nickname
                != reg.nickname}
        digest = w.roster_digest(w.Entry(n, *a) for n, a in sim["roster"].items())
        if not log_covers_all and digest != d.digest_for(reg):
            # the catch-up fell back to the whole roster (REF_ADDs only): the PONG digest
            # disagrees, and the client's repair -- a re-fetch -- puts it right
            fetch(sim)
            digest = w.roster_digest(w.Entry(n, *a) for n, a in sim["roster"].items())
        assert sim["roster"] == want
        assert d.digest_for(reg) == digest


@pytest.mark.parametrize(
    "tail",
    [b"", b" 0123456789abcdef", b" 0123456789ABCDEF", b" 0123456789abcde", b" 0123456789abcdef0",
     b"  0123456789abcdef", b"x", b" ", b"\x00"],
)
def test_ping_fast_path_agrees_with_the_decoder(tail: bytes) -> None:
    """The fast path for exact PINGs must answer exactly as the full decoder would."""
    fast, slow = make(), make()
    regs = [x.register("Вася", None, 0)[0] for x in (fast, slow)]
    body = "PING Вася".encode() + tail
    data = b"%s %d %s" % (regs[0].keyword.encode(), len(body), body)
    got = fast.on_datagram(data, A, 1)
    # the slow twin: same datagram, forced through the decoder
    slow._by_kw_bytes.clear()
    expect = slow.on_datagram(data, A, 1)
    assert got == expect
    assert fast.stats == slow.stats
    assert regs[0].announced == regs[1].announced == (tail in (b"", b" 0123456789abcdef"))
    # and a wrong len never passes
    bad = b"%s %d %s" % (regs[0].keyword.encode(), len(body) + 1, body)
    assert fast.on_datagram(bad, A, 2) is None


def test_pong_bytes_are_the_codec_s() -> None:
    d = make()
    a = join(d, "a", A)
    for i in range(20):
        join(d, f"x{i}", ("10.3.0.1", 4000 + i))
    reply = ping(d, a, A, 1, digest=w.EMPTY_DIGEST)
    assert reply == w.encode_datagram(w.Pong(a.keyword, d.digest_for(a)))


def quit_(d: Directory, reg, addr, now: float) -> None:
    d.on_datagram(w.encode_datagram(w.Quit(reg.keyword, reg.nickname)), addr, now)


def test_push_sends_every_ref_add_before_any_ref_del() -> None:
    d = make()
    regs = [join(d, f"u{i}", ("10.3.0.1", 4000 + i)) for i in range(4)]
    d.take_outgoing()
    quit_(d, regs[0], ("10.3.0.1", 4000), 1)
    join(d, "new", C, 1)
    kinds = [type(m) for _, m in decoded(d.take_outgoing())]
    # the three who stay get one of each; "new" gets only the REF_DEL (its own row is its only
    # REF_ADD row); all REF_ADDs first
    assert kinds.count(w.RefAdd) == 3 and kinds.count(w.RefDel) == 4
    assert kinds == sorted(kinds, key=lambda k: k is w.RefDel)


def test_removals_are_spread_over_pushes_while_additions_go() -> None:
    d = make(del_spread=3)
    stay = [join(d, f"u{i}", ("10.4.0.1", 5000 + i)) for i in range(6)]
    gone = join(d, "gone", B)
    d.take_outgoing()
    quit_(d, gone, B, 1.0)
    told: list[tuple] = []
    for k in range(3):  # a join every push: the REF_DEL reaches a third of them each time
        new = join(d, f"n{k}", ("10.5.0.1", 6000 + k), 1.0 + k / 100)
        out = decoded(d.iter_outgoing(1.0 + k / 100))
        adds = [a for a, m in out
                if isinstance(m, w.RefAdd) and m.entries[0].nickname == new.nickname]
        dels = [(a, m) for a, m in out if isinstance(m, w.RefDel)]
        assert len(adds) == 6 + k  # everyone listed hears of the new one at once
        # the batch is for the 7 listed when it started (n0 too): 3, 3, then 1
        assert len(dels) == [3, 3, 1][k] and all(m.nicknames == ("gone",) for _, m in dels)
        assert out[len(out) - len(dels):] == dels  # after the REF_ADDs
        told += [a for a, _ in dels]
    assert sorted(told) == sorted([r.addr for r in stay] + [("10.5.0.1", 6000)])
    assert d.batch_del_times == [1.0]  # the batch is complete
    d.take_store_ops()
    assert not d.has_work()


def test_removals_alone_go_at_once() -> None:
    d = make(del_spread=8)
    a = join(d, "a", A)
    b = join(d, "b", B)
    d.take_outgoing()
    quit_(d, b, B, 1.0)
    assert decoded(d.iter_outgoing(1.0)) == [(A, w.RefDel(a.keyword, ("b",)))]
    assert d.batch_del_times == [1.0]


def test_removal_overtaken_by_a_rejoin_is_not_sent_to_the_rest() -> None:
    d = make(del_spread=2)
    others = [join(d, f"u{i}", ("10.4.0.1", 5000 + i)) for i in range(4)]
    b = join(d, "b", B)
    d.take_outgoing()
    quit_(d, b, B, 1.0)
    join(d, "c", C, 1.0)
    first = decoded(d.iter_outgoing(1.0))  # REF_ADD c to all; REF_DEL b to 3 of the 5
    told = {a for a, m in first if isinstance(m, w.RefDel)}
    assert len(told) == 3
    join(d, "b", ("10.0.0.9", 1009), 1.02)  # b is back before its removal reached everyone
    second = decoded(d.iter_outgoing(1.02))
    assert not any(isinstance(m, w.RefDel) for _, m in second)
    for r in others:
        assert (r.addr, w.RefAdd(r.keyword, (w.Entry("b", "10.0.0.9", 1009),))) in second
    d.take_store_ops()
    assert not d.has_work()


def test_iter_outgoing_without_now_sends_everything() -> None:
    d = make(del_spread=4)
    others = [join(d, f"u{i}", ("10.4.0.1", 5000 + i)) for i in range(4)]
    b = join(d, "b", B)
    d.take_outgoing()
    quit_(d, b, B, 1.0)
    join(d, "c", C, 1.0)
    d.iter_outgoing(1.0)  # a batch of removals under way
    out = decoded(d.take_outgoing())  # then everything at once, the rest of it too
    told = {a for a, m in out if isinstance(m, w.RefDel)}
    assert told == {r.addr for r in others} | {C}
    d.take_store_ops()
    assert not d.has_work()

"""nats-server ``server/sublist_test.go``, ported: subject validity, matching, wildcards that are
only literals, queue groups.

The "original" is a small pure-Python model of the documented NATS subject semantics (below,
``Sublist``): tokens are split on ``.``; ``*`` matches exactly one token and ``>`` one or more
trailing tokens, but only when they are a whole token (``foo*`` and ``*bar`` are literals); empty
tokens and whitespace are invalid; ``>`` must be the last token. A queue group is a queue name:
each message goes to one member of every group among *all* matching subscriptions, whatever
pattern each member used.

Both sides sit behind one adapter (``insert``/``remove``/``count``/``deliver``): chanpool's side
subscribes pull subscriptions on a PubSub and publishes, then looks at which subscriptions got
the message. NATS's ``Match`` lists every queue member; a publish reaches one member per group,
so queue results are observed over as many publishes as a group has members (both sides pick
round robin), and every publish must reach exactly one member of each group.
"""

from __future__ import annotations

import itertools
import queue
from collections import defaultdict
from dataclasses import dataclass, field

import chanpool
import pytest

# ---------------------------------------------------------------------------- reference model

_WS = " \t\n\r\f"


def model_valid_subject(subject: str) -> bool:
    """IsValidSubject: no empty token, no whitespace, '>' only as the last token."""
    if not subject:
        return False
    tokens = subject.split(".")
    for i, tok in enumerate(tokens):
        if not tok or any(c in _WS for c in tok):
            return False
        if tok == ">" and i != len(tokens) - 1:
            return False
    return True


def model_valid_literal(subject: str) -> bool:
    """IsValidLiteralSubject: a valid subject with no whole-token wildcard."""
    return model_valid_subject(subject) and all(t not in ("*", ">") for t in subject.split("."))


def model_match_literal(literal: str, pattern: str) -> bool:
    """matchLiteral: does the literal subject match the pattern?"""
    lt, pt = literal.split("."), pattern.split(".")
    for i, p in enumerate(pt):
        if p == ">":
            return len(lt) > i
        if i >= len(lt):
            return False
        if p != "*" and p != lt[i]:
            return False
    return len(lt) == len(pt)


@dataclass(eq=False)
class ModelSub:
    subject: str
    queue: str | None = None


@dataclass
class Sublist:
    """The NATS sublist's observable behaviour, with round-robin queue picks."""

    subs: list[ModelSub] = field(default_factory=list)
    rr: dict[str, itertools.count] = field(default_factory=dict)

    def insert(self, sub: ModelSub) -> None:
        if not model_valid_subject(sub.subject):
            raise ValueError(f"invalid subject {sub.subject!r}")
        self.subs.append(sub)

    def remove(self, sub: ModelSub) -> bool:
        for i, s in enumerate(self.subs):
            if s is sub:
                del self.subs[i]
                return True
        return False

    def match(self, subject: str) -> tuple[list[ModelSub], dict[str, list[ModelSub]]]:
        if not model_valid_literal(subject):
            return [], {}
        psubs: list[ModelSub] = []
        qsubs: dict[str, list[ModelSub]] = defaultdict(list)
        for s in self.subs:
            if model_match_literal(subject, s.subject):
                (psubs if s.queue is None else qsubs[s.queue]).append(s)
        return psubs, dict(qsubs)

    def deliver(self, subject: str) -> list[ModelSub]:
        psubs, qsubs = self.match(subject)
        out = list(psubs)
        for name, members in qsubs.items():
            n = next(self.rr.setdefault(name, itertools.count()))
            out.append(members[n % len(members)])
        return out


# ---------------------------------------------------------------------------------- adapters


class Original:
    name = "original"

    def __init__(self) -> None:
        self.sl = Sublist()

    def new_sub(self, subject: str, queue: str | None = None) -> ModelSub:
        return ModelSub(subject, queue)

    def insert(self, subject: str, queue: str | None = None) -> ModelSub:
        sub = self.new_sub(subject, queue)
        self.sl.insert(sub)
        return sub

    def remove(self, sub: ModelSub) -> None:
        self.sl.remove(sub)

    def count(self) -> int:
        return len(self.sl.subs)

    def deliver(self, subject: str) -> list[ModelSub]:
        return self.sl.deliver(subject)

    def valid_subject(self, subject: str) -> bool:
        return model_valid_subject(subject)

    def valid_literal(self, subject: str) -> bool:
        return model_valid_literal(subject)

    def close(self) -> None:
        pass


class Chanpool:
    name = "chanpool"

    def __init__(self) -> None:
        self.bus = chanpool.PubSub()
        self.scratch = chanpool.PubSub()
        self.live: list[chanpool.Subscription] = []
        self.token = itertools.count()

    def new_sub(self, subject: str, queue: str | None = None) -> chanpool.Subscription:
        """A subscription that was never inserted here (it lives on another bus)."""
        return self.scratch.subscribe(subject, group=queue)

    def insert(self, subject: str, queue: str | None = None) -> chanpool.Subscription:
        sub = self.bus.subscribe(subject, group=queue, capacity=100_000)
        self.live.append(sub)
        return sub

    def remove(self, sub: chanpool.Subscription) -> None:
        sub.unsubscribe()
        self.live = [s for s in self.live if s is not sub]

    def count(self) -> int:
        return self.bus.stats()["subscriptions"]

    def deliver(self, subject: str) -> list[chanpool.Subscription]:
        token = next(self.token)
        self.bus.publish(subject, token)
        got = []
        for s in self.live:
            try:
                m = s.get(timeout=0)
            except queue.Empty:
                continue
            assert m.data == token and m.topic == subject
            got.append(s)
        return got

    def valid_subject(self, subject: str) -> bool:
        try:
            self.scratch.subscribe(subject).unsubscribe()
        except ValueError:
            return False
        return True

    def valid_literal(self, subject: str) -> bool:
        try:
            self.scratch.publish(subject)
        except ValueError:
            return False
        return True

    def close(self) -> None:
        self.bus.close(drain=False)
        self.scratch.close(drain=False)


@pytest.fixture(params=["original", "chanpool"])
def impl(request):
    s = Original() if request.param == "original" else Chanpool()
    yield s
    s.close()


@dataclass
class Result:
    psubs: list
    qsubs: dict


def match(s, subject: str, rounds: int = 1) -> Result:
    """Match, observed through `rounds` publishes: plain subscriptions must get every one, and
    every publish must reach exactly one member of each queue group."""
    plain_hits: dict[int, int] = defaultdict(int)
    plain: dict[int, object] = {}
    qsubs: dict[str, dict[int, object]] = defaultdict(dict)
    for _ in range(rounds):
        per_group: dict[str, int] = defaultdict(int)
        for sub in s.deliver(subject):
            if sub.queue is None if isinstance(sub, ModelSub) else sub.group is None:
                plain_hits[id(sub)] += 1
                plain[id(sub)] = sub
            else:
                name = sub.queue if isinstance(sub, ModelSub) else sub.group
                per_group[name] += 1
                qsubs[name][id(sub)] = sub
        assert all(n == 1 for n in per_group.values()), per_group
        assert set(per_group) == set(qsubs), (per_group, qsubs)
    assert all(n == rounds for n in plain_hits.values()), plain_hits
    return Result(list(plain.values()), {k: list(v.values()) for k, v in qsubs.items()})


def has(subs: list, sub) -> bool:
    return any(x is sub for x in subs)


# ------------------------------------------------------------------------------------- tests


def test_TestSublistInsertCount(impl):
    impl.insert("foo")
    impl.insert("bar")
    impl.insert("foo.bar")
    assert impl.count() == 3


def test_TestSublistSimple(impl):
    sub = impl.insert("foo")
    r = match(impl, "foo")
    assert len(r.psubs) == 1 and has(r.psubs, sub)


def test_TestSublistSimpleMultiTokens(impl):
    sub = impl.insert("foo.bar.baz")
    r = match(impl, "foo.bar.baz")
    assert len(r.psubs) == 1 and has(r.psubs, sub)


def test_TestSublistPartialWildcard(impl):
    lsub = impl.insert("a.b.c")
    psub = impl.insert("a.*.c")
    r = match(impl, "a.b.c")
    assert len(r.psubs) == 2 and has(r.psubs, lsub) and has(r.psubs, psub)


def test_TestSublistPartialWildcardAtEnd(impl):
    lsub = impl.insert("a.b.c")
    psub = impl.insert("a.b.*")
    r = match(impl, "a.b.c")
    assert len(r.psubs) == 2 and has(r.psubs, lsub) and has(r.psubs, psub)


def test_TestSublistFullWildcard(impl):
    lsub = impl.insert("a.b.c")
    fsub = impl.insert("a.>")
    r = match(impl, "a.b.c")
    assert len(r.psubs) == 2 and has(r.psubs, lsub) and has(r.psubs, fsub)
    # '>' needs at least one token after the prefix.
    assert match(impl, "a").psubs == []


def test_TestSublistRemove(impl):
    sub = impl.insert("a.b.c.d")
    assert impl.count() == 1
    assert len(match(impl, "a.b.c.d").psubs) == 1
    impl.remove(impl.new_sub("a.b.c"))  # never inserted: nothing changes
    assert impl.count() == 1
    impl.remove(sub)
    assert impl.count() == 0
    assert match(impl, "a.b.c.d").psubs == []


def test_TestSublistRemoveWildcard(impl):
    sub = impl.insert("a.b.c.d")
    psub = impl.insert("a.b.*.d")
    fsub = impl.insert("a.b.>")
    assert impl.count() == 3
    assert len(match(impl, "a.b.c.d").psubs) == 3
    impl.remove(sub)
    assert impl.count() == 2
    impl.remove(fsub)
    assert impl.count() == 1
    impl.remove(psub)
    assert impl.count() == 0
    assert match(impl, "a.b.c.d").psubs == []


def test_TestSublistRemoveWithLargeSubs(impl):
    plist_min = 256
    subs = [impl.insert("foo") for _ in range(plist_min * 2)]
    r = match(impl, "foo")
    assert len(r.psubs) == plist_min * 2
    impl.remove(subs[plist_min])  # one in the middle
    impl.remove(subs[0])  # the first
    impl.remove(subs[-1])  # the last
    r = match(impl, "foo")
    assert len(r.psubs) == plist_min * 2 - 3
    for gone in (subs[plist_min], subs[0], subs[-1]):
        assert not has(r.psubs, gone)


def test_TestSublistInvalidSubjectsInsert(impl):
    # Insert (subscribe) takes wildcards, but no empty tokens and no '>' before the end.
    for bad in (".foo", "foo.", "foo..bar", "foo.bar..baz", "foo.>.bar"):
        with pytest.raises(ValueError):
            impl.insert(bad)
    assert impl.count() == 0


def test_TestSublistNoCacheRemove(impl):
    # Insert and remove with no match in between (nothing cached), then match.
    sub = impl.insert("a.b.c.d")
    psub = impl.insert("a.b.*.d")
    fsub = impl.insert("a.b.>")
    assert impl.count() == 3
    impl.remove(sub)
    impl.remove(fsub)
    assert impl.count() == 1
    r = match(impl, "a.b.c.d")
    assert len(r.psubs) == 1 and has(r.psubs, psub)
    impl.remove(psub)
    assert impl.count() == 0
    assert match(impl, "a.b.c.d").psubs == []


def test_TestSublistCache(impl):
    subject = "a.b.c.d"
    sub = impl.insert(subject)
    assert len(match(impl, subject).psubs) == 1
    psub = impl.insert("a.b.*.d")
    fsub = impl.insert("a.b.>")
    assert impl.count() == 3
    assert len(match(impl, subject).psubs) == 3
    impl.remove(sub)
    assert impl.count() == 2
    impl.remove(fsub)
    assert impl.count() == 1
    impl.remove(psub)
    assert impl.count() == 0
    assert match(impl, subject).psubs == []
    # Twice the cache's size in distinct subjects: results stay right past any eviction.
    for i in range(2 * 4096):
        assert impl.deliver(f"foo-{i}") == []
    # Adding to a wildcard updates what is cached for the subjects it covers.
    impl.insert("foo.*")
    impl.insert("foo.bar")
    assert len(match(impl, "foo.baz").psubs) == 1
    assert len(match(impl, "foo.bar").psubs) == 2
    impl.insert("foo.>")
    assert len(match(impl, "foo.bar").psubs) == 3


def test_TestSublistBasicQueueResults(impl):
    subject = "foo"
    sub1 = impl.insert(subject, "bar")
    r = match(impl, subject, rounds=2)
    assert r.psubs == [] and len(r.qsubs) == 1 and r.qsubs["bar"] == [sub1]

    sub2 = impl.insert(subject, "baz")
    r = match(impl, subject, rounds=2)
    assert r.psubs == [] and len(r.qsubs) == 2
    assert r.qsubs["bar"] == [sub1] and r.qsubs["baz"] == [sub2]

    sub = impl.insert(subject)
    r = match(impl, subject, rounds=2)
    assert r.psubs == [sub] and len(r.qsubs) == 2

    sub3 = impl.insert(subject, "bar")
    sub4 = impl.insert(subject, "baz")
    r = match(impl, subject, rounds=4)
    assert r.psubs == [sub] and len(r.qsubs) == 2
    assert {id(x) for x in r.qsubs["bar"]} == {id(sub1), id(sub3)}
    assert {id(x) for x in r.qsubs["baz"]} == {id(sub2), id(sub4)}

    impl.remove(sub)
    r = match(impl, subject, rounds=4)
    assert r.psubs == [] and len(r.qsubs) == 2
    assert len(r.qsubs["bar"]) == 2 and len(r.qsubs["baz"]) == 2

    impl.remove(sub1)
    r = match(impl, subject, rounds=4)
    assert r.psubs == [] and len(r.qsubs) == 2
    assert r.qsubs["bar"] == [sub3] and len(r.qsubs["baz"]) == 2

    impl.remove(sub3)  # the last of "bar"
    r = match(impl, subject, rounds=4)
    assert r.psubs == [] and list(r.qsubs) == ["baz"]
    assert {id(x) for x in r.qsubs["baz"]} == {id(sub2), id(sub4)}

    impl.remove(sub2)
    impl.remove(sub4)
    r = match(impl, subject, rounds=2)
    assert r.psubs == [] and r.qsubs == {}


def test_TestSublistValidLiteralSubjects(impl):
    for bad in (".foo", "foo.", "foo..bar", "foo.bar.*", "foo.bar.>", "*", ">"):
        assert not impl.valid_literal(bad), bad
    assert impl.valid_literal("foo")
    # Wildcard characters that are not whole tokens are not wildcards.
    for ok in (
        "foo*",
        "foo**",
        "foo.**",
        "foo*bar",
        "foo.*bar",
        "*bar",
        "foo>",
        "foo>>",
        "foo.>>",
        "foo>bar",
        "foo.>bar",
        ">bar",
    ):
        assert impl.valid_literal(ok), ok


def test_TestSublistValidSubjects(impl):
    for bad in (".", ".foo", "foo.", "foo..bar", ">.bar", "foo.>.bar", "foo bar", "foo.\tbar"):
        assert not impl.valid_subject(bad), bad
    for ok in (
        "foo",
        "foo.bar.>",
        "*",
        ">",
        "foo*",
        "foo**",
        "foo.**",
        "foo*bar",
        "foo.*bar",
        "*bar",
        "foo>",
        "foo.>>",
        "foo>bar",
        "foo.>bar",
        ">bar",
    ):
        assert impl.valid_subject(ok), ok


MATCH_LITERALS = [
    ("foo", "foo", True),
    ("foo", "bar", False),
    ("foo", "*", True),
    ("foo", ">", True),
    ("foo.bar", ">", True),
    ("foo.bar", "foo.>", True),
    ("foo.bar", "bar.>", False),
    ("stats.test.22", "stats.>", True),
    ("stats.test.22", "stats.*.*", True),
    ("foo.bar", "foo", False),
    ("stats.test.foos", "stats.test.foos", True),
    ("stats.test.foos", "stats.test.foo", False),
    ("stats.test", "stats.test.*", False),
    ("stats.test.foos", "stats.*", False),
    ("stats.test.foos", "stats.*.*.foos", False),
    # Wildcard characters that break the wildcard rules are plain characters.
    ("*bar", "*bar", True),
    ("foo*", "foo*", True),
    ("foo*bar", "foo*bar", True),
    ("foo.***.bar", "foo.***.bar", True),
    (">bar", ">bar", True),
    ("foo>", "foo>", True),
    ("foo>bar", "foo>bar", True),
    ("foo.>>>.bar", "foo.>>>.bar", True),
]


def test_TestSublistMatchLiterals(impl):
    for literal, pattern, want in MATCH_LITERALS:
        sub = impl.insert(pattern)
        got = match(impl, literal).psubs
        assert (got == [sub]) == want and (got == []) != want, (literal, pattern)
        impl.remove(sub)


def test_TestSublistTwoTokenPubMatchSingleTokenSub(impl):
    sub = impl.insert("foo")
    r = match(impl, "foo")
    assert r.psubs == [sub]
    assert match(impl, "foo.bar").psubs == []


@pytest.mark.parametrize("subject", ["foo.*-", "foo.>-"])
def test_TestSublistInsertWithWildcardsAsLiterals(impl, subject):
    sub = impl.insert(subject)
    assert match(impl, "foo.bar").psubs == []
    assert match(impl, subject).psubs == [sub]


@pytest.mark.parametrize("subject", ["foo.*-", "foo.>-"])
def test_TestSublistRemoveWithWildcardsAsLiterals(impl, subject):
    sub = impl.insert(subject)
    impl.remove(impl.new_sub("foo.bar"))  # never inserted
    assert impl.count() == 1
    impl.remove(sub)
    assert impl.count() == 0


@pytest.mark.difference(
    "publishing to a subject with an empty token raises ValueError instead of matching nothing"
)
def test_TestSublistMatchWithEmptyTokens(impl):
    impl.insert(">")
    impl.insert("foo", "queue")
    for subject in (".foo", "..foo", "foo..", "foo.", "foo..bar", "foo...bar"):
        if impl.name == "original":
            assert impl.deliver(subject) == []
        else:
            with pytest.raises(ValueError, match="empty token"):
                impl.deliver(subject)

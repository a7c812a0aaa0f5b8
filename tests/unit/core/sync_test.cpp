// Anti-entropy: version vectors, range requests/responses, gaps, restore and determinism.
#include <gtest/gtest.h>

#include <sstream>

#include "meshd/core/node.hpp"
#include "tests/unit/core/fake_opener.hpp"

namespace meshd::core::test {
namespace {

std::vector<Envelope> claims(Registry& reg, const std::string& origin, std::uint64_t n) {
  std::vector<Envelope> v;
  for (std::uint64_t s = 1; s <= n; ++s) {
    v.push_back(reg.make(Spec{.origin = origin,
                              .domain = "d-" + origin,
                              .seq = s,
                              .prefix = "198.51.100." + std::to_string(s % 250) + "/32"}));
  }
  return v;
}

TEST(Sync, PeerUpCatchesUpGapsAndOutOfOrder) {
  Registry reg;
  Network net(reg);
  net.add("a", "dA");
  net.add("b", "dB");
  const auto evs = claims(reg, "x", 10);
  for (const auto& e : evs) inject(net.at(0), 99, Push{e}, kT0);
  // b holds 9, 2 and 5 only, out of order.
  for (int i : {8, 1, 4}) inject(net.at(1), 98, Push{evs[static_cast<std::size_t>(i)]}, kT0);
  net.at(0).node.on_peer_down(99, kT0);
  net.at(1).node.on_peer_down(98, kT0);
  EXPECT_EQ(net.at(0).node.contiguous_seq("x"), 10u);
  EXPECT_EQ(net.at(1).node.contiguous_seq("x"), 0u);

  net.link(0, 1, kT0 + 100);
  net.run(kT0 + 100);
  EXPECT_EQ(net.at(1).node.contiguous_seq("x"), 10u);
  EXPECT_EQ(net.at(1).node.store_size(), 10u);
  // Only the gaps were fetched: 1, 3-4, 6-8, 10.
  EXPECT_EQ(net.at(1).node.stats().requests_sent, 4u);
  EXPECT_EQ(net.at(1).node.stats().events_from_sync, 7u);
  EXPECT_EQ(net.at(0).node.stats().envelopes_served, 7u);
  // Each envelope opened once at b.
  for (const auto& e : evs) EXPECT_EQ(net.at(1).opener.opens[*e], 1) << *e;
}

TEST(Sync, PeriodicExchangeHealsLostPushesBothWays) {
  Registry reg;
  Network net(reg);
  Config cfg;
  cfg.anti_entropy_period_ms = 1000;
  net.add("a", "dA", cfg, 1);
  net.add("b", "dB", cfg, 2);
  net.link(0, 1, kT0);
  net.run(kT0);
  // Both learn something while every push between them is lost.
  const auto xs = claims(reg, "x", 3);
  const auto ys = claims(reg, "y", 2);
  for (const auto& e : xs) inject(net.at(0), 99, Push{e}, kT0 + 10);
  for (const auto& e : ys) inject(net.at(1), 98, Push{e}, kT0 + 10);
  net.at(0).node.on_peer_down(99, kT0 + 10);
  net.at(1).node.on_peer_down(98, kT0 + 10);
  // (inject() bypasses the network, so nothing reached the other side.)
  EXPECT_EQ(net.at(1).node.contiguous_seq("x"), 0u);
  TimeMs now = kT0 + 10;
  for (int round = 0; round < 50; ++round) {
    if (net.at(1).node.contiguous_seq("x") == 3 && net.at(0).node.contiguous_seq("y") == 2) break;
    now = std::max(now, std::min(net.at(0).node.next_deadline(), net.at(1).node.next_deadline()));
    net.tick_all(now);
    net.run(now);
  }
  EXPECT_LE(now, kT0 + 10 + 2 * 1250);
  EXPECT_EQ(net.at(1).node.contiguous_seq("x"), 3u);
  EXPECT_EQ(net.at(0).node.contiguous_seq("y"), 2u);
}

TEST(Sync, LongRangesAreSplitAndTruncatedResponsesContinue) {
  Registry reg;
  Network net(reg);
  Config cfg;
  cfg.max_range_span = 8;
  cfg.max_range_envelopes = 5;
  cfg.origin_burst = 1000;
  net.add("a", "dA", cfg);
  net.add("b", "dB", cfg);
  const auto evs = claims(reg, "x", 30);
  for (const auto& e : evs) inject(net.at(0), 99, Push{e}, kT0);
  net.at(0).node.on_peer_down(99, kT0);
  net.link(0, 1, kT0);
  net.run(kT0);
  // One vector asks for at most max_range_span seqs; a later vector asks for the rest.
  TimeMs now = kT0;
  for (int i = 0; i < 40 && net.at(1).node.contiguous_seq("x") < 30; ++i) {
    now = std::max(now, std::min(net.at(0).node.next_deadline(), net.at(1).node.next_deadline()));
    net.tick_all(now);
    net.run(now);
  }
  EXPECT_EQ(net.at(1).node.contiguous_seq("x"), 30u);
}

TEST(Sync, BadRequestsAndUnsolicitedResponsesArePenalised) {
  Registry reg;
  TestNode t(reg, "me", "dA");
  t.node.on_peer_up(1, kT0);
  const Config& c = t.node.config();
  t.node.on_message(1, RangeRequest{"x", 0, 3}, kT0);
  t.node.on_message(1, RangeRequest{"x", 10, 5}, kT0);
  t.node.on_message(1, RangeRequest{"x", 1, 1 + c.max_range_span}, kT0);
  EXPECT_DOUBLE_EQ(t.node.peer(1, kT0)->penalty, 3 * c.penalty_malformed);
  Actions a = t.node.on_message(1, RangeResponse{{reg.make(Spec{})}, false}, kT0);
  EXPECT_EQ(push_count(a), 0u);  // not processed
  EXPECT_EQ(t.node.stats().events_new, 0u);
  EXPECT_DOUBLE_EQ(t.node.peer(1, kT0)->penalty, 4 * c.penalty_malformed);
  // A valid request for an unknown origin gets an empty answer.
  Actions b = t.node.on_message(1, RangeRequest{"nobody", 1, 4}, kT0);
  ASSERT_EQ(b.sends.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<RangeResponse>(b.sends[0].message));
  EXPECT_TRUE(std::get<RangeResponse>(b.sends[0].message).envelopes.empty());
}

TEST(Sync, EventsBeyondTheWindowWaitForTheGapsThenGiveThemUp) {
  Registry reg;
  Config cfg;
  cfg.out_of_order_window = 16;
  cfg.gap_give_up_ms = 30'000;
  TestNode t(reg, "me", "dA", cfg);
  t.node.on_peer_up(1, kT0);
  t.node.on_message(1, Push{reg.make(Spec{.origin = "x", .seq = 1})}, kT0);
  // Too far ahead: refused (not relayed), the gap below is not given up...
  const Envelope e100 = reg.make(Spec{.origin = "x", .seq = 100});
  Actions a = t.node.on_message(1, Push{e100}, kT0);
  EXPECT_EQ(push_count(a), 0u);
  EXPECT_EQ(t.node.stats().out_of_window, 1u);
  EXPECT_EQ(t.node.contiguous_seq("x"), 1u);
  // ...and the refused event is not remembered as seen: a later copy is considered again.
  EXPECT_FALSE(t.node.seen(fake_id(*e100)));
  // Progress on the gap (anti-entropy) restarts the give-up clock.
  for (std::uint64_t s = 2; s <= 10; ++s)
    t.node.on_message(1, Push{reg.make(Spec{.origin = "x", .seq = s})}, kT0 + 20'000);
  EXPECT_EQ(t.node.contiguous_seq("x"), 10u);
  t.node.on_message(1, Push{e100}, kT0 + 40'000);
  EXPECT_EQ(t.node.contiguous_seq("x"), 10u);  // refused again: the clock restarted at 40 s
  EXPECT_EQ(t.node.stats().out_of_window, 2u);
  // No progress for gap_give_up_ms: nobody can serve the gap, it is given up.
  t.node.on_message(1, Push{e100}, kT0 + 70'000);
  EXPECT_TRUE(t.node.seen(fake_id(*e100)));    // taken this time
  EXPECT_EQ(t.node.contiguous_seq("x"), 84u);  // gaps below 100 - 16 are given up
  t.node.on_message(1, Push{reg.make(Spec{.origin = "x", .seq = 85})}, kT0 + 70'000);
  EXPECT_EQ(t.node.contiguous_seq("x"), 85u);
}

TEST(Restore, RebuildsStoreVectorAndBlocksWithoutSending) {
  Registry reg;
  std::vector<Envelope> persisted;
  {
    TestNode t(reg, "me", "dA");
    t.node.on_peer_up(1, kT0);
    for (const auto& e : claims(reg, "x", 5)) {
      Actions a = t.node.on_message(1, Push{e}, kT0);
      for (auto& p : a.persist) persisted.push_back(p.envelope);
    }
    Actions a;
    ASSERT_TRUE(t.node.on_local_event(
        reg.make(Spec{.origin = "me", .domain = "dA", .seq = 1, .prefix = "192.0.2.1/32"}), kT0,
        a));
    for (auto& p : a.persist) persisted.push_back(p.envelope);
  }
  ASSERT_EQ(persisted.size(), 6u);
  std::reverse(persisted.begin(), persisted.end());  // any order

  TestNode r(reg, "me", "dA");  // after the restart: fresh engine and core
  Actions a;
  r.node.restore(persisted, kT0 + 1000, a);
  EXPECT_TRUE(a.sends.empty());
  EXPECT_TRUE(a.persist.empty());
  EXPECT_FALSE(a.blocks.empty());
  EXPECT_EQ(r.node.contiguous_seq("x"), 5u);
  EXPECT_EQ(r.node.contiguous_seq("me"), 1u);
  EXPECT_EQ(r.node.store_size(), 6u);
  EXPECT_EQ(r.node.stats().restored, 6u);
  EXPECT_TRUE(r.engine.enforced(*Prefix::parse("192.0.2.1/32")).has_value());
  // A peer coming up learns our vector, and a copy of a restored event is a duplicate.
  Actions up = r.node.on_peer_up(7, kT0 + 1000);
  ASSERT_EQ(up.sends.size(), 1u);
  const auto& vv = std::get<VersionVector>(up.sends[0].message);
  EXPECT_EQ(vv.entries->size(), 2u);
  Actions dup = r.node.on_message(7, Push{persisted[0]}, kT0 + 1000);
  EXPECT_EQ(push_count(dup), 0u);
  EXPECT_EQ(r.node.stats().duplicates, 1u);
  // It serves restored envelopes.
  Actions served = r.node.on_message(7, RangeRequest{"x", 1, 5}, kT0 + 1000);
  ASSERT_EQ(served.sends.size(), 1u);
  EXPECT_EQ(std::get<RangeResponse>(served.sends[0].message).envelopes.size(), 5u);
}

std::string describe(const Actions& a) {
  std::ostringstream os;
  for (const auto& s : a.sends) {
    os << s.peer << ':' << s.message.index();
    if (const auto* p = std::get_if<Push>(&s.message)) os << *p->envelope;
    if (const auto* r = std::get_if<RangeRequest>(&s.message))
      os << r->origin << r->from_seq << '-' << r->to_seq;
    os << ';';
  }
  for (const auto& b : a.blocks)
    os << to_string(b.kind) << b.prefix.to_string() << b.expires_at << ';';
  for (const auto& p : a.proofs) os << "proof " << p.accused << ';';
  os << "next " << a.next_deadline << '\n';
  return os.str();
}

std::string run_scenario(std::uint64_t seed) {
  Registry reg;
  std::ostringstream log;
  Config cfg;
  cfg.anti_entropy_period_ms = 500;
  TestNode t(reg, "me", "dA", cfg, seed);
  for (PeerId p : {1, 2, 3, 4, 5}) log << describe(t.node.on_peer_up(p, kT0));
  TimeMs now = kT0;
  for (int i = 0; i < 40; ++i) {
    now += 37;
    log << describe(
        t.node.on_message(static_cast<PeerId>(1 + i % 5),
                          Push{reg.make(Spec{.origin = "o" + std::to_string(i % 7),
                                             .seq = static_cast<std::uint64_t>(1 + i / 7)})},
                          now));
    if (t.node.next_deadline() <= now) log << describe(t.node.tick(now));
  }
  return log.str();
}

TEST(Determinism, SameSeedSameActions) {
  const std::string a = run_scenario(42);
  const std::string b = run_scenario(42);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, run_scenario(43));  // the injected rng drives the anti-entropy schedule
}

}  // namespace
}  // namespace meshd::core::test

namespace meshd::core::test {
namespace {

TEST(Sync, EventsDroppedByTheOriginLimitArriveLaterThroughAntiEntropy) {
  Registry reg;
  Network net(reg);
  Config limited;
  limited.origin_burst = 2;
  limited.origin_rate_per_min = 600;  // 10/s
  limited.origin_queue_max = 1;
  limited.anti_entropy_period_ms = 1000;
  net.add("a", "dA", Config{}, 1);
  net.add("b", "dB", limited, 2);
  net.link(0, 1, kT0);
  net.run(kT0);
  // a learns 8 events of x at once and pushes them all to b; b takes 2, queues 1, drops 5.
  const auto evs = claims(reg, "x", 8);
  for (const auto& e : evs) {
    Actions act = inject(net.at(0), 99, Push{e}, kT0 + 1);
    net.absorb(0, act);
  }
  net.at(0).node.on_peer_down(99, kT0 + 1);
  net.run(kT0 + 1);
  EXPECT_EQ(net.at(1).node.stats().origin_dropped, 5u);
  EXPECT_LT(net.at(1).node.contiguous_seq("x"), 8u);
  TimeMs now = kT0 + 1;
  for (int i = 0; i < 100 && net.at(1).node.contiguous_seq("x") < 8; ++i) {
    now =
        std::max(now + 1, std::min(net.at(0).node.next_deadline(), net.at(1).node.next_deadline()));
    net.tick_all(now);
    net.run(now);
  }
  EXPECT_EQ(net.at(1).node.contiguous_seq("x"), 8u);
  EXPECT_LE(now, kT0 + 10'000);
}

}  // namespace
}  // namespace meshd::core::test

namespace meshd::core::test {
namespace {

std::vector<VersionEntry> vectors_to(const Actions& a, PeerId peer) {
  std::vector<VersionEntry> v;
  for (const Send& s : a.sends) {
    if (s.peer != peer) continue;
    if (const auto* vv = std::get_if<VersionVector>(&s.message)) {
      v.insert(v.end(), vv->entries->begin(), vv->entries->end());
    }
  }
  return v;
}

// Ticks at the node's deadlines up to `until`, collecting the actions.
Actions tick_until(TestNode& t, TimeMs& now, TimeMs until) {
  Actions all;
  while (t.node.next_deadline() <= until) {
    now = std::max(now, t.node.next_deadline());
    Actions a = t.node.tick(now);
    for (auto& s : a.sends) all.sends.push_back(std::move(s));
  }
  return all;
}

TEST(Sync, DeltaVectorsCarryOnlyWhatAdvancedAndIdleNodesSleep) {
  Registry reg;
  Config cfg;
  cfg.anti_entropy_period_ms = 1000;
  cfg.anti_entropy_full_period_ms = 60'000;
  TestNode t(reg, "me", "dA", cfg);
  Actions up = t.node.on_peer_up(1, kT0);
  EXPECT_TRUE(vectors_to(up, 1).empty());  // the full vector on peer-up: nothing held yet
  t.node.on_message(1, Push{reg.make(Spec{.origin = "x", .seq = 1})}, kT0);
  t.node.on_message(1, Push{reg.make(Spec{.origin = "y", .seq = 1})}, kT0);
  t.node.on_peer_up(2, kT0 + 1);  // peer 2 gets the full vector at once
  TimeMs now = kT0 + 1;
  Actions r1 = tick_until(t, now, kT0 + 1600);
  auto d1 = vectors_to(r1, 1);
  ASSERT_EQ(d1.size(), 2u);                // x and y advanced since peer 1's last vector
  EXPECT_TRUE(vectors_to(r1, 2).empty());  // peer 2 is up to date
  t.node.on_message(2, Push{reg.make(Spec{.origin = "x", .seq = 2})}, now);
  Actions r2 = tick_until(t, now, now + 1600);
  auto d2 = vectors_to(r2, 1);
  ASSERT_EQ(d2.size(), 1u);
  EXPECT_EQ(d2[0].origin, "x");
  EXPECT_EQ(d2[0].max_contiguous_seq, 2u);
  EXPECT_EQ(vectors_to(r2, 2).size(), 1u);
  // Nothing advances any more: the rounds go idle until the full-vector backstop.
  tick_until(t, now, now + 1600);
  EXPECT_GE(t.node.next_deadline(), now + 60'000 * 3 / 4 - 5000);
}

TEST(Sync, UnansweredRequestsAreRetriedFromTheSamePeer) {
  Registry reg;
  TestNode t(reg, "me", "dA");
  t.node.on_peer_up(1, kT0);
  auto entries =
      std::make_shared<const std::vector<VersionEntry>>(std::vector<VersionEntry>{{"x", 3}});
  Actions a = t.node.on_message(1, VersionVector{entries}, kT0);
  ASSERT_EQ(a.sends.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<RangeRequest>(a.sends[0].message));
  // The answer never comes; after the timeout the request goes out again.
  TimeMs now = kT0;
  Actions r = tick_until(t, now, kT0 + t.node.config().request_timeout_ms + 3000);
  bool again = false;
  for (const Send& s : r.sends) {
    if (const auto* rq = std::get_if<RangeRequest>(&s.message)) {
      again |= s.peer == 1 && rq->origin == "x" && rq->from_seq == 1 && rq->to_seq == 3;
    }
  }
  EXPECT_TRUE(again);
}

}  // namespace
}  // namespace meshd::core::test

namespace meshd::core::test {
namespace {

TEST(Sync, CatchUpBeyondRequestLimitsNeedsNoFurtherVectors) {
  Registry reg;
  Network net(reg);
  Config cfg;
  cfg.max_requests_per_vector = 10;
  cfg.max_outstanding_requests = 8;
  cfg.max_range_span = 16;
  cfg.origin_burst = 1000;
  net.add("a", "dA", cfg);
  net.add("b", "dB", cfg);
  for (int o = 0; o < 60; ++o) {
    for (const auto& e : claims(reg, "o" + std::to_string(o), o == 0 ? 100 : 2)) {
      inject(net.at(0), 99, Push{e}, kT0);
    }
  }
  net.at(0).node.on_peer_down(99, kT0);
  net.link(0, 1, kT0);
  net.run(kT0);  // no ticks: everything follows from the two peer-up vectors
  for (int o = 0; o < 60; ++o) {
    EXPECT_EQ(net.at(1).node.contiguous_seq("o" + std::to_string(o)), o == 0 ? 100u : 2u) << o;
  }
}

}  // namespace
}  // namespace meshd::core::test

namespace meshd::core::test {
namespace {

// A peer that holds a long run of one origin's events (an honest burst, or a flood below the
// overrun limit) is fetched from at the pace the origin limit lets through: anti-entropy does
// not ask again for events already waiting in the origin's queue (they would be served, sent
// and recognised as duplicates, once per vector round), nor for more than the queue can take
// (they would be opened — an Ed25519 verify in the daemon — and dropped).
TEST(Sync, AntiEntropyFetchesNoMoreThanTheOriginQueueCanTake) {
  Registry reg;
  Network net(reg);
  Config cfg;  // b: the default origin limit (burst 200, 10/s, a queue of 256)
  cfg.anti_entropy_period_ms = 1000;
  Config unlimited = cfg;
  unlimited.origin_rate_per_min = 1e9;
  unlimited.origin_burst = 1e6;
  net.add("a", "dA", unlimited, 1);
  net.add("b", "dB", cfg, 2);
  // Fewer than the engine's overrun limit (400 claims of one origin), each on its own prefix.
  constexpr std::uint64_t n = 390;
  std::vector<Envelope> evs;
  for (std::uint64_t s = 1; s <= n; ++s) {
    evs.push_back(reg.make(
        Spec{.origin = "x",
             .domain = "d-x",
             .seq = s,
             .prefix = "10.0." + std::to_string(s / 256) + "." + std::to_string(s % 256) + "/32"}));
  }
  TimeMs now = kT0;
  for (const auto& e : evs) inject(net.at(0), 99, Push{e}, now);
  net.at(0).node.on_peer_down(99, now);
  ASSERT_EQ(net.at(0).node.contiguous_seq("x"), n);
  ASSERT_EQ(net.at(0).node.store_size(), n);
  net.link(0, 1, now);
  net.run(now);
  const TimeMs start = now;
  while (now - start < 200'000 && net.at(1).node.contiguous_seq("x") < n) {
    now =
        std::max(now + 1, std::min(net.at(0).node.next_deadline(), net.at(1).node.next_deadline()));
    net.tick_all(now);
    net.run(now);
  }
  EXPECT_EQ(net.at(1).node.contiguous_seq("x"), n);
  // (n - burst) / rate = 19 s at the least; anti-entropy rounds add a few seconds.
  EXPECT_LE(now - start, 30'000);
  std::uint64_t opens = 0;
  for (const auto& e : evs) opens += static_cast<std::uint64_t>(net.at(1).opener.opens[*e]);
  EXPECT_EQ(opens, n);
  EXPECT_EQ(net.at(1).node.stats().origin_dropped, 0u);
  // Each event served once: none asked for again while it waited in b's queue.
  EXPECT_EQ(net.at(0).node.stats().envelopes_served, n);
  EXPECT_EQ(net.at(1).node.stats().duplicates, 0u);
}

}  // namespace
}  // namespace meshd::core::test

// meshd/core Node, message by message: dedup, forwarding, validity, scoring, rate limits.
#include "meshd/core/node.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/unit/core/fake_opener.hpp"

namespace meshd::core::test {
namespace {

bool has_enforce(const Actions& a, const std::string& prefix) {
  for (const auto& b : a.blocks)
    if (b.kind == trust::BlockChange::Kind::enforce && b.prefix == *Prefix::parse(prefix))
      return true;
  return false;
}

struct Fixture : ::testing::Test {
  Registry reg;
};

TEST_F(Fixture, DedupSameEnvelopeTwiceOpensOnceForwardsOnce) {
  TestNode t(reg, "me", "dA");
  for (PeerId p : {1, 2, 3}) t.node.on_peer_up(p, kT0);
  const Envelope e = reg.make(Spec{.origin = "n1", .seq = 1});

  Actions a1 = t.node.on_message(1, Push{e}, kT0 + 1);
  EXPECT_EQ(push_count(a1), 2u);
  EXPECT_EQ(a1.persist.size(), 1u);
  EXPECT_TRUE(has_enforce(a1, "203.0.113.7/32"));

  Actions a2 = t.node.on_message(2, Push{e}, kT0 + 2);
  EXPECT_EQ(push_count(a2), 0u);
  EXPECT_TRUE(a2.blocks.empty());
  EXPECT_TRUE(a2.persist.empty());
  EXPECT_EQ(t.opener.opens[*e], 1);
  EXPECT_EQ(t.node.stats().duplicates, 1u);
  EXPECT_EQ(t.node.stats().events_new, 1u);
  EXPECT_TRUE(t.node.seen(fake_id(*e)));
}

TEST_F(Fixture, SameBodyResignedIsADuplicateNotEquivocation) {
  TestNode t(reg, "me", "dA");
  t.node.on_peer_up(1, kT0);
  t.node.on_peer_up(2, kT0);
  const Envelope e1 = reg.make(Spec{.origin = "n1", .seq = 1});
  const Envelope e2 = reg.make(Spec{.origin = "n1", .seq = 1});  // same body, other bytes
  t.node.on_message(1, Push{e1}, kT0);
  Actions a = t.node.on_message(2, Push{e2}, kT0);
  EXPECT_EQ(push_count(a), 0u);
  EXPECT_EQ(t.node.stats().equivocations, 0u);
  EXPECT_EQ(t.node.stats().duplicates, 1u);
}

TEST_F(Fixture, ForwardsToEveryPeerButTheSender) {
  TestNode t(reg, "me", "dA");
  for (PeerId p : {1, 2, 3, 4}) t.node.on_peer_up(p, kT0);
  Actions a = t.node.on_message(3, Push{reg.make(Spec{})}, kT0);
  EXPECT_EQ(sends_to(a, 1).size(), 1u);
  EXPECT_EQ(sends_to(a, 2).size(), 1u);
  EXPECT_EQ(sends_to(a, 3).size(), 0u);
  EXPECT_EQ(sends_to(a, 4).size(), 1u);
  EXPECT_EQ(t.node.stats().forwarded, 3u);
}

TEST_F(Fixture, LocalEventGoesToEveryPeer) {
  TestNode t(reg, "me", "dA");
  for (PeerId p : {1, 2}) t.node.on_peer_up(p, kT0);
  Actions a;
  ASSERT_TRUE(t.node.on_local_event(reg.make(Spec{.origin = "me", .domain = "dA"}), kT0, a));
  EXPECT_EQ(push_count(a), 2u);
  EXPECT_EQ(a.persist.size(), 1u);
  EXPECT_EQ(t.node.contiguous_seq("me"), 1u);
  // A bad local event is an error value, nothing is sent.
  Actions b;
  auto r = t.node.on_local_event(make_envelope("garbage"), kT0, b);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "malformed");
  EXPECT_TRUE(b.sends.empty());
}

TEST_F(Fixture, ForwardsValidClaimsItDoesNotEnforce) {
  TestNode t(reg, "me", "dA");
  for (PeerId p : {1, 2, 3}) t.node.on_peer_up(p, kT0);
  // Confidence 0.05: far below this node's threshold, but valid.
  Actions a = t.node.on_message(1, Push{reg.make(Spec{.confidence = 0.05})}, kT0);
  EXPECT_TRUE(a.blocks.empty());
  EXPECT_EQ(push_count(a), 2u);
  EXPECT_EQ(a.persist.size(), 1u);
}

TEST_F(Fixture, InvalidSignatureIsNotForwardedAndLowersTheScore) {
  TestNode t(reg, "me", "dA");
  for (PeerId p : {1, 2}) t.node.on_peer_up(p, kT0);
  Actions a = t.node.on_message(1, Push{reg.make(Spec{.signature_ok = false})}, kT0);
  EXPECT_EQ(push_count(a), 0u);
  EXPECT_TRUE(a.blocks.empty());
  EXPECT_EQ(t.node.stats().invalid, 1u);
  EXPECT_DOUBLE_EQ(t.node.peer(1, kT0)->penalty, t.node.config().penalty_invalid);
  EXPECT_DOUBLE_EQ(t.node.peer(2, kT0)->penalty, 0);
  // Penalties decay: one half-life later, half is left.
  EXPECT_NEAR(t.node.peer(1, kT0 + t.node.config().score_half_life_ms)->penalty,
              t.node.config().penalty_invalid / 2, 1e-9);
}

TEST_F(Fixture, MalformedAndStaleAreCountedStaleIsNotPenalised) {
  TestNode t(reg, "me", "dA");
  t.node.on_peer_up(1, kT0);
  t.node.on_message(1, Push{make_envelope("not an envelope")}, kT0);
  EXPECT_EQ(t.node.stats().malformed, 1u);
  EXPECT_DOUBLE_EQ(t.node.peer(1, kT0)->penalty, t.node.config().penalty_malformed);
  t.node.on_message(1, Push{nullptr}, kT0);
  EXPECT_EQ(t.node.stats().malformed, 2u);
  Actions a = t.node.on_message(1, Push{reg.make(Spec{.stale = true})}, kT0);
  EXPECT_EQ(push_count(a), 0u);
  EXPECT_EQ(t.node.stats().stale, 1u);
  EXPECT_DOUBLE_EQ(t.node.peer(1, kT0)->penalty, 2 * t.node.config().penalty_malformed);
}

TEST_F(Fixture, ScoringDisconnectsAndBansWithGrowingBackOff) {
  TestNode t(reg, "me", "dA");
  const Config& c = t.node.config();
  t.node.on_peer_up(1, kT0);
  t.node.on_peer_up(2, kT0);
  const int needed = static_cast<int>(std::ceil(c.score_threshold / c.penalty_invalid));
  Actions last;
  for (int i = 0; i < needed; ++i) {
    last = t.node.on_message(1, Push{reg.make(Spec{.seq = 100u + i, .signature_ok = false})}, kT0);
    if (i + 1 < needed) {
      EXPECT_TRUE(last.disconnects.empty());
    }
  }
  ASSERT_EQ(last.disconnects.size(), 1u);
  EXPECT_EQ(last.disconnects[0].peer, 1u);
  EXPECT_EQ(last.disconnects[0].ban_until, kT0 + c.ban_base_ms);
  EXPECT_NE(last.disconnects[0].reason.find("invalid"), std::string::npos);
  EXPECT_FALSE(t.node.peer(1, kT0)->connected);
  // Still-arriving messages of the banned peer are ignored, not processed.
  Actions ign = t.node.on_message(1, Push{reg.make(Spec{.seq = 7})}, kT0);
  EXPECT_EQ(push_count(ign), 0u);
  EXPECT_EQ(t.node.stats().messages_ignored, 1u);
  // Reconnecting during the ban is refused.
  Actions up = t.node.on_peer_up(1, kT0 + 1000);
  ASSERT_EQ(up.disconnects.size(), 1u);
  EXPECT_EQ(up.disconnects[0].ban_until, kT0 + c.ban_base_ms);
  // After the ban it may come back; misbehaving again doubles the ban.
  const TimeMs t2 = kT0 + c.ban_base_ms;
  Actions up2 = t.node.on_peer_up(1, t2);
  EXPECT_TRUE(up2.disconnects.empty());
  Actions d2;
  for (int i = 0; i < needed + 2 && d2.disconnects.empty(); ++i) {
    d2 = t.node.on_message(1, Push{reg.make(Spec{.seq = 200u + i, .signature_ok = false})}, t2);
  }
  ASSERT_EQ(d2.disconnects.size(), 1u);
  EXPECT_EQ(d2.disconnects[0].ban_until, t2 + 2 * c.ban_base_ms);
  EXPECT_EQ(t.node.peer(1, t2)->bans, 2u);
  EXPECT_TRUE(t.node.peer(2, t2)->connected);
}

TEST_F(Fixture, UselessDuplicatesBeyondToleranceArePenalised) {
  Config cfg;
  cfg.dup_tolerance = 5;
  TestNode t(reg, "me", "dA", cfg);
  t.node.on_peer_up(1, kT0);
  const Envelope e = reg.make(Spec{});
  for (int i = 0; i < 10; ++i) t.node.on_message(1, Push{e}, kT0);
  // 1 new + 9 duplicates; allowance = 5 + 1 new event learned.
  EXPECT_EQ(t.node.stats().duplicates, 9u);
  EXPECT_EQ(t.node.stats().useless_duplicates, 3u);
  EXPECT_DOUBLE_EQ(t.node.peer(1, kT0)->penalty, 3 * cfg.penalty_duplicate);
}

TEST_F(Fixture, HonestDuplicatesOfABurstAreNotPenalised) {
  TestNode t(reg, "me", "dA");
  for (PeerId p : {1, 2}) t.node.on_peer_up(p, kT0);
  // 500 events learned from peer 1 just before a window boundary, duplicated by peer 2 after.
  std::vector<Envelope> evs;
  for (int i = 1; i <= 500; ++i) evs.push_back(reg.make(Spec{.origin = "o" + std::to_string(i)}));
  const TimeMs edge = kT0 + t.node.config().dup_window_ms - 1;
  for (const auto& e : evs) t.node.on_message(1, Push{e}, edge);
  for (const auto& e : evs) t.node.on_message(2, Push{e}, edge + 2);
  EXPECT_EQ(t.node.stats().useless_duplicates, 0u);
  EXPECT_DOUBLE_EQ(t.node.peer(2, edge + 2)->penalty, 0);
}

TEST_F(Fixture, PerPeerRateLimitDropsAndPenalises) {
  Config cfg;
  cfg.peer_burst = 10;
  cfg.peer_rate_per_s = 1;
  TestNode t(reg, "me", "dA", cfg);
  t.node.on_peer_up(1, kT0);
  for (int i = 1; i <= 15; ++i) {
    t.node.on_message(1, Push{reg.make(Spec{.origin = "o" + std::to_string(i)})}, kT0);
  }
  EXPECT_EQ(t.node.stats().events_new, 10u);
  EXPECT_EQ(t.node.stats().rate_limited_peer, 5u);
  EXPECT_DOUBLE_EQ(t.node.peer(1, kT0)->penalty, 5 * cfg.penalty_rate_limit);
  // Tokens refill: two seconds later two more messages pass.
  for (int i = 16; i <= 18; ++i) {
    t.node.on_message(1, Push{reg.make(Spec{.origin = "o" + std::to_string(i)})}, kT0 + 2000);
  }
  EXPECT_EQ(t.node.stats().events_new, 12u);
}

// The driver's two-step path (admit before decoding, then on_admitted_message) behaves like
// on_message: the same tokens, counters and penalties; a refused message is never opened.
TEST_F(Fixture, AdmitBeforeDecodeRefusesOverTheLimitWithoutOpening) {
  Config cfg;
  cfg.peer_burst = 10;
  cfg.peer_rate_per_s = 1;
  cfg.score_threshold = 8;
  TestNode t(reg, "me", "dA", cfg);
  t.node.on_peer_up(1, kT0);
  t.node.on_peer_up(2, kT0);
  int admitted = 0;
  Actions a;
  for (int i = 1; i <= 17; ++i) {
    const Envelope e = reg.make(Spec{.origin = "o" + std::to_string(i)});
    if (t.node.admit(1, kT0, a)) {
      ++admitted;
      t.node.on_admitted_message(1, Push{e}, kT0, a);
    } else {
      EXPECT_EQ(t.opener.opens[*e], 0) << "a refused message must not be opened";
    }
  }
  EXPECT_EQ(admitted, 10);
  EXPECT_EQ(t.node.stats().events_new, 10u);
  EXPECT_EQ(t.node.stats().messages_received, 17u);
  // The 8th refusal reaches the threshold: disconnected and banned; the rest are ignored.
  EXPECT_EQ(t.node.stats().rate_limited_peer, 7u);
  ASSERT_EQ(a.disconnects.size(), 0u);
  EXPECT_FALSE(t.node.admit(1, kT0, a));
  ASSERT_EQ(a.disconnects.size(), 1u);
  EXPECT_EQ(a.disconnects[0].peer, 1u);
  EXPECT_NE(a.disconnects[0].reason.find("rate limit 8.0"), std::string::npos)
      << a.disconnects[0].reason;
  EXPECT_GT(t.node.peer(1, kT0)->banned_until, kT0);
  EXPECT_FALSE(t.node.admit(1, kT0, a));
  EXPECT_EQ(t.node.stats().messages_ignored, 1u);
  // The other peer has its own bucket.
  EXPECT_TRUE(t.node.admit(2, kT0, a));
}

// Messages the driver's transport dropped for its byte/frame budget count against the peer.
TEST_F(Fixture, TransportRateDropsAreScoredLikeRateLimitedMessages) {
  Config cfg;
  cfg.score_threshold = 5;
  TestNode t(reg, "me", "dA", cfg);
  t.node.on_peer_up(1, kT0);
  Actions a;
  for (int i = 0; i < 4; ++i) t.node.on_rate_dropped(1, kT0, a);
  EXPECT_EQ(t.node.stats().rate_limited_peer, 4u);
  EXPECT_DOUBLE_EQ(t.node.peer(1, kT0)->penalty, 4 * cfg.penalty_rate_limit);
  EXPECT_TRUE(a.disconnects.empty());
  t.node.on_rate_dropped(1, kT0, a);
  ASSERT_EQ(a.disconnects.size(), 1u);
  EXPECT_FALSE(t.node.peer(1, kT0)->connected);
  // An unknown peer is only counted.
  t.node.on_rate_dropped(9, kT0, a);
  EXPECT_EQ(t.node.stats().messages_ignored, 1u);
}

TEST_F(Fixture, PerOriginRateLimitQueuesThenDropsWithoutBreakingConvergence) {
  Config cfg;
  cfg.origin_burst = 3;
  cfg.origin_rate_per_min = 60;  // one per second
  cfg.origin_queue_max = 2;
  TestNode t(reg, "me", "dA", cfg);
  t.node.on_peer_up(1, kT0);
  t.node.on_peer_up(2, kT0);
  std::vector<Envelope> evs;
  for (std::uint64_t s = 1; s <= 6; ++s)
    evs.push_back(reg.make(
        Spec{.origin = "n1", .seq = s, .prefix = "198.51.100." + std::to_string(s) + "/32"}));
  std::size_t pushes = 0;
  Actions last;
  for (const auto& e : evs) {
    last = t.node.on_message(1, Push{e}, kT0);
    pushes += push_count(last);
  }
  EXPECT_EQ(pushes, 3u);  // only the first three are forwarded now
  EXPECT_EQ(t.node.contiguous_seq("n1"), 3u);
  EXPECT_EQ(t.node.stats().rate_limited_origin, 2u);
  EXPECT_EQ(t.node.stats().origin_dropped, 1u);
  EXPECT_LE(last.next_deadline, kT0 + 1001);  // a token is due in a second

  Actions a = t.node.tick(kT0 + 1001);
  EXPECT_EQ(push_count(a), 1u);
  EXPECT_EQ(t.node.contiguous_seq("n1"), 4u);
  t.node.tick(kT0 + 2002);
  EXPECT_EQ(t.node.contiguous_seq("n1"), 5u);
  // Seq 6 was dropped without being marked held or seen: a later copy (anti-entropy or a
  // push) is accepted once tokens are back.
  Actions late = t.node.on_message(2, Push{evs[5]}, kT0 + 4000);
  EXPECT_EQ(push_count(late), 1u);
  EXPECT_EQ(t.node.contiguous_seq("n1"), 6u);
  // Opened at most once while remembered: 6 distinct envelopes, one re-open after the drop.
  EXPECT_EQ(t.opener.opens[*evs[5]], 2);
  EXPECT_EQ(t.opener.opens[*evs[3]], 1);
}

// With an opener that can peek (production), an event whose origin's queue is full is
// dropped before it is opened: the Ed25519 verify would be spent on an event dropped anyway.
// Everything else stays as without the peek: a held seq is still opened (an equivocation must
// be seen), and a dropped event is accepted later once the queue has room.
struct ShedFixture : Fixture {
  // Origin n1 may have 2 events at once, then one a second, with 2 waiting; peer 1 is up.
  TestNode t{reg, "me", "dA", [] {
               Config cfg;
               cfg.origin_burst = 2;
               cfg.origin_rate_per_min = 60;
               cfg.origin_queue_max = 2;
               return cfg;
             }()};
  std::vector<Envelope> evs;
  // Pushes seqs 1..n of n1 from peer 1 at kT0.
  void push_burst(std::uint64_t n) {
    t.opener.peeks = true;
    t.node.on_peer_up(1, kT0);
    for (std::uint64_t s = 1; s <= n; ++s)
      evs.push_back(reg.make(
          Spec{.origin = "n1", .seq = s, .prefix = "198.51.100." + std::to_string(s) + "/32"}));
    for (const auto& e : evs) t.node.on_message(1, Push{e}, kT0);
  }
};

TEST_F(ShedFixture, FullOriginQueueShedsEventsBeforeOpeningThem) {
  push_burst(7);
  // Two taken, two queued (each opened once), three shed unopened.
  EXPECT_EQ(t.node.contiguous_seq("n1"), 2u);
  EXPECT_EQ(t.node.stats().rate_limited_origin, 2u);
  EXPECT_EQ(t.node.stats().origin_dropped, 3u);
  EXPECT_EQ(t.node.stats().origin_dropped_unopened, 3u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(t.opener.opens[*evs[i]], 1) << i;
  for (std::size_t i = 4; i < 7; ++i) EXPECT_EQ(t.opener.opens[*evs[i]], 0) << i;
  // A second body under held seq 1 is opened and proven, queue full or not.
  const Envelope twin =
      reg.make(Spec{.origin = "n1", .seq = 1, .prefix = "198.51.100.1/32", .salt = "other body"});
  t.node.on_message(1, Push{twin}, kT0);
  EXPECT_EQ(t.opener.opens[*twin], 1);
  EXPECT_EQ(t.node.stats().equivocations, 1u);
}

TEST_F(ShedFixture, ShedEventsArriveOnceTheQueueHasRoom) {
  push_burst(5);
  EXPECT_EQ(t.opener.opens[*evs[4]], 0);
  t.node.tick(kT0 + 1001);  // seq 3 leaves the queue: room for one
  t.node.on_message(1, Push{evs[4]}, kT0 + 1001);
  EXPECT_EQ(t.opener.opens[*evs[4]], 1);
  t.node.tick(kT0 + 2002);
  t.node.tick(kT0 + 3003);
  EXPECT_EQ(t.node.contiguous_seq("n1"), 5u);
  EXPECT_EQ(t.node.stats().origin_dropped_unopened, 1u);
}

TEST_F(Fixture, OperatorDecisionsBypassTheOriginLimit) {
  Config cfg;
  cfg.origin_burst = 1;
  TestNode t(reg, "me", "dA", cfg);
  t.node.on_peer_up(1, kT0);
  trust::OperatorDecision d;
  d.action = trust::OperatorDecision::Action::block;
  d.prefix = *Prefix::parse("192.0.2.0/24");
  d.expires_at = kT0 + kHour;
  for (std::uint64_t s = 1; s <= 3; ++s) {
    d.prefix = *Prefix::parse("192.0." + std::to_string(s) + ".0/24");
    Actions a = t.node.on_message(
        1,
        Push{reg.make(
            Spec{.kind = EventKind::operator_decision, .origin = "op", .seq = s, .decision = d})},
        kT0);
    EXPECT_TRUE(has_enforce(a, d.prefix.to_string())) << s;
  }
  EXPECT_EQ(t.node.stats().rate_limited_origin, 0u);
}

TEST_F(Fixture, RetractionLiftsTheBlock) {
  TestNode t(reg, "me", "dA");
  t.node.on_peer_up(1, kT0);
  Actions a = t.node.on_message(1, Push{reg.make(Spec{.origin = "n1", .seq = 1})}, kT0);
  ASSERT_TRUE(has_enforce(a, "203.0.113.7/32"));
  Actions r = t.node.on_message(
      1,
      Push{reg.make(
          Spec{.kind = EventKind::retraction, .origin = "n1", .seq = 2, .retract_seq = 1})},
      kT0 + 10);
  bool lifted = false;
  for (const auto& b : r.blocks) lifted |= b.kind == trust::BlockChange::Kind::lift;
  EXPECT_TRUE(lifted);
  EXPECT_EQ(t.node.contiguous_seq("n1"), 2u);
}

TEST_F(Fixture, StoreIsBoundedAndForgetsWhatExpiresFirst) {
  Config cfg;
  cfg.store_capacity = 3;
  TestNode t(reg, "me", "dA", cfg);
  t.node.on_peer_up(1, kT0);
  std::vector<Envelope> evs;
  for (std::uint64_t s = 1; s <= 5; ++s) {
    evs.push_back(
        reg.make(Spec{.origin = "n1", .seq = s, .ttl = kHour + static_cast<DurationMs>(s)}));
  }
  std::vector<EventId> forgotten;
  for (const auto& e : evs) {
    Actions a = t.node.on_message(1, Push{e}, kT0);
    forgotten.insert(forgotten.end(), a.forget.begin(), a.forget.end());
  }
  EXPECT_EQ(t.node.store_size(), 3u);
  ASSERT_EQ(forgotten.size(), 2u);
  EXPECT_EQ(forgotten[0], fake_id(*evs[0]));
  EXPECT_EQ(forgotten[1], fake_id(*evs[1]));
  EXPECT_EQ(t.node.contiguous_seq("n1"), 5u);  // forgetting keeps the seqs held
  // Expiry: an hour later everything is forgotten.
  Actions x = t.node.tick(kT0 + kHour + 10);
  EXPECT_EQ(x.forget.size(), 3u);
  EXPECT_EQ(t.node.store_size(), 0u);
}

TEST_F(Fixture, MaxPeersIsEnforced) {
  Config cfg;
  cfg.target_degree = 2;
  cfg.max_peers = 2;
  TestNode t(reg, "me", "dA", cfg);
  EXPECT_TRUE(t.node.on_peer_up(1, kT0).disconnects.empty());
  EXPECT_TRUE(t.node.on_peer_up(2, kT0).disconnects.empty());
  EXPECT_EQ(t.node.on_peer_up(3, kT0).disconnects.size(), 1u);
  t.node.on_peer_down(1, kT0);
  EXPECT_TRUE(t.node.on_peer_up(3, kT0).disconnects.empty());
}

TEST_F(Fixture, ConfigValidationNamesTheField) {
  Config c;
  c.anti_entropy_jitter = 1.5;
  auto r = c.validate();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "bad_config");
  EXPECT_NE(r.error().message.find("anti_entropy_jitter"), std::string::npos);
  EXPECT_TRUE(Config::defaults().validate());
  Registry reg2;
  FakeOpener op(reg2);
  SplitMix64 rng(1);
  trust::Engine eng(trust::Params{}, trust::LocalContext{trust::Origin{"me", "d"}, {}, nullptr});
  auto bad = Node::create(c, eng, op, rng);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("anti_entropy_jitter"), std::string::npos);
}

}  // namespace
}  // namespace meshd::core::test

namespace meshd::core::test {
namespace {

TEST(ConfigTable, EveryRowRoundTripsAndBadValuesAreNamed) {
  const Config d;
  for (const ConfigInfo& row : config_table()) {
    Config c;
    ASSERT_TRUE(row.set(c, row.get(d))) << row.name;
    EXPECT_EQ(row.get(c), row.get(d)) << row.name;
    EXPECT_FALSE(row.description.empty()) << row.name;
    EXPECT_EQ(find_config(row.name), &row);
  }
  EXPECT_EQ(config_table().size(), 36u);
  Config c;
  ASSERT_TRUE(set_config(c, "anti_entropy_period_ms", "500"));
  EXPECT_EQ(c.anti_entropy_period_ms, 500);
  ASSERT_TRUE(set_config(c, "anti_entropy_jitter", "0.1"));
  EXPECT_DOUBLE_EQ(c.anti_entropy_jitter, 0.1);
  auto neg = set_config(c, "anti_entropy_period_ms", "-1");
  ASSERT_FALSE(neg);
  EXPECT_EQ(neg.error().code, "bad_config");
  EXPECT_NE(neg.error().message.find("mesh.anti_entropy_period_ms"), std::string::npos);
  EXPECT_FALSE(set_config(c, "max_peers", "1.5"));
  EXPECT_FALSE(set_config(c, "max_peers", "12x"));
  auto unknown = set_config(c, "no_such_key", "1");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("mesh.no_such_key"), std::string::npos);
}

}  // namespace
}  // namespace meshd::core::test

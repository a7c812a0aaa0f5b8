#include "sensor/nft_enforcer_intervals.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace meshd::sensor::nft {
namespace {

Prefix P(std::string_view s) {
  return *Prefix::parse(s);
}
BlockRule R(std::string_view p, std::uint64_t id, TimeMs exp, Direction d = Direction::egress) {
  return BlockRule{P(p), d, id, exp};
}

std::vector<ElementOp> run(IntervalPlanner& pl, TimeMs now) {
  pl.begin();
  auto ops = pl.plan(now);
  pl.commit(ops);
  return ops;
}

std::vector<Piece> pieces(const IntervalPlanner& pl, SetKind s) {
  std::vector<Piece> out;
  for (const auto& [lo, p] : pl.installed(s)) out.push_back(p);
  return out;
}

TEST(NftIntervals, SinglePrefixBecomesOneRange) {
  IntervalPlanner pl;
  pl.upsert(R("198.51.100.0/24", 1, 1000));
  auto ops = run(pl, 0);
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_TRUE(ops[0].add);
  EXPECT_EQ(ops[0].set, SetKind::egress4);
  EXPECT_EQ(ops[0].piece.lo, to_addr(P("198.51.100.0")));
  EXPECT_EQ(ops[0].piece.hi, to_addr(P("198.51.100.255")));
  EXPECT_EQ(ops[0].piece.expires_at, 1000);
  EXPECT_TRUE(pl.installed(SetKind::ingress4).empty());
  EXPECT_TRUE(run(pl, 0).empty());  // nothing changed: nothing to do
}

TEST(NftIntervals, WholeSpaceAndTopOfTheAddressSpace) {
  IntervalPlanner pl;
  pl.upsert(R("0.0.0.0/0", 1, 1000, Direction::ingress));
  pl.upsert(R("::/0", 2, 1000, Direction::ingress));
  pl.upsert(R("255.255.255.255/32", 3, 1000));
  pl.upsert(R("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", 4, 2000, Direction::ingress));
  pl.upsert(R("::/0", 5, 1000, Direction::ingress));  // replaces rule 2
  run(pl, 0);
  auto in4 = pieces(pl, SetKind::ingress4);
  ASSERT_EQ(in4.size(), 1u);
  EXPECT_EQ(in4[0].lo, 0u);
  EXPECT_EQ(in4[0].hi, family_max(Family::v4));
  auto eg4 = pieces(pl, SetKind::egress4);
  ASSERT_EQ(eg4.size(), 1u);
  EXPECT_EQ(eg4[0].lo, family_max(Family::v4));
  EXPECT_EQ(eg4[0].hi, family_max(Family::v4));
  // ::/0 (until 1000) with the top /120 (until 2000) nested at the very end.
  auto in6 = pieces(pl, SetKind::ingress6);
  ASSERT_EQ(in6.size(), 2u);
  EXPECT_EQ(in6[0].lo, 0u);
  EXPECT_EQ(in6[0].hi, to_addr(P("ffff:ffff:ffff:ffff:ffff:ffff:ffff:feff")));
  EXPECT_EQ(in6[0].expires_at, 1000);
  EXPECT_EQ(in6[0].owner->rule_id, 5u);
  EXPECT_EQ(in6[1].lo, to_addr(P("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00")));
  EXPECT_EQ(in6[1].hi, family_max(Family::v6));
  EXPECT_EQ(in6[1].expires_at, 2000);
  // A `both` rule over the whole space is one range in the both6 set.
  pl.upsert(R("::/0", 6, 3000, Direction::both));
  run(pl, 0);
  auto both6 = pieces(pl, SetKind::both6);
  ASSERT_EQ(both6.size(), 1u);
  EXPECT_EQ(both6[0].lo, 0u);
  EXPECT_EQ(both6[0].hi, family_max(Family::v6));
  // The ::/0 key now belongs to rule 6; only the /120 is still ingress-only.
  ASSERT_EQ(pieces(pl, SetKind::ingress6).size(), 1u);
  EXPECT_EQ(pieces(pl, SetKind::ingress6)[0].owner->rule_id, 4u);
}

TEST(NftIntervals, NestedRuleWithLaterExpirySplitsTheOuterRange) {
  IntervalPlanner pl;
  pl.upsert(R("10.0.0.0/8", 1, 100));
  pl.upsert(R("10.1.0.0/16", 2, 200));
  run(pl, 0);
  auto eg = pieces(pl, SetKind::egress4);
  ASSERT_EQ(eg.size(), 3u);
  EXPECT_EQ(eg[0].hi, to_addr(P("10.0.255.255")));
  EXPECT_EQ(eg[0].owner->rule_id, 1u);
  EXPECT_EQ(eg[1].lo, to_addr(P("10.1.0.0")));
  EXPECT_EQ(eg[1].hi, to_addr(P("10.1.255.255")));
  EXPECT_EQ(eg[1].expires_at, 200);
  EXPECT_EQ(eg[1].owner->rule_id, 2u);
  EXPECT_EQ(eg[2].lo, to_addr(P("10.2.0.0")));
  EXPECT_EQ(eg[2].hi, to_addr(P("10.255.255.255")));
  EXPECT_EQ(eg[2].expires_at, 100);

  // Extending the outer rule beyond the inner one makes it one range again.
  pl.upsert(R("10.0.0.0/8", 1, 300));
  auto ops = run(pl, 0);
  EXPECT_EQ(std::ranges::count_if(ops, [](auto& o) { return !o.add; }), 3);
  EXPECT_EQ(std::ranges::count_if(ops, [](auto& o) { return o.add; }), 1);
  eg = pieces(pl, SetKind::egress4);
  ASSERT_EQ(eg.size(), 1u);
  EXPECT_EQ(eg[0].expires_at, 300);
  // The dominated inner rule owns no piece but is still a rule.
  EXPECT_EQ(pl.rules(0).size(), 2u);

  // Removing the outer rule leaves exactly the inner one.
  EXPECT_TRUE(pl.erase(P("10.0.0.0/8")));
  run(pl, 0);
  eg = pieces(pl, SetKind::egress4);
  ASSERT_EQ(eg.size(), 1u);
  EXPECT_EQ(eg[0].lo, to_addr(P("10.1.0.0")));
  EXPECT_EQ(eg[0].owner->rule_id, 2u);
}

TEST(NftIntervals, DirectionsGoToTheirSets) {
  IntervalPlanner pl;
  pl.upsert(R("192.0.2.0/24", 1, 100, Direction::egress));
  pl.upsert(R("198.51.100.7", 2, 100, Direction::ingress));
  pl.upsert(R("2001:db8::/32", 3, 100, Direction::both));
  run(pl, 0);
  EXPECT_EQ(pieces(pl, SetKind::egress4).size(), 1u);
  EXPECT_EQ(pieces(pl, SetKind::ingress4).size(), 1u);
  EXPECT_EQ(pieces(pl, SetKind::both6).size(), 1u);  // one element serves both directions
  EXPECT_TRUE(pl.installed(SetKind::egress6).empty());
  EXPECT_TRUE(pl.installed(SetKind::ingress6).empty());
  EXPECT_EQ(pieces(pl, SetKind::ingress4)[0].lo, to_addr(P("198.51.100.7")));
  // Narrowing a rule from both to egress moves its element to the egress set.
  pl.upsert(R("2001:db8::/32", 3, 100, Direction::egress));
  auto ops = run(pl, 0);
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_FALSE(ops[0].add);
  EXPECT_EQ(ops[0].set, SetKind::both6);
  EXPECT_TRUE(ops[1].add);
  EXPECT_EQ(ops[1].set, SetKind::egress6);
  // Nested rules of different directions: each set holds its own direction's rules.
  pl.upsert(R("10.0.0.0/8", 4, 100, Direction::both));
  pl.upsert(R("10.1.0.0/16", 5, 200, Direction::egress));
  run(pl, 0);
  ASSERT_EQ(pieces(pl, SetKind::both4).size(), 1u);
  EXPECT_EQ(pieces(pl, SetKind::both4)[0].expires_at, 100);
  EXPECT_EQ(pieces(pl, SetKind::egress4).size(), 2u);  // 192.0.2.0/24 and 10.1.0.0/16
}

TEST(NftIntervals, AdjacentPrefixesStaySeparateRanges) {
  IntervalPlanner pl;
  pl.upsert(R("192.0.2.0/25", 1, 100));
  pl.upsert(R("192.0.2.128/25", 2, 100));
  run(pl, 0);
  auto eg = pieces(pl, SetKind::egress4);
  ASSERT_EQ(eg.size(), 2u);
  EXPECT_EQ(eg[0].hi + 1, eg[1].lo);
  // Removing one leaves the other untouched (no kernel op for it).
  pl.erase(P("192.0.2.0/25"));
  auto ops = run(pl, 0);
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_FALSE(ops[0].add);
  EXPECT_EQ(ops[0].piece.owner->rule_id, 1u);
}

TEST(NftIntervals, RollbackForgetsStagedChanges) {
  IntervalPlanner pl;
  pl.upsert(R("192.0.2.0/24", 1, 100));
  run(pl, 0);
  pl.begin();
  pl.upsert(R("192.0.2.0/24", 1, 500));
  pl.upsert(R("203.0.113.0/24", 2, 500));
  pl.erase(P("192.0.2.0/24"));
  pl.rollback();
  auto rules = pl.rules(0);
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].expires_at, 100);
  pl.begin();
  EXPECT_TRUE(pl.plan(0).empty());
}

TEST(NftIntervals, PruneDropsExpiredRulesAndPieces) {
  IntervalPlanner pl;
  pl.upsert(R("192.0.2.0/24", 1, 100));
  pl.upsert(R("203.0.113.0/24", 2, 500));
  run(pl, 0);
  pl.prune(100);
  EXPECT_EQ(pl.rule_count(), 1u);
  EXPECT_EQ(pieces(pl, SetKind::egress4).size(), 1u);
}

TEST(NftIntervals, OwnerCommentRoundTrip) {
  BlockRule r = R("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 18446744073709551615ull,
                  1'700'000'000'123, Direction::both);
  auto c = owner_comment(r);
  EXPECT_LT(c.size(), 128u);
  auto back = parse_owner_comment(c);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->prefix, r.prefix);
  EXPECT_EQ(back->rule_id, r.rule_id);
  EXPECT_EQ(back->direction, r.direction);
  EXPECT_EQ(back->expires_at, r.expires_at);
  EXPECT_FALSE(parse_owner_comment("hand-made comment"));
  EXPECT_FALSE(parse_owner_comment("rule=1 prefix=10.0.0.1/8 dir=both exp=5"));  // host bits
  EXPECT_FALSE(parse_owner_comment("rule=1 prefix=10.0.0.0/8 dir=sideways exp=5"));
}

// Reference: the expiry an address should have = latest expiry of the live rules covering it.
TimeMs reference(const std::vector<BlockRule>& rules, const Prefix& addr, TimeMs now) {
  TimeMs best = 0;
  for (const auto& r : rules)
    if (r.expires_at > now && covers_egress(r.direction) && r.prefix.contains(addr))
      best = std::max(best, r.expires_at);
  return best;
}

TEST(NftIntervals, IncrementalPlansMatchTheRulesAtEveryStep) {
  std::mt19937_64 rng(7);
  IntervalPlanner pl;
  std::map<Prefix, BlockRule> model;
  const std::uint8_t lens[] = {8, 12, 16, 20, 24, 28, 30, 32};
  auto random_prefix = [&] {
    // All inside 10.0.0.0/8 (plus the /8 itself) so that rules nest a lot.
    return Prefix::v4(0x0a000000u | (static_cast<std::uint32_t>(rng()) & 0x00ffffffu),
                      lens[rng() % 8]);
  };
  TimeMs now = 0;
  for (int step = 0; step < 300; ++step) {
    now += static_cast<TimeMs>(rng() % 5);
    pl.begin();
    pl.prune(now);
    std::erase_if(model, [&](const auto& kv) { return kv.second.expires_at <= now; });
    for (int k = 0; k < 4; ++k) {
      if (rng() % 3 == 0 && !model.empty()) {
        auto it = std::next(model.begin(), static_cast<long>(rng() % model.size()));
        EXPECT_TRUE(pl.erase(it->first));
        model.erase(it);
      } else {
        BlockRule r{random_prefix(), Direction::egress, rng() % 1000,
                    now + 1 + static_cast<TimeMs>(rng() % 100)};
        pl.upsert(r);
        model[r.prefix] = r;
      }
    }
    auto ops = pl.plan(now);
    pl.commit(ops);
    std::vector<BlockRule> rules;
    for (auto& [p, r] : model) rules.push_back(r);
    // Pieces are disjoint, sorted, and each carries the reference expiry at its ends.
    const auto& inst = pl.installed(SetKind::egress4);
    Addr128 prev_hi = 0;
    bool first = true;
    for (const auto& [lo, piece] : inst) {
      ASSERT_LE(piece.lo, piece.hi);
      if (!first) {
        ASSERT_GT(piece.lo, prev_hi) << "overlapping pieces at step " << step;
      }
      first = false;
      prev_hi = piece.hi;
      for (Addr128 a : {piece.lo, piece.hi, piece.lo + (piece.hi - piece.lo) / 2})
        ASSERT_EQ(reference(rules, from_addr(Family::v4, a, 32), now), piece.expires_at)
            << "step " << step;
    }
    // And random addresses outside every piece are covered by no live rule.
    for (int q = 0; q < 50; ++q) {
      const Addr128 a = 0x0a000000u | (static_cast<std::uint32_t>(rng()) & 0x00ffffffu);
      auto it = inst.upper_bound(a);
      const bool in_piece = it != inst.begin() && std::prev(it)->second.hi >= a;
      const TimeMs want = reference(rules, from_addr(Family::v4, a, 32), now);
      ASSERT_EQ(in_piece, want > 0) << "step " << step;
      if (in_piece) {
        ASSERT_EQ(std::prev(it)->second.expires_at, want);
      }
    }
  }
}

}  // namespace
}  // namespace meshd::sensor::nft

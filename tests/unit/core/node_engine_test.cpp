// The engine's inputs outside gossip go through the Node: their block changes come back in
// Actions::blocks and Actions::next_deadline includes the engine's deadline.
#include <gtest/gtest.h>

#include "meshd/core/node.hpp"
#include "tests/unit/core/fake_opener.hpp"

namespace meshd::core::test {
namespace {

const Prefix kTarget = *Prefix::parse("203.0.113.7/32");

bool has(const Actions& a, trust::BlockChange::Kind kind) {
  for (const auto& b : a.blocks)
    if (b.kind == kind && b.prefix == kTarget) return true;
  return false;
}

// A node that enforces kTarget on one high-confidence claim.
struct Enforcing : ::testing::Test {
  Registry reg;
  TestNode t{reg, "me", "dA"};
  void SetUp() override {
    t.node.on_peer_up(1, kT0);
    Actions a = t.node.on_message(1, Push{reg.make(Spec{.origin = "n1", .seq = 1})}, kT0 + 1);
    ASSERT_TRUE(has(a, trust::BlockChange::Kind::enforce));
    ASSERT_TRUE(t.node.enforced(kTarget));
  }
};

TEST_F(Enforcing, SetProtectedLiftsTheBlockThroughActions) {
  Actions out;
  t.node.set_protected({{kTarget, "test", false}}, kT0 + 2, out);
  EXPECT_TRUE(has(out, trust::BlockChange::Kind::lift));
  EXPECT_FALSE(t.node.enforced(kTarget));
  EXPECT_EQ(out.next_deadline, t.node.next_deadline());
}

TEST_F(Enforcing, NextDeadlineIncludesTheEngineExpiry) {
  Actions out;
  t.node.register_origin("n2", "dB", kT0 + 2, out);
  const auto block = t.node.enforced(kTarget);
  ASSERT_TRUE(block);
  EXPECT_LE(out.next_deadline, block->expires_at);
  EXPECT_TRUE(out.blocks.empty());
}

TEST_F(Enforcing, InvalidParamsChangeNothing) {
  trust::Params bad;
  bad.ttl_max_ms = -1;
  Actions out;
  auto r = t.node.set_params(bad, kT0 + 2, out);
  ASSERT_FALSE(r);
  EXPECT_TRUE(out.blocks.empty());
  EXPECT_TRUE(t.node.enforced(kTarget));
}

TEST_F(Enforcing, LocalContradictionLowersTheClaimantsTrust) {
  const double before = t.node.ledger().trust("n1", kT0 + 2);
  Actions out;
  t.node.on_local_contradiction(kTarget, kT0 + 2, out);
  EXPECT_LT(t.node.ledger().trust("n1", kT0 + 2), before);
  EXPECT_EQ(out.next_deadline, t.node.next_deadline());
}

// Trust gains are batched by the engine (feedback_flush_ms) and applied by its tick: a driver
// that only follows the Node's deadlines gets them applied.
TEST_F(Enforcing, LocalCorroborationRaisesTheClaimantsTrustByFollowingTheDeadlines) {
  const double before = t.node.ledger().trust("n1", kT0 + 2);
  Actions out;
  t.node.on_local_corroboration(kTarget, kT0 + 2, out);
  const TimeMs flushed = kT0 + 2 + trust::Params{}.feedback_flush_ms;
  TimeMs now = kT0 + 2;
  for (int i = 0; i < 1000 && now <= flushed; ++i) {
    ASSERT_NE(out.next_deadline, kNoDeadline);
    now = std::max(now, out.next_deadline);
    out = t.node.tick(now);
  }
  EXPECT_GT(t.node.ledger().trust("n1", now), before);
}

TEST_F(Enforcing, RestoredLedgerKeepsTrust) {
  const double trust_n1 = t.node.ledger().trust("n1", kT0 + 2);
  auto saved = t.node.ledger().serialize();
  Registry reg2;
  TestNode fresh(reg2, "me", "dA");
  auto ledger = trust::TrustLedger::deserialize(saved, trust::Params{});
  ASSERT_TRUE(ledger) << ledger.error().message;
  Actions out;
  fresh.node.restore_ledger(std::move(*ledger), kT0 + 2, out);
  EXPECT_DOUBLE_EQ(fresh.node.ledger().trust("n1", kT0 + 2), trust_n1);
  EXPECT_EQ(fresh.node.engine_stats().claims_received, 0u);
  EXPECT_EQ(t.node.engine_stats().claims_received, 1u);
  EXPECT_EQ(t.node.decide(kTarget, kT0 + 2).verdict,
            t.node.explain(kTarget, kT0 + 2).decision.verdict);
  EXPECT_EQ(t.node.explain_overlapping(*Prefix::parse("203.0.113.0/24"), kT0 + 2).size(), 1u);
  EXPECT_EQ(t.node.enforced().size(), 1u);
}

}  // namespace
}  // namespace meshd::core::test

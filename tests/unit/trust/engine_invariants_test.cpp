// One named test per blast-radius invariant I1-I8 (trust/README.md), each on a concrete scenario.
// The property tests (engine_property_test.cpp) check the same invariants on random inputs.
#include <gtest/gtest.h>

#include "tests/unit/trust/engine_fixture.hpp"
#include "trust/policy.hpp"

namespace meshd::trust {
namespace {

using namespace testing;
using K = BlockChange::Kind;

TEST(TrustEngine, Invariant_I1_Protected) {
  Params params;
  std::vector<ProtectedPrefix> prot = {{P("10.1.2.3/32"), "kubernetes api", true},
                                       {P("192.168.0.1/32"), "own address", false}};
  Engine e(params, context(nullptr, prot), T0);
  // Strong, corroborated evidence on a /16 that contains the protected /32: never enforced,
  // and not misbehaviour (an honest broad claim may include it).
  auto l = trusted_ledger(params, {{"a", "z1"}, {"b", "z2"}, {"c", "z3"}}, 100, T0);
  e.restore_ledger(l, T0);
  for (auto [n, d] : {std::pair{"a", "z1"}, {"b", "z2"}, {"c", "z3"}}) {
    auto o = e.on_claim(claim(n, d, 1, "10.1.0.0/16", 1.0, T0, Severity::critical), D(1), T0);
    EXPECT_EQ(o.status, ClaimStatus::accepted);
    EXPECT_EQ(count_kind(o.changes, K::enforce), 0);
  }
  auto dec = e.decide(P("10.1.0.0/16"), T0);
  EXPECT_FALSE(dec.enforce);
  EXPECT_EQ(dec.verdict, Verdict::protected_prefix);
  EXPECT_TRUE(std::isinf(dec.cost));
  EXPECT_TRUE(e.enforced().empty());
  // /0 overlaps everything protected: never enforced either.
  e.on_claim(claim("a", "z1", 2, "0.0.0.0/0", 1.0), D(2), T0);
  EXPECT_FALSE(e.decide(P("0.0.0.0/0"), T0).enforce);
  // Targeting the fleet-wide protected address exactly is misbehaviour.
  auto bad = e.on_claim(claim("b", "z2", 2, "10.1.2.3"), D(3), T0);
  EXPECT_EQ(bad.status, ClaimStatus::misbehaviour);
  ASSERT_TRUE(bad.misbehaviour);
  EXPECT_EQ(bad.misbehaviour->kind, MisbehaviourKind::protected_target);
  EXPECT_TRUE(e.check_misbehaviour(*bad.misbehaviour).has_value());
  EXPECT_EQ(e.ledger().trust("b", T0), 0.0);
  // A node-local protected address: rejected, not provable misbehaviour.
  auto local = e.on_claim(claim("c", "z3", 2, "192.168.0.1"), D(4), T0);
  EXPECT_EQ(local.status, ClaimStatus::rejected);
  EXPECT_EQ(local.error->code, "protected");
  // Builtins: loopback is protected without configuration.
  auto lo = e.on_claim(claim("c", "z3", 3, "127.0.0.1"), D(5), T0);
  EXPECT_EQ(lo.status, ClaimStatus::misbehaviour);
  // Operators cannot block it either.
  auto r = e.on_operator_decision(op(OperatorDecision::Action::block, "10.1.0.0/16"), T0);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "protected");
  // A prefix that becomes protected later is lifted at once.
  auto ok = e.on_claim(claim("a", "z1", 3, "10.9.9.9", 1.0), D(6), T0);
  ASSERT_TRUE(find_change(ok.changes, P("10.9.9.9"), K::enforce));
  prot.push_back({P("10.9.0.0/16"), "new service", true});
  auto lifted = e.set_protected(prot, T0 + 1);
  EXPECT_TRUE(find_change(lifted, P("10.9.9.9"), K::lift));
  EXPECT_TRUE(e.enforced().empty());
}

TEST(TrustEngine, Invariant_I2_SingleDomainCap) {
  Params params;
  Engine e(params, context(), T0);
  std::vector<std::pair<std::string, std::string>> nodes;
  for (int i = 0; i < 50; ++i) nodes.emplace_back("n" + std::to_string(i), "zone-a");
  e.restore_ledger(trusted_ledger(params, nodes, 1e6, T0), T0);
  EXPECT_NEAR(e.ledger().trust("n0", T0), params.t_cap, 1e-3);
  for (int i = 0; i < 50; ++i)
    e.on_claim(claim("n" + std::to_string(i), "zone-a", 1, "203.0.113.7", 1.0), D(i), T0);
  auto d = e.decide(P("203.0.113.7"), T0);
  EXPECT_EQ(d.domains, 1u);
  EXPECT_TRUE(d.single_domain);
  EXPECT_LE(d.score, params.s_cap);
  EXPECT_DOUBLE_EQ(d.score, params.s_cap);
  // A costly target (threshold above s_cap) cannot be enforced by one domain, however many
  // of its nodes agree; a second domain makes it.
  FakeUsage usage;
  // C = 12.5: threshold 0.76, between s_cap and two domains. One local source: the usage cost
  // only, no benign evidence (that case is Collusion_* in engine_collusion_test.cpp).
  usage.set(P("198.51.100.1"), 200, 1);
  Engine e2(params, context(&usage), T0);
  nodes.emplace_back("other", "zone-b");
  e2.restore_ledger(trusted_ledger(params, nodes, 1e6, T0), T0);
  for (int i = 0; i < 50; ++i)
    e2.on_claim(claim("n" + std::to_string(i), "zone-a", 1, "198.51.100.1", 1.0), D(i), T0);
  auto costly = e2.decide(P("198.51.100.1"), T0);
  EXPECT_GT(costly.threshold, params.s_cap);
  EXPECT_FALSE(costly.enforce);
  auto o = e2.on_claim(claim("other", "zone-b", 1, "198.51.100.1", 1.0), D(99), T0);
  EXPECT_TRUE(find_change(o.changes, P("198.51.100.1"), K::enforce));
  EXPECT_NEAR(e2.decide(P("198.51.100.1"), T0).score, 1 - (1 - params.s_cap) * (1 - params.s_cap),
              1e-9);
}

// The severity (hence B) is the claimant's own word: one domain alone can invoke at most
// benefit_single_max, so even a fully trusted domain cannot justify a block costing more than
// benefit_single_max * s_cap / (1 - s_cap); a second domain unlocks the claimed severity.
TEST(TrustEngine, Invariant_I2_SingleDomainBenefitCap) {
  Params params;
  ASSERT_LT(params.benefit_single_max, params.benefit_critical);
  FakeUsage usage;
  // C = 1 + 1.5 log2(31) = 8.43: between 6 and 12 (one local source: no benign evidence).
  usage.set(P("198.51.100.9"), 30, 1);
  Engine e(params, context(&usage), T0);
  e.restore_ledger(trusted_ledger(params, {{"n0", "zone-a"}, {"n1", "zone-b"}}, 1e6, T0), T0);
  auto o =
      e.on_claim(claim("n0", "zone-a", 1, "198.51.100.9", 1.0, T0, Severity::critical), D(1), T0);
  EXPECT_FALSE(find_change(o.changes, P("198.51.100.9"), K::enforce));
  auto d = e.decide(P("198.51.100.9"), T0);
  EXPECT_TRUE(d.single_domain);
  EXPECT_DOUBLE_EQ(d.score, params.s_cap);
  EXPECT_DOUBLE_EQ(d.benefit, params.benefit_single_max);
  // Uncapped, B = 8 would put the threshold at 0.51 < s_cap: the cap is what refuses it.
  EXPECT_LT(d.cost / (params.benefit_critical + d.cost), params.s_cap);
  EXPECT_GT(d.threshold, params.s_cap);
  auto o2 =
      e.on_claim(claim("n1", "zone-b", 1, "198.51.100.9", 1.0, T0, Severity::critical), D(2), T0);
  EXPECT_TRUE(find_change(o2.changes, P("198.51.100.9"), K::enforce));
  EXPECT_DOUBLE_EQ(e.decide(P("198.51.100.9"), T0).benefit, params.benefit_critical);
}

// What the local demo relies on, at default parameters and a brand-new origin (the prior):
// a threat-feed claim (confidence 0.9, severity high) on an address nobody uses is enforced
// on receipt; a critical, confidence-1.0 claim on a service this node used 50 times in the
// usage window is refused.
TEST(TrustEngine, DefaultsEnforceFeedClaimAndRefuseLieOnUsedService) {
  Params params;
  FakeUsage usage;
  usage.set(P("192.0.2.201"), 50);
  Engine e(params, context(&usage), T0);
  auto feed =
      e.on_claim(claim("node2", "zone-2", 1, "192.0.2.66", 0.9, T0, Severity::high), D(1), T0);
  EXPECT_TRUE(find_change(feed.changes, P("192.0.2.66"), K::enforce));
  auto lie =
      e.on_claim(claim("node3", "zone-3", 1, "192.0.2.201", 1.0, T0, Severity::critical), D(2), T0);
  EXPECT_EQ(lie.status, ClaimStatus::accepted);
  EXPECT_FALSE(find_change(lie.changes, P("192.0.2.201"), K::enforce));
  EXPECT_EQ(e.decide(P("192.0.2.201"), T0).verdict, Verdict::below_threshold);
}

TEST(TrustEngine, Invariant_I3_Budget) {
  Params params;
  Engine e(params, context(), T0);
  // One origin at the prior: bucket = burst * prior / t_cap tokens.
  double cap = params.budget_burst * params.prior / params.t_cap;
  int enforced = 0, pending = 0;
  for (int i = 0; i < 40; ++i) {
    std::string ip = "203.0.113." + std::to_string(i + 1);
    auto o = e.on_claim(claim("x", "z1", static_cast<std::uint64_t>(i + 1), ip.c_str()), D(i), T0);
    ASSERT_EQ(o.status, ClaimStatus::accepted);
    enforced += count_kind(o.changes, K::enforce);
    pending += e.decide(P(ip.c_str()), T0).verdict == Verdict::pending_budget;
  }
  EXPECT_EQ(enforced, static_cast<int>(cap));
  EXPECT_EQ(pending, 40 - enforced);
  EXPECT_EQ(e.stats().budget_deferrals, static_cast<std::uint64_t>(pending));
  auto x = e.explain(P("203.0.113.40"), T0);
  EXPECT_TRUE(x.budget.applies);
  EXPECT_TRUE(x.budget.pending);
  EXPECT_EQ(x.budget.origin, "x");
  EXPECT_GT(x.budget.retry_at, T0);
  // Excess waits and is re-considered when tokens refill: one minute later about
  // rate * prior / t_cap more blocks, no more.
  std::vector<BlockChange> later;
  TimeMs now = T0;
  while (auto dl = e.next_deadline()) {
    if (*dl > T0 + kMinute) break;
    now = *dl;
    auto ch = e.tick(now);
    later.insert(later.end(), ch.begin(), ch.end());
  }
  double refill = params.budget_rate_per_min * params.prior / params.t_cap;
  int more = count_kind(later, K::enforce);
  EXPECT_GE(more, static_cast<int>(refill) - 1);
  EXPECT_LE(more, static_cast<int>(refill) + 1);
  // Another domain corroborating a pending target needs no budget: enforced at once.
  auto o = e.on_claim(claim("y", "z2", 1, "203.0.113.40"), D(100), now);
  EXPECT_TRUE(find_change(o.changes, P("203.0.113.40"), K::enforce));
}

TEST(TrustEngine, Invariant_I3_GrossOverrunIsMisbehaviour) {
  Params params;
  params.overrun_max_claims = 50;
  Engine e(params, context(), T0);
  std::optional<MisbehaviourRecord> rec;
  for (int i = 0; i < 60 && !rec; ++i) {
    std::string ip = "198.18.0." + std::to_string(i + 1);
    auto o = e.on_claim(
        claim("flood", "z1", static_cast<std::uint64_t>(i + 1), ip.c_str(), 0.9, T0 + i * 100),
        D(i), T0 + i * 100);
    if (o.misbehaviour) rec = o.misbehaviour;
  }
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->kind, MisbehaviourKind::budget_overrun);
  EXPECT_EQ(rec->claims.size(), 51u);
  EXPECT_TRUE(e.check_misbehaviour(*rec).has_value());
  EXPECT_EQ(e.ledger().trust("flood", T0 + 6000), 0.0);
  EXPECT_TRUE(e.enforced().empty());  // its blocks were lifted in the same call
  // Another node verifies the record independently; a trimmed copy does not verify.
  Engine other(params, context(), T0);
  EXPECT_TRUE(other.check_misbehaviour(*rec).has_value());
  auto trimmed = *rec;
  trimmed.claims.resize(50);
  EXPECT_FALSE(other.check_misbehaviour(trimmed).has_value());
}

TEST(TrustEngine, Invariant_I4_BoundedLifetime) {
  Params params;
  Engine e(params, context(), T0);
  // Single domain: at most ttl_single, even when the claim asks for a day and is renewed.
  auto o = e.on_claim(claim("a", "z1", 1, "203.0.113.9", 0.9, T0, Severity::critical, 24 * kHour),
                      D(1), T0);
  auto* enf = find_change(o.changes, P("203.0.113.9"), K::enforce);
  ASSERT_TRUE(enf);
  EXPECT_LE(enf->expires_at, T0 + params.ttl_single_ms);
  auto again = e.on_claim(
      claim("a", "z1", 2, "203.0.113.9", 0.9, T0 + kMinute, Severity::critical, 24 * kHour), D(2),
      T0 + kMinute);
  for (auto& c : again.changes) EXPECT_LE(c.expires_at, T0 + params.ttl_single_ms);
  // tick() at expiry lifts it; the spent claims do not bring it back.
  auto lifted = e.tick(T0 + params.ttl_single_ms);
  EXPECT_TRUE(find_change(lifted, P("203.0.113.9"), K::lift));
  EXPECT_FALSE(e.enforced(P("203.0.113.9")));
  EXPECT_FALSE(e.decide(P("203.0.113.9"), T0 + params.ttl_single_ms).enforce);
  // Corroborated by a second domain: longer than ttl_single, never beyond ttl_max.
  TimeMs t1 = T0 + kHour;
  e.on_claim(claim("a", "z1", 3, "203.0.113.10", 1.0, t1, Severity::critical, 48 * kHour), D(3),
             t1);
  auto c2 = e.on_claim(claim("b", "z2", 1, "203.0.113.10", 1.0, t1, Severity::critical, 48 * kHour),
                       D(4), t1);
  ASSERT_FALSE(c2.changes.empty());
  EXPECT_GT(c2.changes.back().expires_at, t1 + params.ttl_single_ms);
  EXPECT_LE(c2.changes.back().expires_at, t1 + params.ttl_max_ms);
  // Drive the clock: every block is gone by ttl_max after the last claim.
  TimeMs now = t1;
  while (auto dl = e.next_deadline()) {
    if (*dl > t1 + 2 * params.ttl_max_ms) break;
    now = *dl;
    e.tick(now);
  }
  EXPECT_TRUE(e.enforced().empty());
  EXPECT_LE(now, t1 + 2 * params.ttl_max_ms);
}

TEST(TrustEngine, Invariant_I5_MisbehaviourQuarantine) {
  Params params;
  Engine e(params, context(), T0);
  auto ok = e.on_claim(claim("evil", "z1", 7, "203.0.113.1"), D(1), T0);
  ASSERT_TRUE(find_change(ok.changes, P("203.0.113.1"), K::enforce));
  // Same origin and sequence, different body: equivocation.
  auto eq = e.on_claim(claim("evil", "z1", 7, "203.0.113.2"), D(2), T0 + 10);
  EXPECT_EQ(eq.status, ClaimStatus::misbehaviour);
  ASSERT_TRUE(eq.misbehaviour);
  EXPECT_EQ(eq.misbehaviour->kind, MisbehaviourKind::equivocation);
  EXPECT_EQ(eq.misbehaviour->claims.size(), 2u);
  EXPECT_NE(eq.misbehaviour->claims[0].digest, eq.misbehaviour->claims[1].digest);
  EXPECT_TRUE(e.check_misbehaviour(*eq.misbehaviour).has_value());
  // Quarantined: trust 0, its block lifted in the same call, new claims rejected.
  EXPECT_EQ(e.ledger().trust("evil", T0 + 10), 0.0);
  EXPECT_TRUE(find_change(eq.changes, P("203.0.113.1"), K::lift));
  auto later = e.on_claim(claim("evil", "z1", 8, "203.0.113.3"), D(3), T0 + 20);
  EXPECT_EQ(later.status, ClaimStatus::rejected);
  EXPECT_EQ(later.error->code, "quarantined");
  // Another node applies the proof: it verifies it and lifts what rested on the origin.
  Engine other(params, context(), T0);
  auto o2 = other.on_claim(claim("evil", "z1", 7, "203.0.113.1"), D(1), T0);
  ASSERT_TRUE(find_change(o2.changes, P("203.0.113.1"), K::enforce));
  ASSERT_TRUE(other.check_misbehaviour(*eq.misbehaviour).has_value());
  auto lifted = other.apply_proof("evil", T0 + 30);
  EXPECT_TRUE(find_change(lifted, P("203.0.113.1"), K::lift));
  EXPECT_EQ(other.stats().proofs_applied, 1u);
  // A forged record (same digests) does not verify.
  auto forged = *eq.misbehaviour;
  forged.claims[1].digest = forged.claims[0].digest;
  EXPECT_FALSE(other.check_misbehaviour(forged).has_value());
  // After the quarantine the origin comes back, with low trust.
  TimeMs end = T0 + 10 + params.quarantine_ms;
  e.tick(end);
  double t = e.ledger().trust("evil", end);
  EXPECT_GT(t, 0.0);
  EXPECT_LT(t, params.prior / 2);
}

TEST(TrustEngine, Invariant_I6_RetroactiveRetraction) {
  Params params;
  FakeUsage usage;
  usage.set(P("203.0.113.50"), 1);  // C = 2.5: threshold 0.385, just under 0.5 * 0.9
  Engine e(params, context(&usage), T0);
  auto a = e.on_claim(claim("liar", "z1", 1, "203.0.113.50"), D(1), T0);
  ASSERT_TRUE(find_change(a.changes, P("203.0.113.50"), K::enforce));
  auto b = e.on_claim(claim("liar", "z1", 2, "203.0.113.60"), D(2), T0);
  ASSERT_TRUE(find_change(b.changes, P("203.0.113.60"), K::enforce));
  // The operator unblocks .60 as a false positive: liar's trust drops, and its other block,
  // which no longer clears its threshold, is lifted by the same call.
  auto unblock = op(OperatorDecision::Action::unblock, "203.0.113.60");
  unblock.false_positive = true;
  auto r = e.on_operator_decision(unblock, T0 + 1000);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(find_change(*r, P("203.0.113.60"), K::lift));
  EXPECT_TRUE(find_change(*r, P("203.0.113.50"), K::lift));
  EXPECT_LT(e.ledger().trust("liar", T0 + 1000), params.prior / 2);
  EXPECT_TRUE(e.enforced().empty());
  // Retraction: the claim is withdrawn, the block lifted in the same call.
  auto c = e.on_claim(claim("honest", "z2", 1, "203.0.113.70"), D(3), T0 + 2000);
  ASSERT_TRUE(find_change(c.changes, P("203.0.113.70"), K::enforce));
  auto rt = e.on_retraction("honest", 1, T0 + 3000);
  EXPECT_EQ(rt.status, RetractionStatus::applied);
  EXPECT_TRUE(find_change(rt.changes, P("203.0.113.70"), K::lift));
  // Local benign evidence against a claimant also re-evaluates at once.
  auto d = e.on_claim(claim("h2", "z3", 1, "203.0.113.50"), D(4), T0 + 4000);
  ASSERT_TRUE(find_change(d.changes, P("203.0.113.50"), K::enforce));
  auto contra = e.on_local_contradiction(P("203.0.113.50"), T0 + 5000);
  EXPECT_TRUE(find_change(contra, P("203.0.113.50"), K::lift));
}

TEST(TrustEngine, Invariant_I7_HonestFastPath) {
  Params params;
  Engine e(params, context(), T0);
  e.restore_ledger(trusted_ledger(params, {{"good", "z1"}}, 20, T0), T0);
  EXPECT_GT(e.ledger().trust("good", T0), 0.75);
  // The very call that delivers the claim returns the enforcement: no quorum wait.
  auto o = e.on_claim(claim("good", "z1", 1, "198.51.100.77", 0.95), D(1), T0);
  EXPECT_EQ(o.status, ClaimStatus::accepted);
  auto* enf = find_change(o.changes, P("198.51.100.77"), K::enforce);
  ASSERT_TRUE(enf);
  EXPECT_EQ(enf->direction, Direction::egress);
  EXPECT_GT(enf->expires_at, T0);
  // A brand-new origin at the prior also gets a cheap target blocked at once.
  auto n = e.on_claim(claim("new", "z2", 1, "198.51.100.78", 0.95), D(2), T0);
  EXPECT_TRUE(find_change(n.changes, P("198.51.100.78"), K::enforce));
  // The node's own detections are enforced at once too.
  auto s = e.on_claim(claim("self", "zone-self", 1, "198.51.100.79", 0.8), D(3), T0);
  EXPECT_TRUE(find_change(s.changes, P("198.51.100.79"), K::enforce));
}

// Feeds the same scripted inputs to an engine and returns every output, rendered.
std::string run_script(const Params& params, const TrustLedger* ledger) {
  FakeUsage usage;
  usage.set(P("203.0.113.5"), 3);
  Engine e(params, context(&usage, {{P("10.0.0.1/32"), "dns", true}}), T0);
  std::string out;
  auto dump = [&](const std::vector<BlockChange>& v) {
    for (auto& c : v)
      out += std::string(to_string(c.kind)) + " " + c.prefix.to_string() + " " +
             std::to_string(c.expires_at) + " " + std::to_string(c.score) + "\n";
  };
  if (ledger) dump(e.restore_ledger(*ledger, T0));
  for (int i = 0; i < 30; ++i) {
    std::string ip = "203.0.113." + std::to_string(i % 7 + 1);
    std::string node = "n" + std::to_string(i % 5), dom = "z" + std::to_string(i % 3);
    auto o = e.on_claim(claim(node.c_str(), dom.c_str(), static_cast<std::uint64_t>(i + 1),
                              ip.c_str(), 0.5 + 0.015 * i, T0 + i * 1000),
                        D(i), T0 + i * 1000);
    out += std::string(to_string(o.status)) + "\n";
    dump(o.changes);
    dump(e.tick(T0 + i * 1000 + 500));
  }
  dump(e.on_retraction("n1", 2, T0 + 40000).changes);
  dump(e.tick(T0 + 2 * kHour));
  for (int i = 1; i <= 7; ++i) {
    std::string ip = "203.0.113." + std::to_string(i);
    out += format_explanation(e.explain(P(ip.c_str()), T0 + kHour));
  }
  out += e.ledger().serialize();
  return out;
}

TEST(TrustEngine, Invariant_I8_Determinism) {
  Params params;
  // Same inputs, same outputs: two independent runs agree byte for byte.
  std::string a = run_script(params, nullptr);
  std::string b = run_script(params, nullptr);
  EXPECT_EQ(a, b);
  EXPECT_NE(a.find("enforce"), std::string::npos);
  // decide() is pure: repeated calls agree and change nothing.
  Engine e(params, context(), T0);
  e.on_claim(claim("a", "z1", 1, "203.0.113.1"), D(1), T0);
  auto d1 = e.decide(P("203.0.113.1"), T0 + 5);
  auto x1 = format_explanation(e.explain(P("203.0.113.1"), T0 + 5));
  auto d2 = e.decide(P("203.0.113.1"), T0 + 5);
  EXPECT_EQ(d1.score, d2.score);
  EXPECT_EQ(d1.expires_at, d2.expires_at);
  EXPECT_EQ(x1, format_explanation(e.explain(P("203.0.113.1"), T0 + 5)));
  // The ledger is an input: a persisted ledger, restored, yields the same decisions.
  auto l = trusted_ledger(params, {{"n0", "z0"}, {"n1", "z1"}, {"n3", "z0"}}, 7.5, T0);
  auto text = l.serialize();
  auto back = TrustLedger::deserialize(text, params);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->serialize(), text);
  EXPECT_EQ(run_script(params, &l), run_script(params, &*back));
  EXPECT_NE(run_script(params, &l), a);  // and the ledger really matters
}

}  // namespace
}  // namespace meshd::trust

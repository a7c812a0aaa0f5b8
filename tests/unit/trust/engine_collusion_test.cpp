// Collusion resistance (trust/README.md "Collusion resistance"): one named test per rule.
//  - local benign evidence E raises the cost linearly (not log);
//  - the domains a target needs grow with E, up to the full quorum floor(D/3) + 1;
//  - the benefit claims may invoke is capped by the domains backing them;
//  - a claim contradicting strong benign evidence costs its origin trust (on arrival and on
//    a usage re-check), once per claim, and re-decides the origin's other targets (I6);
//  - every pivotal domain pays a budget token;
//  - corroboration is worth the corroborator's trust;
//  - the honest fast path (I7) is untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "tests/unit/trust/engine_fixture.hpp"
#include "trust/policy.hpp"

namespace meshd::trust {
namespace {

using namespace testing;
using K = BlockChange::Kind;

// A fleet of `domains` domains; origin "c<i>" is in domain "zone-<i>".
std::string node_of(int i) {
  return "c" + std::to_string(i);
}
std::string zone_of(int i) {
  return "zone-" + std::to_string(i);
}

Params fleet_params(std::uint32_t domains) {
  Params p;
  p.fleet_domains = domains;
  return p;
}

// Usage: 300 flows from 6 processes over 4 minutes: strong benign evidence at the defaults.
void strong(FakeUsage& u, const char* host) {
  u.set(P(host), 300, 6, 4 * kMinute);
}

TEST(TrustCollusion, Rule_BenignEvidenceRaisesCostLinearly) {
  Params p;
  const Prefix x = P("198.18.0.1");
  // Flows from one process, or flagged by a local detector, are no benign evidence.
  EXPECT_EQ(benign_flows(BenignEvidence{300, 1, kHour, false}, p), 0.0);
  EXPECT_EQ(benign_flows(BenignEvidence{300, 5, kHour, true}, p), 0.0);
  EXPECT_EQ(benign_flows(BenignEvidence{300, 2, 0, false}, p), 300.0);
  // Cost = the old usage term + cost_benign * E.
  EXPECT_DOUBLE_EQ(cost(x, 300, 300.0, p), cost(x, 300, p) + p.cost_benign * 300);
  EXPECT_DOUBLE_EQ(cost(x, 300, 0.0, p), cost(x, 300, p));
  // Linear: doubling E from 300 to 600 adds cost_benign * 300, the log term only ~1.5.
  EXPECT_GT(cost(x, 600, 600.0, p) - cost(x, 300, 300.0, p), 0.9 * p.cost_benign * 300);
  // Strong needs enough flows and a long enough span.
  EXPECT_TRUE(strong_benign(BenignEvidence{8, 2, kMinute, false}, p));
  EXPECT_FALSE(strong_benign(BenignEvidence{7, 2, kMinute, false}, p));
  EXPECT_FALSE(strong_benign(BenignEvidence{300, 2, kMinute - 1, false}, p));
  EXPECT_FALSE(strong_benign(BenignEvidence{300, 1, kHour, false}, p));
  // The engine uses it: explain shows E and the linear cost.
  FakeUsage u;
  strong(u, "198.18.0.1");
  Engine e(p, context(&u), T0);
  auto d = e.decide(x, T0);
  EXPECT_DOUBLE_EQ(d.benign, 300.0);
  EXPECT_TRUE(d.strong_benign);
  EXPECT_DOUBLE_EQ(d.cost, cost(x, 300, 300.0, p));
}

TEST(TrustCollusion, Rule_QuorumGrowsWithBenignEvidenceToMoreThanAThirdOfTheDomains) {
  Params p;
  EXPECT_EQ(quorum_max(0, p), 1u);
  EXPECT_EQ(quorum_max(2, p), 1u);
  EXPECT_EQ(quorum_max(3, p), 2u);
  EXPECT_EQ(quorum_max(6, p), 3u);  // 6/3 = 2 exactly: more than a third is 3
  EXPECT_EQ(quorum_max(20, p), 7u);
  EXPECT_EQ(quorum_max(21, p), 8u);
  const std::size_t q = quorum_max(20, p);
  EXPECT_EQ(required_domains(0, false, q, p), 1u);  // unused: the fast path
  EXPECT_EQ(required_domains(1, false, q, p), 2u);
  EXPECT_EQ(required_domains(3, false, q, p), 4u);
  EXPECT_EQ(required_domains(6, false, q, p), 7u);
  EXPECT_EQ(required_domains(500, false, q, p), 7u);
  EXPECT_EQ(required_domains(2, true, q, p), 7u);  // strong: always the full quorum
  p.quorum_flows_per_domain = 10;
  EXPECT_EQ(required_domains(25, false, q, p), 4u);
}

TEST(TrustCollusion, Rule_StrongBenignEvidenceNeedsTheFullQuorumWhateverTheTrust) {
  Params p = fleet_params(20);
  FakeUsage u;
  strong(u, "198.18.0.1");
  Engine e(p, context(&u), T0);
  std::vector<std::pair<std::string, std::string>> nodes;
  for (int i = 0; i < 10; ++i) nodes.emplace_back(node_of(i), zone_of(i));
  e.restore_ledger(trusted_ledger(p, nodes, 1e6, T0), T0);
  // Six domains at t_cap, confidence 1, critical: S = 1 - 0.4^6 = 0.996 >= threshold, but six
  // is not more than a third of 20 domains.
  for (int i = 0; i < 6; ++i) {
    auto o = e.on_claim(claim(node_of(i), zone_of(i), 1, "198.18.0.1", 1.0, T0, Severity::critical),
                        D(i), T0);
    EXPECT_FALSE(find_change(o.changes, P("198.18.0.1"), K::enforce)) << i;
  }
  auto d = e.decide(P("198.18.0.1"), T0);
  EXPECT_EQ(d.domains, 6u);
  EXPECT_EQ(d.domains_required, 7u);
  EXPECT_EQ(d.quorum_max, 7u);
  EXPECT_EQ(d.fleet_domains, 20u);
  EXPECT_EQ(d.verdict, Verdict::domains_short);
  EXPECT_FALSE(d.enforce);
  EXPECT_GT(e.stats().domains_short, 0u);
}

TEST(TrustCollusion, Rule_SomeBenignEvidenceNeedsOneMoreDomainPerFlow) {
  Params p = fleet_params(20);
  FakeUsage u;
  u.set(P("198.18.0.2"), 2, 2);  // E = 2: three domains
  Engine e(p, context(&u), T0);
  for (int i = 0; i < 2; ++i)
    e.on_claim(claim(node_of(i), zone_of(i), 1, "198.18.0.2", 1.0, T0, Severity::critical), D(i),
               T0);
  EXPECT_EQ(e.decide(P("198.18.0.2"), T0).verdict, Verdict::domains_short);
  auto o = e.on_claim(claim(node_of(2), zone_of(2), 1, "198.18.0.2", 1.0, T0, Severity::critical),
                      D(2), T0);
  EXPECT_TRUE(find_change(o.changes, P("198.18.0.2"), K::enforce));
  EXPECT_EQ(e.decide(P("198.18.0.2"), T0).domains_required, 3u);
}

TEST(TrustCollusion, Rule_BenefitIsCappedByTheDomainsBackingIt) {
  Params p = fleet_params(20);
  EXPECT_DOUBLE_EQ(benefit_cap(1, 7, p), p.benefit_single_max);
  EXPECT_DOUBLE_EQ(benefit_cap(4, 7, p),
                   p.benefit_single_max + (p.benefit_critical - p.benefit_single_max) * 3 / 6);
  EXPECT_DOUBLE_EQ(benefit_cap(7, 7, p), p.benefit_critical);
  EXPECT_DOUBLE_EQ(benefit_cap(9, 7, p), p.benefit_critical);
  Engine e(p, context(), T0);
  for (int i = 0; i < 2; ++i)
    e.on_claim(claim(node_of(i), zone_of(i), 1, "203.0.113.9", 1.0, T0, Severity::critical), D(i),
               T0);
  auto d = e.decide(P("203.0.113.9"), T0);
  EXPECT_DOUBLE_EQ(d.benefit_claimed, p.benefit_critical);
  EXPECT_DOUBLE_EQ(d.benefit_cap, benefit_cap(2, 7, p));
  EXPECT_DOUBLE_EQ(d.benefit, benefit_cap(2, 7, p));
}

TEST(TrustCollusion, Rule_ContradictionLowersTheClaimantsTrustOncePerClaim) {
  Params p = fleet_params(20);
  FakeUsage u;
  strong(u, "198.18.0.1");
  u.set(P("203.0.113.50"), 1, 1);  // one flow from one process: C = 2.5, threshold 0.385
  Engine e(p, context(&u), T0);
  // The colluder first gets a cheap target blocked on its own support ...
  auto cheap = e.on_claim(claim("x", "z1", 1, "203.0.113.50", 1.0), D(1), T0);
  EXPECT_TRUE(find_change(cheap.changes, P("203.0.113.50"), K::enforce));
  const double before = e.ledger().trust("x", T0);
  // ... then claims what this node sees working: it loses trust in the same call, and the
  // block it carried falls below the threshold (I6).
  auto o = e.on_claim(claim("x", "z1", 2, "198.18.0.1", 1.0, T0, Severity::critical), D(2), T0);
  EXPECT_EQ(o.status, ClaimStatus::accepted);
  EXPECT_TRUE(o.contradicted);
  const double after = e.ledger().trust("x", T0);
  EXPECT_LT(after, before);
  const auto* entry = e.ledger().find("x");
  ASSERT_TRUE(entry);
  EXPECT_DOUBLE_EQ(entry->neg, p.gain * p.loss_ratio * p.weight_contradiction);
  EXPECT_EQ(e.stats().contradictions, 1u);
  EXPECT_TRUE(find_change(o.changes, P("203.0.113.50"), K::lift));
  // The same claim again (gossip duplicate) costs nothing more; a new claim does.
  auto dup = e.on_claim(claim("x", "z1", 2, "198.18.0.1", 1.0, T0, Severity::critical), D(2), T0);
  EXPECT_EQ(dup.status, ClaimStatus::duplicate);
  EXPECT_EQ(e.ledger().trust("x", T0), after);
  auto again = e.on_claim(claim("x", "z1", 3, "198.18.0.1", 1.0, T0, Severity::critical), D(3), T0);
  EXPECT_TRUE(again.contradicted);
  EXPECT_LT(e.ledger().trust("x", T0), after);
  auto x = e.explain(P("198.18.0.1"), T0);
  ASSERT_EQ(x.claims.size(), 1u);
  EXPECT_TRUE(x.claims[0].contradicted);
  // Weak evidence (one process, or too few flows) contradicts nobody.
  FakeUsage weak;
  weak.set(P("198.18.0.3"), 300, 1, kHour);
  weak.set(P("198.18.0.4"), 5, 5, kHour);
  Engine e2(p, context(&weak), T0);
  EXPECT_FALSE(e2.on_claim(claim("y", "z1", 1, "198.18.0.3", 1.0), D(1), T0).contradicted);
  EXPECT_FALSE(e2.on_claim(claim("y", "z1", 2, "198.18.0.4", 1.0), D(2), T0).contradicted);
  EXPECT_EQ(e2.ledger().trust("y", T0), p.prior);
  // The node's own claims never contradict it.
  EXPECT_FALSE(e.on_claim(claim("self", "zone-self", 1, "198.18.0.1", 1.0), D(9), T0).contradicted);
}

TEST(TrustCollusion, Rule_UsageChangeRechecksClaimsAgainstTheEvidence) {
  Params p = fleet_params(20);
  FakeUsage u;
  Engine e(p, context(&u), T0);
  // Nobody uses it yet: a claim on it is enforced on receipt (fast path) ...
  auto o = e.on_claim(claim("x", "z1", 1, "198.18.0.7", 0.9), D(1), T0);
  EXPECT_TRUE(find_change(o.changes, P("198.18.0.7"), K::enforce));
  EXPECT_FALSE(o.contradicted);
  // ... then the node's workloads turn out to use it (e.g. the block was wrong and they
  // were cut off before; or usage grew): the daemon tells the engine, which re-checks.
  strong(u, "198.18.0.7");
  auto ch = e.on_usage_changed(P("198.18.0.7"), T0 + 1000);
  EXPECT_TRUE(find_change(ch, P("198.18.0.7"), K::lift));
  EXPECT_LT(e.ledger().trust("x", T0 + 1000), p.prior);
  EXPECT_EQ(e.stats().contradictions, 1u);
  // Re-checking again does not punish the same claim twice.
  e.recheck_usage(T0 + 2000);
  EXPECT_EQ(e.stats().contradictions, 1u);
}

TEST(TrustCollusion, Rule_EveryPivotalDomainPaysABudgetToken) {
  Params p = fleet_params(20);
  p.budget_burst = 2;
  FakeUsage u;
  u.set(P("198.18.0.1"), 2, 2);  // E = 2: three domains needed, so all three are pivotal
  u.set(P("198.18.0.2"), 2, 2);
  u.set(P("198.18.0.3"), 2, 2);
  Engine e(p, context(&u), T0);
  // Bucket of an origin at the prior: 2 * 0.5 / 0.9 = 1.1 tokens: one block each.
  for (int i = 0; i < 3; ++i)
    e.on_claim(claim(node_of(i), zone_of(i), 1, "198.18.0.1", 1.0, T0, Severity::critical), D(i),
               T0);
  ASSERT_TRUE(e.enforced(P("198.18.0.1")));
  auto x1 = e.explain(P("198.18.0.1"), T0);
  // The block is enforced now; what a new one would cost is shown for the next target.
  for (int i = 0; i < 3; ++i)
    e.on_claim(claim(node_of(i), zone_of(i), 2, "198.18.0.2", 1.0, T0, Severity::critical),
               D(10 + i), T0);
  auto d2 = e.decide(P("198.18.0.2"), T0);
  EXPECT_EQ(d2.verdict, Verdict::pending_budget);
  auto x2 = e.explain(P("198.18.0.2"), T0);
  EXPECT_EQ(x2.payers.size(), 3u);
  for (const auto& b : x2.payers) {
    EXPECT_TRUE(b.pending);
    EXPECT_LT(b.tokens, 1.0);
  }
  // Without budgets binding multi-domain support, all three would have been blocked at once.
  // A target with slack (a fourth domain, no benign evidence) needs nobody's token.
  for (int i = 0; i < 4; ++i)
    e.on_claim(claim(node_of(i), zone_of(i), 3, "203.0.113.1", 1.0, T0, Severity::high), D(20 + i),
               T0);
  EXPECT_TRUE(e.enforced(P("203.0.113.1")));
  EXPECT_TRUE(e.explain(P("203.0.113.1"), T0).payers.empty());
  // Tokens refill: the pending block is enforced later without new claims.
  bool enforced = false;
  TimeMs now = T0;
  while (auto dl = e.next_deadline()) {
    if (*dl > T0 + 10 * kMinute) break;
    now = *dl;
    for (auto& c : e.tick(now)) enforced |= c.prefix == P("198.18.0.2") && c.kind == K::enforce;
  }
  EXPECT_TRUE(enforced);
}

TEST(TrustCollusion, Rule_CorroborationIsWorthTheCorroboratorsTrust) {
  Params p = fleet_params(20);
  p.feedback_flush_ms = 0;  // apply gains at once
  Engine e(p, context(), T0);
  // "low" has been contradicted a lot; "high" is trusted.
  std::string text = "meshd-trust-ledger v1\nlow z1 0 60 " + std::to_string(T0) +
                     " 0 0\nhigh z2 1000 0 " + std::to_string(T0) + " 0 0\na z3 0 0 " +
                     std::to_string(T0) + " 0 0\nb z4 0 0 " + std::to_string(T0) + " 0 0\n";
  auto ledger = TrustLedger::deserialize(text, p);
  ASSERT_TRUE(ledger);
  e.restore_ledger(*ledger, T0);
  e.on_claim(claim("a", "z3", 1, "203.0.113.1", 1.0), D(1), T0);
  e.on_claim(claim("low", "z1", 1, "203.0.113.1", 1.0), D(2), T0);
  e.on_claim(claim("b", "z4", 1, "203.0.113.2", 1.0), D(3), T0);
  e.on_claim(claim("high", "z2", 1, "203.0.113.2", 1.0), D(4), T0);
  const double gain_a = e.ledger().find("a")->pos, gain_b = e.ledger().find("b")->pos;
  EXPECT_GT(gain_b, 0);
  EXPECT_LT(gain_a, 0.1 * gain_b);  // corroborated by a distrusted origin: next to nothing
  EXPECT_NEAR(gain_b, p.weight_domain * e.ledger().trust("high", T0) / p.t_cap, 1e-3);
  // Agreeing about what this node sees working earns nothing.
  FakeUsage u;
  strong(u, "198.18.0.1");
  Engine e2(p, context(&u), T0);
  e2.on_claim(claim("a", "z3", 1, "198.18.0.1", 1.0), D(1), T0);
  e2.on_claim(claim("b", "z4", 1, "198.18.0.1", 1.0), D(2), T0);
  EXPECT_EQ(e2.ledger().find("a")->pos, 0.0);
}

TEST(TrustCollusion, Rule_HonestFastPathIsUntouched) {
  // A real C2 nobody here uses: a single claim from a brand-new origin of a 20-domain fleet is
  // enforced by the call that delivers it (I7), and pays one token.
  Params p = fleet_params(20);
  FakeUsage u;
  strong(u, "198.18.0.1");
  Engine e(p, context(&u), T0);
  auto o = e.on_claim(claim("new", "z2", 1, "240.0.0.1", 0.95), D(1), T0);
  EXPECT_TRUE(find_change(o.changes, P("240.0.0.1"), K::enforce));
  auto d = e.decide(P("240.0.0.1"), T0);
  EXPECT_EQ(d.domains_required, 1u);
  EXPECT_EQ(d.benign, 0.0);
  // A local detection flags the traffic: none of it is benign evidence any more.
  FakeUsage f;
  f.set(P("240.0.0.2"), 300, 6, kHour, /*flagged=*/true);
  Engine e2(p, context(&f), T0);
  auto o2 = e2.on_claim(claim("new", "z2", 1, "240.0.0.2", 0.95), D(1), T0);
  EXPECT_FALSE(o2.contradicted);
  EXPECT_EQ(e2.decide(P("240.0.0.2"), T0).domains_required, 1u);
}

TEST(TrustCollusion, Rule_OwnClaimNeedsNoQuorum) {
  Params p = fleet_params(20);
  FakeUsage u;
  u.set(P("198.18.0.5"), 3, 3);
  Engine e(p, context(&u), T0);
  auto o = e.on_claim(claim("self", "zone-self", 1, "198.18.0.5", 0.9), D(1), T0);
  EXPECT_TRUE(find_change(o.changes, P("198.18.0.5"), K::enforce));
  EXPECT_TRUE(e.decide(P("198.18.0.5"), T0).self_claim);
}

TEST(TrustCollusion, Rule_ANewlyKnownDomainRaisesTheQuorumAndReDecides) {
  Params p;  // fleet_domains 0: D = the domains this node knows
  FakeUsage u;
  u.set(P("198.18.0.6"), 2, 2);  // E = 2: min(q_max, 3) domains
  Engine e(p, context(&u), T0);  // knows zone-self
  for (int i = 0; i < 2; ++i)
    e.on_claim(claim(node_of(i), zone_of(i), 1, "198.18.0.6", 1.0), D(i), T0);
  // D = 3 (self + 2): q_max = 2: enforced.
  ASSERT_TRUE(e.enforced(P("198.18.0.6")));
  // Peers from three more domains connect: D = 6, q_max = 3: no longer enough.
  for (int i = 2; i < 5; ++i) e.register_origin(node_of(i), zone_of(i), T0 + 10);
  ASSERT_TRUE(e.next_deadline());
  auto ch = e.tick(T0 + 10);
  EXPECT_TRUE(find_change(ch, P("198.18.0.6"), K::lift));
  EXPECT_EQ(e.decide(P("198.18.0.6"), T0 + 10).verdict, Verdict::domains_short);
}

TEST(TrustCollusion, Rule_ExplainShowsEveryTerm) {
  Params p = fleet_params(20);
  FakeUsage u;
  strong(u, "198.18.0.1");
  Engine e(p, context(&u), T0);
  e.on_claim(claim("x", "z1", 1, "198.18.0.1", 1.0, T0, Severity::critical), D(1), T0);
  auto x = e.explain(P("198.18.0.1"), T0);
  EXPECT_EQ(x.evidence.flows, 300u);
  EXPECT_EQ(x.evidence.sources, 6u);
  auto text = format_explanation(x);
  for (const char* part :
       {"local benign evidence: E = 300", "6 sources", "STRONG", "domains required = 7",
        "full quorum 7 of D = 20", "B = min(claimed 8.000", "cap 4.000",
        "contradicted local benign evidence"})
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;
}

// The verdict names the first refusing rule; explain lists every one of them (refused_by),
// so a reader sees that colluders' claims on a used service fail the quorum too, not only
// the threshold their fallen trust misses.
TEST(TrustCollusion, Rule_ExplainNamesEveryRefusingRule) {
  Params p = fleet_params(20);
  FakeUsage u;
  strong(u, "198.18.0.1");
  u.set(P("198.18.0.2"), 2, 2, kMinute);  // E = 2, not strong: 3 domains required
  Engine e(p, context(&u), T0);
  for (int i = 0; i < 3; ++i)
    e.on_claim(claim(node_of(i), zone_of(i), 1, "198.18.0.1", 1.0, T0, Severity::critical), D(i),
               T0);
  auto x = e.explain(P("198.18.0.1"), T0);
  EXPECT_EQ(x.decision.verdict, Verdict::below_threshold);
  EXPECT_EQ(x.refused_by, (std::vector<Verdict>{Verdict::below_threshold, Verdict::domains_short}));
  auto text = format_explanation(x);
  for (const char* part :
       {"decision: below_threshold", "refused by: below_threshold (S 0.636",
        "domains_short (3 domains back it, the local benign evidence requires 7)"})
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;

  // Above the threshold, short of domains only: domains_short alone.
  for (int i = 3; i < 5; ++i)
    e.on_claim(claim(node_of(i), zone_of(i), 1, "198.18.0.2", 1.0), D(i), T0);
  auto y = e.explain(P("198.18.0.2"), T0);
  EXPECT_GE(y.decision.score, y.decision.threshold);
  EXPECT_EQ(y.refused_by, (std::vector<Verdict>{Verdict::domains_short}));
  // Enforced: nothing refuses it. Unclaimed: no_claims.
  e.on_claim(claim(node_of(5), zone_of(5), 1, "198.18.0.3", 1.0), D(5), T0);
  EXPECT_TRUE(e.explain(P("198.18.0.3"), T0).refused_by.empty());
  EXPECT_EQ(e.explain(P("198.18.0.4"), T0).refused_by, (std::vector<Verdict>{Verdict::no_claims}));
  EXPECT_NE(format_explanation(e.explain(P("198.18.0.4"), T0)).find("refused by: no_claims"),
            std::string::npos);
}

}  // namespace
}  // namespace meshd::trust

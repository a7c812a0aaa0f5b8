// Edge cases of the acceptance engine: bad input, broad and IPv6 prefixes, clocks stepping
// back, duplicates, early retractions, operator decisions, feedback, reload and explain.
#include <gtest/gtest.h>

#include <limits>

#include "tests/unit/trust/engine_fixture.hpp"
#include "trust/policy.hpp"

namespace meshd::trust {
namespace {

using namespace testing;
using K = BlockChange::Kind;
using A = OperatorDecision::Action;

TEST(TrustEngineEdge, ConfidenceNaNNegativeAboveOneRejectedWithReason) {
  Engine e(Params{}, context(), T0);
  struct Case {
    double conf;
    const char* says;
  } cases[] = {{std::numeric_limits<double>::quiet_NaN(), "NaN"},
               {-0.01, "outside [0, 1]"},
               {1.0001, "outside [0, 1]"},
               {std::numeric_limits<double>::infinity(), "outside [0, 1]"}};
  std::uint64_t seq = 0;
  for (auto& c : cases) {
    ++seq;
    auto o = e.on_claim(claim("a", "z1", seq, "203.0.113.1", c.conf), D(seq), T0);
    EXPECT_EQ(o.status, ClaimStatus::rejected);
    ASSERT_TRUE(o.error);
    EXPECT_EQ(o.error->code, "bad_confidence");
    EXPECT_NE(o.error->message.find(c.says), std::string::npos) << o.error->message;
    EXPECT_NE(o.error->message.find("a/" + std::to_string(seq)), std::string::npos);
    EXPECT_TRUE(o.changes.empty());
  }
  EXPECT_EQ(e.stats().rejected_bad_input, 4u);
  EXPECT_EQ(e.stats().claims_rejected, 4u);
  // Boundaries are valid.
  EXPECT_EQ(e.on_claim(claim("a", "z1", 10, "203.0.113.1", 0.0), D(10), T0).status,
            ClaimStatus::accepted);
  EXPECT_EQ(e.on_claim(claim("b", "z1", 1, "203.0.113.1", 1.0), D(11), T0).status,
            ClaimStatus::accepted);
  // Other bad fields.
  auto c = claim("a", "z1", 11, "203.0.113.2");
  c.requested_ttl = 0;
  EXPECT_EQ(e.on_claim(c, D(12), T0).error->code, "bad_ttl");
  c = claim("", "z1", 1, "203.0.113.2");
  EXPECT_EQ(e.on_claim(c, D(13), T0).error->code, "bad_origin");
  c = claim("a", "z1", 12, "203.0.113.2");
  c.severity = static_cast<Severity>(9);
  EXPECT_EQ(e.on_claim(c, D(14), T0).error->code, "bad_severity");
  c = claim("a", "z1", 13, "203.0.113.2");
  c.direction = static_cast<Direction>(0);
  EXPECT_EQ(e.on_claim(c, D(15), T0).error->code, "bad_direction");
}

TEST(TrustEngineEdge, ClaimsFromTheFutureOrAlreadyExpiredAreRejected) {
  Engine e(Params{}, context(), T0);
  auto f = e.on_claim(claim("a", "z1", 1, "203.0.113.1", 0.9, T0 + kHour), D(1), T0);
  EXPECT_EQ(f.error->code, "from_future");
  auto x = e.on_claim(claim("a", "z1", 2, "203.0.113.1", 0.9, T0 - 2 * kHour), D(2), T0);
  EXPECT_EQ(x.error->code, "expired");
  EXPECT_EQ(e.stats().rejected_future, 1u);
  EXPECT_EQ(e.stats().rejected_expired, 1u);
}

TEST(TrustEngineEdge, SlashZeroAndVeryBroadPrefixes) {
  Params params;
  Engine e(params, context(), T0);
  e.restore_ledger(trusted_ledger(params, {{"a", "z1"}, {"b", "z2"}, {"c", "z3"}}, 50, T0), T0);
  // /0 (v4 and v6) overlaps the builtin loopback: never enforced, and no misbehaviour (the
  // claim does not target loopback itself).
  for (const char* p : {"0.0.0.0/0", "::/0"}) {
    for (auto [n, d] : {std::pair{"a", "z1"}, {"b", "z2"}, {"c", "z3"}}) {
      auto o = e.on_claim(claim(n, d, p[0] == ':' ? 2 : 1, p, 1.0), D(p[0] + n[0]), T0);
      EXPECT_EQ(o.status, ClaimStatus::accepted) << p;
      EXPECT_TRUE(o.changes.empty());
    }
    EXPECT_EQ(e.decide(P(p), T0).verdict, Verdict::protected_prefix);
  }
  // A broad /8 costs its breadth: one domain cannot, two domains can.
  auto d = e.decide(P("11.0.0.0/8"), T0);
  EXPECT_DOUBLE_EQ(d.cost, params.cost_base + 24 * params.cost_breadth);
  e.on_claim(claim("a", "z1", 3, "11.0.0.0/8", 1.0), D(30), T0);
  d = e.decide(P("11.0.0.0/8"), T0);
  EXPECT_GT(d.threshold, params.s_cap);
  EXPECT_FALSE(d.enforce);
  auto o = e.on_claim(claim("b", "z2", 3, "11.0.0.0/8", 1.0), D(31), T0);
  EXPECT_TRUE(find_change(o.changes, P("11.0.0.0/8"), K::enforce));
}

TEST(TrustEngineEdge, IPv6TargetsAndBreadth) {
  Params params;
  Engine e(params, context(), T0);
  auto o = e.on_claim(claim("a", "z1", 1, "2001:db8::66"), D(1), T0);
  EXPECT_TRUE(find_change(o.changes, P("2001:db8::66"), K::enforce));
  // A /64 is one host's subnet: no breadth cost; a /48 costs 16 bits.
  EXPECT_DOUBLE_EQ(e.decide(P("2001:db8:1:2::/64"), T0).cost, params.cost_base);
  EXPECT_DOUBLE_EQ(e.decide(P("2001:db8:1::/48"), T0).cost,
                   params.cost_base + 16 * params.cost_breadth);
  // Link-local and loopback v6 are protected; targeting them is misbehaviour.
  auto ll = e.on_claim(claim("b", "z2", 1, "fe80::1"), D(2), T0);
  EXPECT_EQ(ll.status, ClaimStatus::misbehaviour);
  auto x = e.explain_overlapping(P("2001:db8::66"), T0);
  ASSERT_EQ(x.size(), 1u);
  EXPECT_NE(format_explanation(x[0]).find("2001:db8::66"), std::string::npos);
}

TEST(TrustEngineEdge, ProtectedSlash32InsideClaimedSlash16) {
  Params params;
  Engine e(params, context(nullptr, {{P("172.16.5.5/32"), "kube-apiserver", true}}), T0);
  e.restore_ledger(trusted_ledger(params, {{"a", "z1"}, {"b", "z2"}}, 50, T0), T0);
  e.on_claim(claim("a", "z1", 1, "172.16.0.0/16", 1.0, T0, Severity::critical), D(1), T0);
  auto o = e.on_claim(claim("b", "z2", 1, "172.16.0.0/16", 1.0, T0, Severity::critical), D(2), T0);
  EXPECT_EQ(o.status, ClaimStatus::accepted);  // not misbehaviour: it does not target it
  EXPECT_TRUE(o.changes.empty());
  auto x = e.explain(P("172.16.0.0/16"), T0);
  EXPECT_EQ(x.decision.verdict, Verdict::protected_prefix);
  ASSERT_TRUE(x.protected_by);
  EXPECT_EQ(*x.protected_by, P("172.16.5.5/32"));
  EXPECT_EQ(x.protected_reason, "kube-apiserver");
  // The neighbouring /17 that does not contain it is enforceable.
  auto n =
      e.on_claim(claim("a", "z1", 2, "172.16.128.0/17", 1.0, T0, Severity::critical), D(3), T0);
  auto n2 =
      e.on_claim(claim("b", "z2", 2, "172.16.128.0/17", 1.0, T0, Severity::critical), D(4), T0);
  EXPECT_TRUE(find_change(n2.changes, P("172.16.128.0/17"), K::enforce) ||
              find_change(n.changes, P("172.16.128.0/17"), K::enforce));
}

TEST(TrustEngineEdge, ClockGoingBackwardsNeitherUnexpiresNorExtends) {
  Params params;
  Engine e(params, context(), T0);
  auto o = e.on_claim(claim("a", "z1", 1, "203.0.113.1"), D(1), T0 + kMinute);
  ASSERT_EQ(o.changes.size(), 1u);
  TimeMs expiry = o.changes[0].expires_at;
  // The caller's clock steps back an hour: the engine keeps its latest time.
  auto b = e.on_claim(
      claim("b", "z1", 1, "203.0.113.2", 0.9, T0 - kHour + 1000, Severity::high, 2 * kHour), D(2),
      T0 - kHour);
  EXPECT_EQ(e.stats().clock_regressions, 1u);
  ASSERT_EQ(b.status, ClaimStatus::accepted);
  for (auto& c : b.changes) EXPECT_LE(c.expires_at, T0 + kMinute + params.ttl_single_ms);
  EXPECT_TRUE(e.tick(T0 - 2 * kHour).empty());
  EXPECT_TRUE(e.enforced(P("203.0.113.1")));
  EXPECT_EQ(e.enforced(P("203.0.113.1"))->expires_at, expiry);
  // Expiry still happens on time.
  auto l = e.tick(expiry);
  EXPECT_TRUE(find_change(l, P("203.0.113.1"), K::lift));
}

TEST(TrustEngineEdge, DuplicateStaleAndSupersededClaims) {
  Engine e(Params{}, context(), T0);
  auto a = e.on_claim(claim("a", "z1", 5, "203.0.113.1"), D(5), T0);
  EXPECT_EQ(a.status, ClaimStatus::accepted);
  auto dup = e.on_claim(claim("a", "z1", 5, "203.0.113.1"), D(5), T0 + 1);
  EXPECT_EQ(dup.status, ClaimStatus::duplicate);
  EXPECT_TRUE(dup.changes.empty());
  EXPECT_EQ(e.stats().claims_duplicate, 1u);
  // A newer claim of the same origin on the same target replaces the older one...
  EXPECT_EQ(e.on_claim(claim("a", "z1", 6, "203.0.113.1", 0.95), D(6), T0 + 2).status,
            ClaimStatus::accepted);
  EXPECT_EQ(e.explain(P("203.0.113.1"), T0 + 2).claims.size(), 1u);
  EXPECT_EQ(e.explain(P("203.0.113.1"), T0 + 2).claims[0].seq, 6u);
  // ...an older one arriving late is stale...
  EXPECT_EQ(e.on_claim(claim("a", "z1", 4, "203.0.113.1"), D(4), T0 + 3).status,
            ClaimStatus::stale);
  // ...and the replaced sequence number is still guarded against equivocation.
  auto eq = e.on_claim(claim("a", "z1", 5, "203.0.113.9"), D(99), T0 + 4);
  EXPECT_EQ(eq.status, ClaimStatus::misbehaviour);
  EXPECT_EQ(eq.misbehaviour->kind, MisbehaviourKind::equivocation);
}

TEST(TrustEngineEdge, RetractionBeforeTheClaimArrives) {
  Engine e(Params{}, context(), T0);
  auto r = e.on_retraction("a", 3, T0);
  EXPECT_EQ(r.status, RetractionStatus::remembered);
  EXPECT_EQ(e.on_retraction("a", 3, T0 + 1).status, RetractionStatus::duplicate);
  auto late = e.on_claim(claim("a", "z1", 3, "203.0.113.1"), D(3), T0 + 10);
  EXPECT_EQ(late.status, ClaimStatus::retracted);
  EXPECT_TRUE(late.changes.empty());
  EXPECT_FALSE(e.enforced(P("203.0.113.1")));
  EXPECT_EQ(e.stats().retractions_early, 1u);
  // Other sequences of the same origin are unaffected.
  EXPECT_EQ(e.on_claim(claim("a", "z1", 4, "203.0.113.1"), D(4), T0 + 20).status,
            ClaimStatus::accepted);
  // The memory is bounded: after ttl_max the retraction is forgotten.
  e.tick(T0 + Params{}.ttl_max_ms + 1);
  EXPECT_EQ(e.on_retraction("a", 3, T0 + Params{}.ttl_max_ms + 2).status,
            RetractionStatus::remembered);
}

TEST(TrustEngineEdge, OperatorBlockUnblockAllowClear) {
  Params params;
  Engine e(params, context(), T0);
  // Block: enforced at once, regardless of evidence, until its expiry.
  auto b = op(A::block, "198.51.100.0/24");
  b.expires_at = T0 + 2 * kHour;
  auto r = e.on_operator_decision(b, T0);
  ASSERT_TRUE(r);
  auto* enf = find_change(*r, P("198.51.100.0/24"), K::enforce);
  ASSERT_TRUE(enf);
  EXPECT_EQ(enf->expires_at, T0 + 2 * kHour);
  EXPECT_TRUE(e.enforced(P("198.51.100.0/24"))->by_operator);
  EXPECT_EQ(e.decide(P("198.51.100.0/24"), T0).verdict, Verdict::operator_block);
  // Unblock lifts it and drops the claims; gossip re-delivery does not bring them back.
  e.on_claim(claim("a", "z1", 1, "203.0.113.5"), D(1), T0);
  auto u = e.on_operator_decision(op(A::unblock, "203.0.113.5"), T0 + 1);
  ASSERT_TRUE(u);
  EXPECT_TRUE(find_change(*u, P("203.0.113.5"), K::lift));
  EXPECT_EQ(e.on_claim(claim("a", "z1", 1, "203.0.113.5"), D(1), T0 + 2).status,
            ClaimStatus::retracted);
  EXPECT_DOUBLE_EQ(e.ledger().trust("a", T0 + 2), params.prior);  // not a false positive
  // Allow: nothing overlapping is enforced until it expires; then the claims decide again.
  auto al = op(A::allow, "203.0.113.0/24");
  al.expires_at = T0 + kMinute;
  al.reason = "payments partner";
  ASSERT_TRUE(e.on_operator_decision(al, T0 + 3));
  auto c = e.on_claim(claim("b", "z2", 1, "203.0.113.7"), D(2), T0 + 4);
  EXPECT_TRUE(c.changes.empty());
  auto x = e.explain(P("203.0.113.7"), T0 + 4);
  EXPECT_EQ(x.decision.verdict, Verdict::operator_allow);
  EXPECT_NE(x.protected_reason.find("payments partner"), std::string::npos);
  auto after = e.tick(T0 + kMinute);
  EXPECT_TRUE(find_change(after, P("203.0.113.7"), K::enforce));
  // Clear removes an operator block early.
  auto cl = e.on_operator_decision(op(A::clear, "198.51.100.0/24"), T0 + kMinute + 1);
  ASSERT_TRUE(cl);
  EXPECT_TRUE(find_change(*cl, P("198.51.100.0/24"), K::lift));
  // Operator blocks are bounded too.
  auto forever = op(A::block, "198.51.100.0/24");
  forever.expires_at = T0 + 365 * 24 * kHour;
  auto f = e.on_operator_decision(forever, T0 + kMinute + 2);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->at(0).expires_at, T0 + kMinute + 2 + params.operator_ttl_max_ms);
}

TEST(TrustEngineEdge, FeedbackIsAsymmetricAndCorroborationIsBatched) {
  Params params;
  Engine e(params, context(), T0);
  e.on_claim(claim("a", "z1", 1, "203.0.113.1"), D(1), T0);
  e.on_claim(claim("b", "z2", 1, "203.0.113.1"), D(2), T0);  // another domain corroborates
  e.on_local_corroboration(P("203.0.113.1"), T0);
  EXPECT_DOUBLE_EQ(e.ledger().trust("a", T0), params.prior);  // batched until the flush
  ASSERT_TRUE(e.next_deadline());
  e.tick(T0 + params.feedback_flush_ms);
  double up = e.ledger().trust("a", T0 + params.feedback_flush_ms) - params.prior;
  EXPECT_GT(up, 0);
  // Crediting is once per claim: repeating the same corroboration adds nothing.
  e.on_local_corroboration(P("203.0.113.1"), T0 + params.feedback_flush_ms);
  e.tick(T0 + 2 * params.feedback_flush_ms);
  EXPECT_DOUBLE_EQ(e.ledger().trust("a", T0 + 2 * params.feedback_flush_ms) - params.prior, up);
  // One false positive costs more than a corroboration earns.
  e.on_claim(claim("b", "z2", 2, "203.0.113.2"), D(3), T0 + 3 * params.feedback_flush_ms);
  double before = e.ledger().trust("b", T0 + 3 * params.feedback_flush_ms);
  auto fp = op(A::unblock, "203.0.113.2");
  fp.false_positive = true;
  ASSERT_TRUE(e.on_operator_decision(fp, T0 + 3 * params.feedback_flush_ms));
  double down = before - e.ledger().trust("b", T0 + 3 * params.feedback_flush_ms);
  EXPECT_GT(down, 2 * up);
  EXPECT_EQ(e.stats().trust_losses, 1u);
}

TEST(TrustEngineEdge, DirectionsUniteAndSelfClaimsNeedNoBudget) {
  Params params;
  params.budget_burst = 1;
  Engine e(params, context(), T0);
  auto a = claim("a", "z1", 1, "203.0.113.1");
  a.direction = Direction::egress;
  auto b = claim("b", "z2", 1, "203.0.113.1");
  b.direction = Direction::ingress;
  e.on_claim(a, D(1), T0);
  auto o = e.on_claim(b, D(2), T0);
  ASSERT_TRUE(e.enforced(P("203.0.113.1")));
  EXPECT_EQ(e.enforced(P("203.0.113.1"))->direction, Direction::both);
  // The local node's own detections are not limited by a budget.
  for (int i = 0; i < 10; ++i) {
    std::string ip = "198.51.100." + std::to_string(i + 1);
    auto s = e.on_claim(claim("self", "zone-self", static_cast<std::uint64_t>(i + 1), ip.c_str()),
                        D(10 + i), T0);
    EXPECT_TRUE(find_change(s.changes, P(ip.c_str()), K::enforce)) << ip;
  }
}

TEST(TrustEngineEdge, ReloadReevaluatesAndSwitchesPolicy) {
  Params params;
  Engine e(params, context(nullptr, {{P("10.1.2.3/32"), "dns", true}}), T0);
  auto o = e.on_claim(claim("a", "z1", 1, "203.0.113.1", 0.5), D(1), T0);
  ASSERT_TRUE(find_change(o.changes, P("203.0.113.1"), K::enforce));
  // A stricter policy (benefit of high severity drops) lifts it in the reload call.
  Params strict = params;
  strict.benefit_high = 0.1;
  auto r = e.set_params(strict, T0 + 1);
  ASSERT_TRUE(r);
  EXPECT_TRUE(find_change(*r, P("203.0.113.1"), K::lift));
  Params invalid = params;
  invalid.t_cap = 1.0;
  auto bad = e.set_params(invalid, T0 + 2);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "bad_param");
  EXPECT_NE(bad.error().message.find("t_cap"), std::string::npos);
  // Switching to naive enforces it again (naive accepts every valid claim).
  Params naive = params;
  naive.mode = PolicyMode::naive;
  auto n = e.set_params(naive, T0 + 3);
  ASSERT_TRUE(n);
  EXPECT_TRUE(find_change(*n, P("203.0.113.1"), K::enforce));
  EXPECT_FALSE(Engine::create(invalid, context(), T0).has_value());
  EXPECT_THROW(Engine(invalid, context(), T0), std::invalid_argument);
}

TEST(TrustEngineEdge, ExplainGivesTheWholeBreakdown) {
  Params params;
  FakeUsage usage;
  usage.set(P("203.0.113.1"), 7, 1);  // one local source: the usage cost, no benign evidence
  Engine e(params, context(&usage), T0);
  e.on_claim(claim("a", "z1", 1, "203.0.113.1", 0.8), D(1), T0);
  e.on_claim(claim("b", "z1", 1, "203.0.113.1", 0.6), D(2), T0);
  e.on_claim(claim("c", "z2", 1, "203.0.113.1", 0.9, T0, Severity::critical), D(3), T0);
  auto x = e.explain(P("203.0.113.1"), T0 + 1000);
  EXPECT_EQ(x.policy, "trust");
  EXPECT_EQ(x.flows, 7u);
  ASSERT_EQ(x.claims.size(), 3u);
  EXPECT_EQ(x.claims[0].origin.node, "c");  // highest contribution first
  EXPECT_DOUBLE_EQ(x.claims[0].contribution, x.claims[0].trust * x.claims[0].confidence);
  ASSERT_EQ(x.domains.size(), 2u);
  EXPECT_EQ(x.domains[1].domain, "z1");
  EXPECT_EQ(x.domains[1].lead, "a");  // the max t*c of its domain
  double s = 1 - (1 - x.domains[0].support) * (1 - x.domains[1].support);
  EXPECT_NEAR(x.decision.score, s, 1e-12);
  EXPECT_NEAR(x.decision.cost, cost(P("203.0.113.1"), 7, params), 1e-12);
  EXPECT_NEAR(x.decision.threshold, x.decision.cost / (x.decision.cost + x.decision.benefit),
              1e-12);
  EXPECT_TRUE(x.decision.enforce);
  EXPECT_EQ(x.decision.domains, 2u);
  EXPECT_TRUE(x.enforced);
  auto text = format_explanation(x);
  for (const char* part : {"203.0.113.1", "S = ", "threshold", "per domain", "z1", "z2", "c#1",
                           "critical", "enforced"})
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;
  // Unknown targets explain the cost side (what it would take).
  auto none = e.explain(P("192.0.2.1"), T0);
  EXPECT_EQ(none.decision.verdict, Verdict::no_claims);
  EXPECT_GT(none.decision.cost, 0);
}

TEST(TrustEngineEdge, NextDeadlineIsWhenTickHasWork) {
  Params params;
  Engine e(params, context(), T0);
  EXPECT_FALSE(e.next_deadline());
  auto o = e.on_claim(claim("a", "z1", 1, "203.0.113.1"), D(1), T0);
  ASSERT_EQ(o.changes.size(), 1u);
  ASSERT_TRUE(e.next_deadline());
  EXPECT_LE(*e.next_deadline(), o.changes[0].expires_at);
  EXPECT_TRUE(e.tick(o.changes[0].expires_at - 1).empty());
  EXPECT_EQ(count_kind(e.tick(o.changes[0].expires_at), K::lift), 1);
}

}  // namespace
}  // namespace meshd::trust

// The baseline policies the simulator compares against: naive and quorum:K.
#include <gtest/gtest.h>

#include "tests/unit/trust/engine_fixture.hpp"

namespace meshd::trust {
namespace {

using namespace testing;
using K = BlockChange::Kind;

Params mode(const char* text) {
  Params p;
  EXPECT_TRUE(set_policy(p, text).has_value()) << text;
  return p;
}

TEST(TrustModes, NaiveAcceptsEveryValidClaimOnReceipt) {
  Params p = mode("naive");
  Engine e(p, context(nullptr, {{P("10.1.2.3/32"), "dns", true}}), T0);
  // One unknown origin, tiny confidence: enforced at once, TTL = requested.
  auto o =
      e.on_claim(claim("x", "z1", 1, "203.0.113.1", 0.01, T0, Severity::low, 2 * kHour), D(1), T0);
  auto* enf = find_change(o.changes, P("203.0.113.1"), K::enforce);
  ASSERT_TRUE(enf);
  EXPECT_EQ(enf->expires_at, T0 + 2 * kHour);
  // Requested TTL is capped at ttl_max.
  auto l =
      e.on_claim(claim("x", "z1", 2, "203.0.113.2", 0.5, T0, Severity::low, 100 * kHour), D(2), T0);
  ASSERT_TRUE(find_change(l.changes, P("203.0.113.2"), K::enforce));
  EXPECT_EQ(l.changes[0].expires_at, T0 + p.ttl_max_ms);
  // Documented: naive does not special-case protected prefixes (the simulator measures the
  // harm), and detects no misbehaviour.
  auto prot = e.on_claim(claim("x", "z1", 3, "10.1.2.3"), D(3), T0);
  EXPECT_EQ(prot.status, ClaimStatus::accepted);
  EXPECT_TRUE(find_change(prot.changes, P("10.1.2.3"), K::enforce));
  auto eq = e.on_claim(claim("x", "z1", 3, "203.0.113.9"), D(4), T0);
  EXPECT_EQ(eq.status, ClaimStatus::rejected);
  EXPECT_EQ(eq.error->code, "equivocation");
  EXPECT_FALSE(eq.misbehaviour);
  EXPECT_TRUE(e.apply_proof("x", T0).empty());
  // Invalid claims are still rejected.
  EXPECT_EQ(e.on_claim(claim("x", "z1", 5, "203.0.113.5", 2.0), D(5), T0).status,
            ClaimStatus::rejected);
  // Retractions and expiry still apply.
  auto r = e.on_retraction("x", 1, T0 + 1);
  EXPECT_TRUE(find_change(r.changes, P("203.0.113.1"), K::lift));
  EXPECT_TRUE(find_change(e.tick(T0 + 2 * kHour), P("10.1.2.3"), K::lift));
}

TEST(TrustModes, QuorumEnforcesWhenKDistinctOriginsClaim) {
  Params p = mode("quorum:3");
  EXPECT_EQ(p.quorum_k, 3u);
  EXPECT_EQ(policy_to_string(p), "quorum:3");
  Engine e(p, context(), T0);
  auto a =
      e.on_claim(claim("a", "z1", 1, "203.0.113.1", 1.0, T0, Severity::high, 3 * kHour), D(1), T0);
  auto a2 = e.on_claim(claim("a", "z1", 2, "203.0.113.1", 1.0, T0, Severity::high, 3 * kHour), D(2),
                       T0);  // the same origin twice is still one origin
  auto b =
      e.on_claim(claim("b", "z1", 1, "203.0.113.1", 1.0, T0, Severity::high, 1 * kHour), D(3), T0);
  EXPECT_TRUE(a.changes.empty() && a2.changes.empty() && b.changes.empty());
  EXPECT_EQ(e.decide(P("203.0.113.1"), T0).verdict, Verdict::quorum_not_met);
  auto c =
      e.on_claim(claim("c", "z1", 1, "203.0.113.1", 0.1, T0, Severity::high, 2 * kHour), D(4), T0);
  auto* enf = find_change(c.changes, P("203.0.113.1"), K::enforce);
  ASSERT_TRUE(enf);
  EXPECT_EQ(enf->expires_at, T0 + kHour);  // lasts while 3 claims remain: the 3rd latest
  // Losing one supporter lifts it.
  auto r = e.on_retraction("b", 1, T0 + 10);
  EXPECT_TRUE(find_change(r.changes, P("203.0.113.1"), K::lift));
  // Quorum does not special-case protected prefixes either, and has no trust.
  EXPECT_TRUE(e.apply_proof("a", T0 + 20).empty());
}

TEST(TrustModes, PolicyTextIsValidated) {
  Params p;
  for (const char* bad : {"quorum:0", "quorum:", "quorum:x", "majority", ""}) {
    auto r = set_policy(p, bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, "bad_param");
  }
  EXPECT_TRUE(set_policy(p, "trust"));
  EXPECT_EQ(p.mode, PolicyMode::trust);
}

}  // namespace
}  // namespace meshd::trust

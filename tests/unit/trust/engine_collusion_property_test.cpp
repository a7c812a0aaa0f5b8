// Property test of the collusion bound (trust/README.md "Collusion resistance"): over seeded
// random fleets (D = 3..40 failure domains, known through registered peers or configured),
// random parameters, random collusion sets (k origins, or more, spread over k < q_max domains,
// q_max = floor(D * quorum_fraction) + 1) with random trust histories (up to t_cap), and random
// claim histories (any confidence, severity and TTL, retractions, re-claims, time jumps, other
// honest traffic):
//  - a destination with strong local benign evidence is never enforced on their claims;
//  - a destination with some benign evidence E is never enforced with fewer domains than
//    required_domains(E);
//  - every accepted colluder claim on the strong destination is a contradiction.
// Deterministic given the seed; a failure prints it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "tests/unit/trust/engine_fixture.hpp"
#include "trust/policy.hpp"

namespace meshd::trust {
namespace {

using namespace testing;

struct CollusionRun {
  std::mt19937_64 rng;
  Params params;
  FakeUsage usage;
  std::optional<Engine> engine;
  TimeMs now = T0;
  std::size_t fleet = 0;
  std::size_t q_max = 0;
  std::vector<std::pair<std::string, std::string>> colluders;  // (node, domain)
  std::set<std::string> colluder_domains;
  std::map<std::string, std::uint64_t> seq;
  Prefix strong_target = P("198.18.0.1");
  Prefix weak_target = P("198.18.0.2");
  double weak_e = 0;
  std::uint64_t accepted_on_strong = 0;

  int uni(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  double unif() { return std::uniform_real_distribution<double>(0, 1)(rng); }
  template <class T>
  T pick(std::initializer_list<T> v) {
    return *(v.begin() + uni(0, static_cast<int>(v.size()) - 1));
  }

  explicit CollusionRun(std::uint64_t seed) : rng(seed) {
    params.s_cap = pick({0.4, 0.6, 0.8});
    params.quorum_fraction = pick({1.0 / 3.0, 0.25, 0.5});
    params.benign_strong_flows = pick({4.0, 8.0, 50.0});
    params.cost_benign = pick({0.0, 0.25, 1.0});  // the quorum bound holds even without it
    params.budget_burst = pick({1.0, 20.0, 1000.0});
    params.budget_rate_per_min = pick({1.0, 10.0, 1000.0});
    params.feedback_flush_ms = pick<DurationMs>({0, 1000});
    params.quorum_flows_per_domain = pick({1.0, 3.0});
    fleet = static_cast<std::size_t>(uni(3, 40));
    const bool configured = uni(0, 1) == 1;
    if (configured) params.fleet_domains = static_cast<std::uint32_t>(fleet);
    while (quorum_max(fleet, params) < 2) ++fleet;  // a bound for k >= 1 colluding domains
    q_max = quorum_max(fleet, params);
    // Strong evidence: enough flows from enough processes over a long enough span.
    const auto flows = static_cast<std::uint64_t>(params.benign_strong_flows *
                                                  std::exp(unif() * std::log(1000.0)));
    usage.set(strong_target, flows, static_cast<std::uint64_t>(uni(2, 50)),
              params.benign_strong_span_ms + uni(0, 600) * kSecond);
    // Some evidence, not strong (too few flows, or too short a span).
    const auto wflows = static_cast<std::uint64_t>(uni(1, 40));
    usage.set(weak_target, wflows, static_cast<std::uint64_t>(uni(2, 5)),
              uni(0, 1) ? 0 : params.benign_strong_span_ms - 1);
    weak_e = benign_flows(usage.evidence(weak_target, now), params);
    engine.emplace(params, context(&usage), now);
    // Random trust histories for everybody (colluders may have milked their way to t_cap).
    const std::size_t k = static_cast<std::size_t>(uni(1, static_cast<int>(q_max) - 1));
    std::vector<int> doms(fleet);
    std::iota(doms.begin(), doms.end(), 0);
    std::shuffle(doms.begin(), doms.end(), rng);
    std::string text = "meshd-trust-ledger v1\n";
    auto add = [&](const std::string& node, const std::string& dom) {
      double pos = unif() < 0.3 ? 1e6 : std::exp(unif() * std::log(1e4)) - 1;
      double neg = unif() < 0.5 ? 0 : std::exp(unif() * std::log(50.0)) - 1;
      text += node + " " + dom + " " + std::to_string(pos) + " " + std::to_string(neg) + " " +
              std::to_string(now) + " 0 0\n";
    };
    for (std::size_t i = 0; i < k; ++i) {
      const std::string dom = "zone-" + std::to_string(doms[i]);
      colluder_domains.insert(dom);
      const int per = uni(1, 3);  // several colluders may share a domain
      for (int j = 0; j < per; ++j) {
        colluders.emplace_back("evil-" + std::to_string(i) + "-" + std::to_string(j), dom);
        add(colluders.back().first, dom);
      }
    }
    for (std::size_t d = 0; d < fleet; ++d)
      add("honest-" + std::to_string(d), "zone-" + std::to_string(d));
    auto ledger = TrustLedger::deserialize(text, params);
    EXPECT_TRUE(ledger.has_value());
    engine->restore_ledger(*ledger, now);
    // Peers: the domains known through handshakes (all of them when not configured; some
    // domains only through claims otherwise).
    for (std::size_t d = 0; d < fleet; ++d)
      if (!configured || uni(0, 1))
        engine->register_origin("honest-" + std::to_string(d), "zone-" + std::to_string(d), now);
    engine->tick(now);
  }

  ClaimFacts make(const std::string& node, const std::string& dom, const Prefix& target) {
    ClaimFacts c = claim(node, dom, ++seq[node], target, unif(), now,
                         static_cast<Severity>(uni(1, 4)), uni(1, 48) * 30 * kMinute);
    if (unif() < 0.5) c.confidence = 1.0;
    return c;
  }

  void check(const std::string& where) {
    auto d = engine->decide(strong_target, now);
    ASSERT_FALSE(engine->enforced(strong_target).has_value())
        << where << "\n"
        << format_explanation(engine->explain(strong_target, now));
    ASSERT_FALSE(d.enforce) << where;
    if (engine->enforced(weak_target)) {
      auto w = engine->decide(weak_target, now);
      ASSERT_GE(w.domains,
                required_domains(weak_e, false, quorum_max(w.fleet_domains, params), params))
          << where << "\n"
          << format_explanation(engine->explain(weak_target, now));
      ASSERT_LE(w.domains, colluder_domains.size()) << where;
    }
  }

  void step(int i) {
    const std::string where = "step " + std::to_string(i);
    const int op = uni(0, 9);
    if (op <= 4) {  // a colluder claims the strong target
      const auto& [node, dom] =
          colluders[static_cast<std::size_t>(uni(0, static_cast<int>(colluders.size()) - 1))];
      auto o = engine->on_claim(make(node, dom, strong_target), D(rng()), now);
      if (o.status == ClaimStatus::accepted) {
        ++accepted_on_strong;
        ASSERT_TRUE(o.contradicted) << where;
      }
    } else if (op <= 6) {  // ... or the weakly used one, or one nobody uses
      const auto& [node, dom] =
          colluders[static_cast<std::size_t>(uni(0, static_cast<int>(colluders.size()) - 1))];
      const Prefix t =
          uni(0, 1) ? weak_target : P(("203.0.113." + std::to_string(uni(1, 20))).c_str());
      engine->on_claim(make(node, dom, t), D(rng()), now);
    } else if (op == 7) {  // honest nodes report a real C2 elsewhere
      const int d = uni(0, static_cast<int>(fleet) - 1);
      engine->on_claim(make("honest-" + std::to_string(d), "zone-" + std::to_string(d),
                            P(("240.0.0." + std::to_string(uni(1, 20))).c_str())),
                       D(rng()), now);
    } else if (op == 8) {  // a colluder retracts something
      const auto& [node, dom] =
          colluders[static_cast<std::size_t>(uni(0, static_cast<int>(colluders.size()) - 1))];
      if (seq[node] > 0)
        engine->on_retraction(node, static_cast<std::uint64_t>(uni(1, static_cast<int>(seq[node]))),
                              now);
    } else {  // time passes: expiry, budgets refill, trust decays back towards the prior
      now += pick<DurationMs>({kSecond, kMinute, 15 * kMinute, 6 * kHour});
      engine->tick(now);
      engine->recheck_usage(now);
    }
    check(where);
  }
};

std::uint64_t env_or(const char* name, std::uint64_t def) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : def;
}

TEST(TrustCollusionProperty, StrongBenignEvidenceNeverBlockedBelowTheQuorum) {
  // COLLUSION_FIRST_SEED / COLLUSION_LAST_SEED narrow the run (debugging); default 1..400.
  const std::uint64_t kFirstSeed = env_or("COLLUSION_FIRST_SEED", 1);
  const std::uint64_t kLastSeed = env_or("COLLUSION_LAST_SEED", 400);
  std::uint64_t total_claims = 0;
  for (std::uint64_t seed = kFirstSeed; seed <= kLastSeed; ++seed) {
    CollusionRun run(seed);
    for (int i = 0; i < 300; ++i) {
      run.step(i);
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "seed " << seed << " fleet " << run.fleet << " q_max " << run.q_max
                      << " colluding domains " << run.colluder_domains.size();
        return;
      }
    }
    EXPECT_EQ(run.engine->stats().contradictions >= run.accepted_on_strong, true) << seed;
    total_claims += run.accepted_on_strong;
  }
  EXPECT_GT(total_claims, 10'000u);  // the property was exercised
}

}  // namespace
}  // namespace meshd::trust

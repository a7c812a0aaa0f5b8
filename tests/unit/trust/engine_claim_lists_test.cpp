// The engine keeps each target's and each origin's claims in linked lists, active claims
// first and superseded ones behind them (decisions stop at the first superseded claim; the
// next wake-up of a target needs only the earliest expiry among its superseded claims). This
// test drives random claims, re-claims with varied TTLs, retractions and ticks against a
// plain model of which claims the engine must still hold and which of them count.
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "engine_fixture.hpp"

namespace meshd::trust::testing {
namespace {

struct HeldClaim {
  Prefix target;
  TimeMs expires_at = 0;
  bool superseded = false;
};

using Key = std::pair<std::string, std::uint64_t>;  // (origin, seq)

std::set<Key> active_in_model(const std::map<Key, HeldClaim>& held, const Prefix& target) {
  std::set<Key> out;
  for (auto& [k, c] : held)
    if (c.target == target && !c.superseded) out.insert(k);
  return out;
}

std::set<Key> active_in_engine(const Engine& e, const Prefix& target, TimeMs now) {
  std::set<Key> out;
  for (auto& c : e.explain(target, now).claims) out.insert({c.origin.node, c.seq});
  return out;
}

TEST(TrustEngineClaimLists, HeldAndCountedClaimsMatchAModelUnderReclaimsRetractionsAndExpiry) {
  const std::vector<Prefix> targets = {P("203.0.113.1"), P("203.0.113.2"), P("198.51.100.0/24")};
  const std::vector<std::string> origins = {"a", "b", "c", "d", "e", "f"};
  for (std::uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    Params params;
    params.overrun_max_claims = 1e9;  // this test is about bookkeeping, not budgets
    Engine e(params, context(), T0);
    std::map<Key, HeldClaim> held;
    std::map<std::string, std::uint64_t> next_seq;
    TimeMs now = T0;
    std::uint64_t digest = 1;
    for (int step = 0; step < 600; ++step) {
      int what = static_cast<int>(rng() % 10);
      if (what < 6) {
        // A claim, often a re-claim of a target its origin already claimed. TTLs vary so a
        // newer claim can expire before the one it replaces.
        const std::string& o = origins[rng() % origins.size()];
        const Prefix& t = targets[rng() % targets.size()];
        DurationMs ttl = (1 + static_cast<DurationMs>(rng() % 30)) * kMinute;
        std::uint64_t seq = ++next_seq[o];
        auto r =
            e.on_claim(claim(o, "z-" + o, seq, t, 0.9, now, Severity::high, ttl), D(digest++), now);
        ASSERT_EQ(r.status, ClaimStatus::accepted) << o << " seq " << seq;
        for (auto& [k, c] : held)
          if (k.first == o && c.target == t) c.superseded = true;
        held[{o, seq}] = HeldClaim{t, now + ttl, false};
      } else if (what < 8 && !held.empty()) {
        // A retraction of any held claim, active or superseded.
        auto it = held.begin();
        std::advance(it, static_cast<long>(rng() % held.size()));
        auto r = e.on_retraction(it->first.first, it->first.second, now);
        ASSERT_EQ(r.status, RetractionStatus::applied);
        held.erase(it);
      } else {
        now += static_cast<DurationMs>(rng() % (4 * kMinute));
        e.tick(now);
        std::erase_if(held, [&](auto& kv) { return kv.second.expires_at <= now; });
      }
      ASSERT_EQ(e.stats().active_claims, held.size()) << "step " << step;
      for (const Prefix& t : targets)
        ASSERT_EQ(active_in_engine(e, t, now), active_in_model(held, t))
            << "step " << step << " target " << t.to_string();
    }
  }
}

}  // namespace
}  // namespace meshd::trust::testing

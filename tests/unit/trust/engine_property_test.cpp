// Property tests: thousands of seeded random histories (claims, duplicates, equivocation,
// retractions before and after claims, operator decisions, proofs, feedback, protected-list
// changes, clocks jumping forwards and backwards). After every step the invariants are
// checked against the engine's outputs. Deterministic given the seed; a failure prints it.
#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <random>
#include <set>

#include "tests/unit/trust/engine_fixture.hpp"

namespace meshd::trust {
namespace {

using namespace testing;
using K = BlockChange::Kind;

const char* const kPool[] = {
    "203.0.113.1", "203.0.113.2",      "203.0.113.3", "203.0.113.4",  "203.0.113.0/24",
    "10.0.0.0/8",  "0.0.0.0/0",        "10.1.2.3",    "10.1.0.0/16",  "192.168.1.1",
    "2001:db8::1", "2001:db8::/32",    "::/0",        "198.51.100.9", "127.0.0.1",
    "fe80::1",     "2001:db8:0:1::/64"};
const std::pair<const char*, const char*> kNodes[] = {
    {"a", "z1"}, {"b", "z1"}, {"c", "z2"}, {"d", "z2"}, {"e", "z3"}, {"f", "z3"}, {"self", "zs"}};

const std::vector<Prefix>& pool() {
  static const std::vector<Prefix> v = [] {
    std::vector<Prefix> out;
    for (const char* t : kPool) out.push_back(P(t));
    return out;
  }();
  return v;
}

const std::vector<ProtectedPrefix>& builtins() {
  static const std::vector<ProtectedPrefix> v = builtin_protected();
  return v;
}

struct Driver {
  std::mt19937_64 rng;
  Params params;
  FakeUsage usage;
  std::vector<ProtectedPrefix> prot;
  std::optional<Engine> engine;
  TimeMs now = T0;                       // the engine's effective clock (never goes back)
  std::map<Prefix, BlockChange> shadow;  // enforced blocks as told by the changes
  std::map<std::string, std::uint64_t> seqs;
  std::map<std::string, std::vector<TimeMs>> paid;  // domain -> single-domain enforcements
  std::string transcript;
  std::string where;  // current step, for failure messages

  explicit Driver(std::uint64_t seed, PolicyMode mode) : rng(seed) {
    params.mode = mode;
    params.quorum_k = 2;
    params.s_cap = pick({0.4, 0.6, 0.8});
    params.ttl_single_ms = pick<DurationMs>({5 * kMinute, 15 * kMinute});
    params.budget_burst = pick({1.0, 3.0, 20.0});
    params.overrun_max_claims = pick({6.0, 400.0});
    params.feedback_flush_ms = pick<DurationMs>({0, 1000});
    usage.set(P("203.0.113.2"), static_cast<std::uint64_t>(uni(0, 300)));
    usage.set(P("198.51.100.9"), uni(0, 5));
    usage.set(P("2001:db8::1"), uni(0, 50));
    prot = {{P("10.1.2.3/32"), "dns", true}, {P("192.168.1.1/32"), "own address", false}};
    engine.emplace(params, context(&usage, prot), now);
  }

  template <class T>
  T pick(std::initializer_list<T> v) {
    return *(v.begin() + uni(0, static_cast<int>(v.size()) - 1));
  }
  int uni(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  double unif() { return std::uniform_real_distribution<double>(0, 1)(rng); }

  bool is_protected(const Prefix& p) const {
    if (params.mode != PolicyMode::trust) return false;
    for (auto& pp : prot)
      if (pp.prefix.overlaps(p)) return true;
    for (auto& pp : builtins())
      if (pp.prefix.overlaps(p)) return true;
    return false;
  }

  void apply(const std::vector<BlockChange>& changes) {
    for (const auto& c : changes) {
      transcript += std::string(to_string(c.kind)) + " " + c.prefix.to_string() + " " +
                    std::to_string(c.expires_at) + "\n";
      if (getenv("TRUST_DEBUG"))
        fprintf(stderr, "  %s %s %lld %s\n", std::string(to_string(c.kind)).c_str(),
                c.prefix.to_string().c_str(), (long long)(c.expires_at - T0),
                std::string(to_string(c.cause)).c_str());
      if (c.kind == K::lift) {
        ASSERT_EQ(shadow.erase(c.prefix), 1u)
            << where << ": lift of a block never enforced " << c.prefix.to_string();
        continue;
      }
      // I1: never a protected prefix.
      ASSERT_FALSE(is_protected(c.prefix))
          << where << ": enforced protected " << c.prefix.to_string();
      if (c.kind == K::enforce)
        ASSERT_FALSE(shadow.count(c.prefix))
            << where << ": double enforce " << c.prefix.to_string();
      else
        ASSERT_TRUE(shadow.count(c.prefix)) << where << ": retime of unknown block";
      // I4: bounded lifetime.
      ASSERT_GT(c.expires_at, now) << where;
      auto blk = engine->enforced(c.prefix);
      ASSERT_TRUE(blk) << where;
      if (blk->by_operator) {
        ASSERT_LE(c.expires_at, now + params.operator_ttl_max_ms) << where;
      } else {
        // Trust mode anchors lifetimes at the enforcement start; the baselines keep a block
        // while claims (each capped at ttl_max) keep arriving.
        if (params.mode == PolicyMode::trust) {
          ASSERT_LE(c.expires_at, blk->since + params.ttl_max_ms) << where;
        }
        ASSERT_LE(c.expires_at, now + params.ttl_max_ms) << where;
        auto d = engine->decide(c.prefix, now);
        if (params.mode == PolicyMode::trust && d.single_domain) {
          ASSERT_LE(c.expires_at, blk->since + params.ttl_single_ms) << where;
        }
        // I3 bookkeeping: a new single-domain block resting on a remote domain is paid.
        auto x = engine->explain(c.prefix, now);
        if (c.kind == K::enforce && params.mode == PolicyMode::trust && d.single_domain &&
            !x.domains.empty() && x.domains.front().domain != "zs") {
          paid[x.domains.front().domain].push_back(now);
          check_budget(x.domains.front().domain);
        }
      }
      shadow[c.prefix] = c;
    }
  }

  void check_state() {
    // The changes told the truth: the engine enforces exactly the shadow set.
    auto blocks = engine->enforced();
    ASSERT_EQ(blocks.size(), shadow.size()) << where;
    for (auto& b : blocks) {
      auto it = shadow.find(b.prefix);
      ASSERT_NE(it, shadow.end()) << where << ": untold block " << b.prefix.to_string();
      ASSERT_EQ(it->second.expires_at, b.expires_at) << where;
      ASSERT_EQ(it->second.direction, b.direction) << where;
      ASSERT_GT(b.expires_at, now) << where << ": expired block still enforced";  // I4
    }
    for (const Prefix& p : pool()) {
      auto d = engine->decide(p, now);
      auto d2 = engine->decide(p, now);
      ASSERT_EQ(d.score, d2.score) << where;  // I8: pure
      // I2: one domain never exceeds s_cap.
      if (params.mode == PolicyMode::trust && d.domains <= 1 &&
          d.verdict != Verdict::operator_block) {
        ASSERT_LE(d.score, params.s_cap + 1e-12) << where << " " << p.to_string();
      }
      // I6: the enforced set is exactly what the decision function says, now.
      ASSERT_EQ(d.enforce, engine->enforced(p).has_value())
          << where << " " << p.to_string() << " verdict " << to_string(d.verdict) << "\n"
          << format_explanation(engine->explain(p, now));
    }
  }

  // I3: per remote domain, paid single-domain enforcements in any window fit the buckets of
  // its origins (2 per domain here): burst + rate * window, each at most t_cap. Checked for
  // every window ending at the newest enforcement.
  void check_budget(const std::string& dom) {
    const auto& times = paid[dom];
    std::size_t j = times.size() - 1;
    for (std::size_t i = 0; i <= j; ++i) {
      double window_min = static_cast<double>(times[j] - times[i]) / kMinute;
      double allowed = 2 * (params.budget_burst + params.budget_rate_per_min * window_min);
      ASSERT_LE(static_cast<double>(j - i + 1), allowed + 1e-9) << where << " domain " << dom;
    }
  }

  void quarantined_has_no_influence(const std::string& node) {
    ASSERT_EQ(engine->ledger().trust(node, now), 0.0) << where;
    for (auto& b : engine->enforced()) {
      if (b.by_operator) continue;
      for (auto& c : engine->explain(b.prefix, now).claims)
        ASSERT_FALSE(c.origin.node == node && c.contribution > 0) << where;
    }
  }

  // Runs every deadline up to `to` (as the daemon's timer would), then `to` itself.
  void advance(TimeMs to) {
    if (to < now) {  // a clock stepping back: the engine keeps its latest time
      apply(engine->tick(to));
      return;
    }
    while (auto dl = engine->next_deadline()) {
      if (*dl > to) break;
      now = std::max(now, *dl);
      where += " [tick " + std::to_string(now - T0) + "]";
      apply(engine->tick(now));
      if (::testing::Test::HasFatalFailure()) return;
      if (getenv("TRUST_DEBUG")) check_state();
    }
    now = to;
    apply(engine->tick(now));
  }

  ClaimFacts random_claim() {
    auto [node, dom] = kNodes[uni(0, 6)];
    std::uint64_t& s = seqs[node];
    ClaimFacts c =
        claim(node, dom, 0, pool()[static_cast<std::size_t>(uni(0, std::size(kPool) - 1))]);
    int r = uni(0, 99);
    c.seq = r < 8 && s > 0 ? static_cast<std::uint64_t>(uni(1, static_cast<int>(s))) : ++s;
    c.confidence = unif();
    if (r == 99) c.confidence = std::numeric_limits<double>::quiet_NaN();
    if (r == 98) c.confidence = -0.5;
    if (r == 97) c.confidence = 1.5;
    c.issued_at = now - uni(0, 120000) + (r == 96 ? 2 * kHour : 0);
    c.requested_ttl = pick<DurationMs>({kMinute, 10 * kMinute, kHour, 48 * kHour});
    c.severity = static_cast<Severity>(uni(1, 4));
    c.direction = static_cast<Direction>(uni(1, 3));
    return c;
  }

  void step(int i) {
    where = "step " + std::to_string(i);
    int r = uni(0, 99);
    if (r < 55) {
      ClaimFacts c = random_claim();
      // Same (origin, seq) mostly with the same body (a duplicate), sometimes not.
      Digest dg = D(c.seq * 131 + std::hash<std::string>{}(c.origin.node) + (uni(0, 9) == 0));
      where += " claim " + c.origin.node + "#" + std::to_string(c.seq) + " " + c.prefix.to_string();
      auto o = engine->on_claim(c, dg, now);
      transcript += std::string(to_string(o.status)) + "\n";
      if (std::isnan(c.confidence) || c.confidence < 0 || c.confidence > 1) {
        ASSERT_EQ(o.status, ClaimStatus::rejected) << where;
        ASSERT_EQ(o.error->code, "bad_confidence") << where;
      }
      apply(o.changes);
      if (o.misbehaviour) {
        ASSERT_EQ(params.mode, PolicyMode::trust);
        ASSERT_TRUE(engine->check_misbehaviour(*o.misbehaviour).has_value())
            << where << ": " << o.misbehaviour->reason;
        quarantined_has_no_influence(c.origin.node);
      }
    } else if (r < 63) {
      auto [node, dom] = kNodes[uni(0, 6)];
      auto seq = static_cast<std::uint64_t>(uni(1, static_cast<int>(seqs[node]) + 3));
      where += " retract " + std::string(node) + "#" + std::to_string(seq);
      apply(engine->on_retraction(node, seq, now).changes);
    } else if (r < 70) {
      auto d = op(static_cast<OperatorDecision::Action>(uni(0, 3)),
                  pool()[static_cast<std::size_t>(uni(0, std::size(kPool) - 1))]);
      d.false_positive = uni(0, 1);
      d.expires_at = now + uni(1, 100) * kMinute;
      where +=
          " operator " + std::to_string(static_cast<int>(d.action)) + " " + d.prefix.to_string();
      auto res = engine->on_operator_decision(d, now);
      if (res)
        apply(*res);
      else
        ASSERT_EQ(res.error().code, "protected") << where;
    } else if (r < 72) {
      auto [node, dom] = kNodes[uni(0, 5)];
      where += " proof " + std::string(node);
      apply(engine->apply_proof(node, now));
      if (params.mode == PolicyMode::trust) quarantined_has_no_influence(node);
    } else if (r < 78) {
      Prefix p = pool()[static_cast<std::size_t>(uni(0, std::size(kPool) - 1))];
      where += " feedback " + p.to_string();
      apply(uni(0, 2) ? engine->on_local_corroboration(p, now)
                      : engine->on_local_contradiction(p, now));
    } else if (r < 80) {
      where += " protected list";
      if (prot.size() > 2)
        prot.pop_back();
      else
        prot.push_back({pool()[static_cast<std::size_t>(uni(0, 4))], "new", uni(0, 1) == 1});
      apply(engine->set_protected(prot, now));
    } else if (r < 97) {
      advance(now + pick<DurationMs>({0, 1000, 30000, 5 * kMinute, 20 * kMinute, 3 * kHour}));
    } else {
      where += " clock back";
      advance(now - uni(1, 600000));
    }
    if (::testing::Test::HasFatalFailure()) return;
    if (getenv("TRUST_DEBUG")) fprintf(stderr, "%s @%lld\n", where.c_str(), (long long)(now - T0));
    check_state();
  }
};

void run_many(PolicyMode mode, int seeds, int steps) {
  int from = getenv("TRUST_SEED") ? atoi(getenv("TRUST_SEED")) : 1;
  for (int seed = from; seed <= seeds; ++seed) {
    std::string first;
    for (int rep = 0; rep < 2; ++rep) {  // I8: the same seed twice gives the same transcript
      Driver d(static_cast<std::uint64_t>(seed) * 7919 + static_cast<int>(mode), mode);
      for (int i = 0; i < steps; ++i) {
        d.step(i);
        if (::testing::Test::HasFatalFailure()) {
          ADD_FAILURE() << "mode " << static_cast<int>(mode) << " seed " << seed;
          return;
        }
      }
      d.advance(d.now + 3 * 24 * kHour);  // everything expires eventually (I4)
      if (::testing::Test::HasFatalFailure()) return;
      ASSERT_TRUE(d.engine->enforced().empty() ||
                  std::all_of(d.engine->enforced().begin(), d.engine->enforced().end(),
                              [](auto& b) { return b.by_operator; }))
          << "seed " << seed;
      if (rep == 0)
        first = d.transcript;
      else
        ASSERT_EQ(first, d.transcript) << "non-deterministic, seed " << seed;
    }
  }
}

TEST(TrustEngineProperty, TrustModeInvariantsHoldOnRandomHistories) {
  run_many(PolicyMode::trust, 1000, 80);
}

TEST(TrustEngineProperty, NaiveModeStaysConsistentAndBounded) {
  run_many(PolicyMode::naive, 300, 80);
}

TEST(TrustEngineProperty, QuorumModeStaysConsistentAndBounded) {
  run_many(PolicyMode::quorum, 300, 80);
}

}  // namespace
}  // namespace meshd::trust

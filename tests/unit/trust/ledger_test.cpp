// Trust ledger, parameter table and the pure policy formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "trust/ledger.hpp"
#include "trust/params.hpp"
#include "trust/policy.hpp"

namespace meshd::trust {
namespace {

constexpr TimeMs T0 = 1'700'000'000'000;

TEST(TrustLedger, NewOriginsStartAtThePriorUnknownHaveNone) {
  Params p;
  TrustLedger l(p);
  EXPECT_TRUE(l.ensure("a", "z1", T0));
  EXPECT_FALSE(l.ensure("a", "z1", T0));
  EXPECT_DOUBLE_EQ(l.trust("a", T0), p.prior);
  EXPECT_EQ(l.trust("stranger", T0), 0.0);
}

TEST(TrustLedger, GainsApproachButNeverExceedTcapLossesAreFaster) {
  Params p;
  TrustLedger l(p);
  l.ensure("a", "z1", T0);
  l.ensure("b", "z1", T0);
  double prev = l.trust("a", T0);
  for (int i = 0; i < 10000; ++i) {
    l.add_gain("a", 1.0, T0);
    double t = l.trust("a", T0);
    ASSERT_GE(t, prev);
    ASSERT_LE(t, p.t_cap);
    prev = t;
  }
  EXPECT_NEAR(prev, p.t_cap, 1e-3);
  l.add_gain("b", 1.0, T0);
  double up = l.trust("b", T0) - p.prior;
  TrustLedger l2(p);
  l2.ensure("b", "z1", T0);
  l2.add_loss("b", 1.0, T0);
  double down = p.prior - l2.trust("b", T0);
  EXPECT_GT(down, 2 * up);  // loss_ratio 3: a contradiction outweighs a corroboration
}

TEST(TrustLedger, EvidenceDecaysTowardsThePriorWithTheHalfLife) {
  Params p;
  TrustLedger l(p);
  l.ensure("a", "z1", T0);
  l.add_loss("a", 4.0, T0);
  const LedgerEntry* e = l.find("a");
  double neg = e->neg;
  double low = l.trust("a", T0);
  EXPECT_TRUE(l.refresh("a", T0 + p.half_life_ms));
  EXPECT_NEAR(l.find("a")->neg, neg / 2, 1e-9);
  EXPECT_GT(l.trust("a", T0 + p.half_life_ms), low);
  l.refresh("a", T0 + 40 * p.half_life_ms);
  EXPECT_NEAR(l.trust("a", T0 + 40 * p.half_life_ms), p.prior, 1e-6);
}

TEST(TrustLedger, QuarantineIsZeroThenLow) {
  Params p;
  TrustLedger l(p);
  l.ensure("a", "z1", T0);
  for (int i = 0; i < 50; ++i) l.add_gain("a", 1, T0);
  l.quarantine("a", T0);
  EXPECT_TRUE(l.quarantined("a", T0 + p.quarantine_ms - 1));
  EXPECT_EQ(l.trust("a", T0 + p.quarantine_ms - 1), 0.0);
  l.refresh("a", T0 + p.quarantine_ms);
  EXPECT_FALSE(l.quarantined("a", T0 + p.quarantine_ms));
  double t = l.trust("a", T0 + p.quarantine_ms);
  EXPECT_GT(t, 0.0);
  EXPECT_LT(t, p.prior / 2);  // milking gains nothing: the old reputation is gone
  // The local node is pinned: never quarantined, always t_cap.
  l.pin("me", "z0", T0);
  l.quarantine("me", T0);
  l.add_loss("me", 100, T0);
  EXPECT_DOUBLE_EQ(l.trust("me", T0), p.t_cap);
}

TEST(TrustLedger, SerialisesRoundTripWithOddNames) {
  Params p;
  TrustLedger l(p);
  l.ensure("node a%b", "", T0);
  l.ensure("ü-node\t7", "zone/rack 1", T0);
  l.add_gain("node a%b", 2.5, T0 + 5);
  l.add_loss("ü-node\t7", 1.0, T0 + 6);
  l.quarantine("ü-node\t7", T0 + 7);
  l.pin("me", "z0", T0);
  auto text = l.serialize();
  auto back = TrustLedger::deserialize(text, p);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->serialize(), text);
  for (const char* n : {"node a%b", "ü-node\t7", "me"})
    EXPECT_EQ(back->trust(n, T0 + 10), l.trust(n, T0 + 10)) << n;
  EXPECT_EQ(back->find("node a%b")->domain, "");
  EXPECT_EQ(back->find("ü-node\t7")->domain, "zone/rack 1");
}

TEST(TrustLedger, DeserialiseRejectsCorruptInputWithLineNumbers) {
  Params p;
  const std::string h = "meshd-trust-ledger v1\n";
  struct Case {
    std::string text;
    const char* says;
  } cases[] = {
      {"", "empty"},
      {"garbage\n", "header"},
      {h + "a z 1 2 3\n", "7 fields"},
      {h + "a z -1 0 0 0 0\n", "pos"},
      {h + "a z 1 nan 0 0 0\n", "neg"},
      {h + "a z 1 0 x 0 0\n", "updated_at"},
      {h + "a z 1 0 0 0 2\n", "pinned"},
      {h + "a%G1 z 1 0 0 0 0\n", "node id"},
      {h + "a z 1 0 0 0 0\na y 1 0 0 0 0\n", "duplicate"},
  };
  for (auto& c : cases) {
    auto r = TrustLedger::deserialize(c.text, p);
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_EQ(r.error().code, "bad_ledger");
    EXPECT_NE(r.error().message.find(c.says), std::string::npos) << r.error().message;
  }
  auto r = TrustLedger::deserialize(h + "a z 1 0 0 0 0\nb z bad 0 0 0 0\n", p);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("line 3"), std::string::npos) << r.error().message;
}

TEST(TrustParams, TableListsEveryParameterOnceWithDefaults) {
  std::set<std::string_view> names;
  Params d = Params::defaults();
  for (const auto& row : param_table()) {
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_FALSE(row.description.empty()) << row.name;
    EXPECT_FALSE(row.unit.empty()) << row.name;
    // get(defaults) parses back to the same value.
    Params q = d;
    ASSERT_TRUE(row.set(q, row.get(d)).has_value()) << row.name;
    EXPECT_EQ(row.get(q), row.get(d)) << row.name;
  }
  for (const char* n : {"mode", "t_cap", "s_cap", "ttl_max_ms", "ttl_single_ms", "budget_burst",
                        "half_life_ms", "cost_usage", "benefit_critical", "quorum_k"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_TRUE(d.validate().has_value());
  EXPECT_EQ(find_param("mode")->get(d), "trust");
}

TEST(TrustParams, SetParamParsesAndValidateChecksRelations) {
  Params p;
  ASSERT_TRUE(set_param(p, "s_cap", "0.5"));
  EXPECT_DOUBLE_EQ(p.s_cap, 0.5);
  ASSERT_TRUE(set_param(p, "ttl_single_ms", "60000"));
  EXPECT_EQ(p.ttl_single_ms, 60000);
  ASSERT_TRUE(set_param(p, "mode", "quorum:4"));
  EXPECT_EQ(p.quorum_k, 4u);
  auto unknown = set_param(p, "t_cup", "0.5");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("policy.t_cup"), std::string::npos);
  auto notnum = set_param(p, "s_cap", "lots");
  ASSERT_FALSE(notnum);
  EXPECT_NE(notnum.error().message.find("policy.s_cap"), std::string::npos);
  EXPECT_FALSE(set_param(p, "ttl_max_ms", "1.5"));  // integers only
  for (auto [name, value] : {std::pair{"t_cap", "1"},
                             {"t_cap", "0"},
                             {"prior", "0.95"},
                             {"s_cap", "1"},
                             {"loss_ratio", "0.5"},
                             {"ttl_single_ms", "999999999999"},
                             {"budget_burst", "0"},
                             {"cost_base", "0"},
                             {"half_life_ms", "0"}}) {
    Params q;
    ASSERT_TRUE(set_param(q, name, value)) << name;
    auto v = q.validate();
    ASSERT_FALSE(v) << name << "=" << value;
    EXPECT_EQ(v.error().code, "bad_param");
    EXPECT_NE(v.error().message.find(name), std::string::npos) << v.error().message;
  }
}

TEST(TrustPolicy, NoisyOrCapAndThreshold) {
  Params p;
  double one[] = {0.6};
  EXPECT_DOUBLE_EQ(noisy_or(one), 0.6);
  double two[] = {0.6, 0.6};
  EXPECT_NEAR(noisy_or(two), 0.84, 1e-12);
  double none[] = {0.0};
  EXPECT_EQ(noisy_or(none), 0.0);
  EXPECT_EQ(noisy_or({}), 0.0);
  EXPECT_DOUBLE_EQ(domain_support(0.95, p), p.s_cap);
  EXPECT_DOUBLE_EQ(domain_support(0.3, p), 0.3);
  EXPECT_DOUBLE_EQ(threshold(1, 4), 0.2);
  EXPECT_EQ(threshold(1, 0), 1.0);
  EXPECT_EQ(threshold(INFINITY, 4), 1.0);
}

TEST(TrustPolicy, CostGrowsWithUsageAndBreadth) {
  Params p;
  auto v4 = [](const char* s) { return *Prefix::parse(s); };
  EXPECT_DOUBLE_EQ(cost(v4("192.0.2.1"), 0, p), p.cost_base);
  EXPECT_DOUBLE_EQ(cost(v4("192.0.2.1"), 1, p), p.cost_base + p.cost_usage);
  EXPECT_GT(cost(v4("192.0.2.1"), 1000, p), cost(v4("192.0.2.1"), 10, p));
  EXPECT_DOUBLE_EQ(cost(v4("192.0.2.0/24"), 0, p), p.cost_base + 8 * p.cost_breadth);
  EXPECT_EQ(effective_host_bits(v4("0.0.0.0/0")), 32);
  EXPECT_EQ(effective_host_bits(v4("2001:db8::/64")), 0);
  EXPECT_EQ(effective_host_bits(v4("::/0")), 64);
  EXPECT_DOUBLE_EQ(benefit(Severity::critical, p), p.benefit_critical);
}

TEST(TrustPolicy, TtlGrowsWithScoreAndIsCapped) {
  Params p;
  EXPECT_EQ(ttl_for(0.2, 0.2, false, p), p.ttl_min_ms);
  EXPECT_EQ(ttl_for(1.0, 0.2, false, p), p.ttl_max_ms);
  EXPECT_LT(ttl_for(0.5, 0.2, false, p), ttl_for(0.7, 0.2, false, p));
  EXPECT_EQ(ttl_for(1.0, 0.2, true, p), p.ttl_single_ms);
  EXPECT_LE(ttl_for(5.0, 0.2, false, p), p.ttl_max_ms);
}

}  // namespace
}  // namespace meshd::trust

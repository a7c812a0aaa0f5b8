// Scenario parsing (defaults, strict keys, clear errors naming the key), the overlay and the
// model builder.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "simulations/model.hpp"
#include "simulations/overlay.hpp"
#include "simulations/rng.hpp"
#include "simulations/scenario.hpp"
#include "simulations/simulator.hpp"

namespace meshd::sim {
namespace {

TEST(ScenarioParse, EmptyFileIsAllDefaults) {
  auto s = parse_scenario("", "dflt");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->name, "dflt");
  EXPECT_EQ(s->nodes, 1000);
  EXPECT_EQ(s->degree, 8);
  EXPECT_EQ(s->domains, 20);
  EXPECT_DOUBLE_EQ(s->link.latency_ms, 20);
  EXPECT_DOUBLE_EQ(s->link.jitter_ms, 5);
  EXPECT_DOUBLE_EQ(s->duration_s, 1800);
  EXPECT_EQ(s->policy.kind, PolicyKind::trust);
  EXPECT_EQ(s->traffic.services, 200);
  EXPECT_TRUE(s->attacks.empty());
  EXPECT_TRUE(s->adversaries.empty());
}

TEST(ScenarioParse, DesignExampleParses) {
  auto s = parse_scenario(R"(
name: example
seed: 7
nodes: 1000
degree: 8
domains: 20
link: {latency_ms: 20, jitter_ms: 5, loss: 0.0}
duration_s: 1800
policy: quorum:3
traffic: {services: 200, zipf: 1.1, flows_per_node_per_s: 5}
attacks:
  - {targets: 50, detect_prob: 0.05, start_s: 60, confidence: 0.95}
adversaries:
  - {count: 1, strategy: targeted, rate_per_min: 100, start_s: 600,
     honest_until_s: 600, domains: 1}
faults:
  - {at_s: 900, kind: partition, fraction: 0.5, duration_s: 60}
  - {at_s: 1200, kind: crash, count: 10, restart_after_s: 30}
)",
                          "x");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->seed, 7u);
  EXPECT_EQ(s->policy.kind, PolicyKind::quorum);
  EXPECT_EQ(s->policy.quorum_k, 3);
  ASSERT_EQ(s->adversaries.size(), 1u);
  EXPECT_EQ(s->adversaries[0].strategy, Strategy::targeted);
  ASSERT_EQ(s->faults.size(), 2u);
  EXPECT_EQ(s->faults[1].kind, FaultKind::crash);
  EXPECT_EQ(s->faults[1].count, 10);
}

struct BadCase {
  const char* yaml;
  const char* code;
  const char* names;  // the error message must contain this (the key path)
};

class ScenarioErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ScenarioErrors, NameTheKey) {
  auto s = parse_scenario(GetParam().yaml, "bad");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, GetParam().code) << s.error().message;
  EXPECT_NE(s.error().message.find(GetParam().names), std::string::npos) << s.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ScenarioErrors,
    ::testing::Values(
        BadCase{"nodez: 10\n", "unknown_key", "nodez"},
        BadCase{"link: {latency_ms: 20, jiter_ms: 1}\n", "unknown_key", "link.jiter_ms"},
        BadCase{"adversaries:\n  - {count: 1, strategy: evil}\n", "bad_value",
                "adversaries[0].strategy"},
        BadCase{"adversaries:\n  - {count: 1, colour: red}\n", "unknown_key",
                "adversaries[0].colour"},
        BadCase{"nodes: many\n", "bad_type", "nodes"},
        BadCase{"nodes: 10.5\n", "bad_type", "nodes"}, BadCase{"nodes: 1\n", "bad_value", "nodes"},
        BadCase{"link: {loss: 1.5}\n", "bad_value", "link.loss"},
        BadCase{"faults:\n  - {at_s: 1, kind: meteor}\n", "bad_value", "faults[0].kind"},
        BadCase{"faults:\n  - {at_s: 1}\n", "missing_key", "faults[0].kind"},
        BadCase{"attacks: {targets: 1}\n", "bad_type", "attacks"},
        BadCase{"policy: majority\n", "bad_value", "policy"},
        BadCase{"nodes: 10\ndegree: 10\n", "bad_value", "degree"},
        BadCase{"attacks:\n  - {severity: apocalyptic}\n", "bad_value", "attacks[0].severity"},
        BadCase{"nodes: [1, 2\n", "bad_yaml", "YAML"}));

TEST(ScenarioSetup, UnknownPolicyParamIsNamed) {
  auto s = prepare_text("nodes: 20\ndegree: 4\npolicy_params: {s_kap: 0.5}\n", "t", {});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, "bad_param");
  EXPECT_NE(s.error().message.find("s_kap"), std::string::npos) << s.error().message;
  auto c = prepare_text("nodes: 20\ndegree: 4\npolicy_params: {core.warp_speed: 9}\n", "t", {});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("core.warp_speed"), std::string::npos) << c.error().message;
  auto ok = prepare_text(
      "nodes: 20\ndegree: 4\npolicy_params: {s_cap: 0.5, core.anti_entropy_period_ms: 5000}\n", "t",
      {});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_DOUBLE_EQ(ok->params.s_cap, 0.5);
  EXPECT_EQ(ok->config.anti_entropy_period_ms, 5000);
}

TEST(Overlay, ConnectedWithAboutDegreeConnections) {
  Rng rng(42, "overlay");
  auto g = Overlay::random(2000, 8, rng);
  EXPECT_TRUE(g.connected());
  EXPECT_GT(g.mean_degree(), 7.9);
  EXPECT_LE(g.mean_degree(), 8.0);
  for (int n = 0; n < g.nodes(); ++n) {
    EXPECT_GE(g.neighbours(n).size(), 2u);
    EXPECT_LE(g.neighbours(n).size(), 8u);
  }
  const int d = g.diameter();
  EXPECT_GE(d, 4);
  EXPECT_LE(d, 8);
}

TEST(Overlay, DiameterOfAPath) {
  auto g = Overlay::from_edges(5, {{0, 1}, {1, 2}, {2, 3}, {3, 4}});
  EXPECT_EQ(g.diameter(), 4);
  auto split = Overlay::from_edges(4, {{0, 1}, {2, 3}});
  EXPECT_EQ(split.diameter(), -1);
}

TEST(Model, SameSeedSameModelDifferentSeedDifferentModel) {
  auto sc = parse_scenario(R"(
nodes: 100
degree: 6
domains: 5
duration_s: 300
attacks: [{targets: 10, detect_prob: 0.1, start_s: 10, spread_s: 100}]
adversaries: [{count: 3, strategy: targeted, start_s: 50, domains: 1}]
)",
                           "m");
  ASSERT_TRUE(sc);
  auto a = build_model(*sc, 5), b = build_model(*sc, 5), c = build_model(*sc, 6);
  ASSERT_TRUE(a && b && c);
  ASSERT_EQ((*a)->claims.size(), (*b)->claims.size());
  for (std::size_t i = 0; i < (*a)->claims.size(); ++i) {
    EXPECT_EQ((*a)->claims[i].at, (*b)->claims[i].at);
    EXPECT_EQ((*a)->claims[i].producer, (*b)->claims[i].producer);
  }
  EXPECT_NE((*a)->claims.size() == (*c)->claims.size() &&
                (*a)->claims.front().at == (*c)->claims.front().at,
            true);
  // Colluders inside one failure domain.
  std::set<std::uint32_t> domains;
  for (int n = 0; n < (*a)->nodes; ++n)
    if ((*a)->compromised[n]) domains.insert((*a)->domain_of[n]);
  EXPECT_EQ(domains.size(), 1u);
}

TEST(ShippedScenarios, AllLoadAndBuild) {
  int count = 0;
  for (const auto& e : std::filesystem::directory_iterator(MESHSIM_SCENARIOS)) {
    if (e.path().extension() != ".yaml") continue;
    ++count;
    auto s = prepare(e.path().string(), {});
    EXPECT_TRUE(s) << e.path() << ": " << (s ? "" : s.error().message);
    if (s) {
      EXPECT_GE((*s).model->diameter, 1) << e.path();
    }
  }
  EXPECT_GE(count, 12);
}

}  // namespace
}  // namespace meshd::sim

// Small versions of the shipped scenarios, run through the simulator library, with the
// outcomes the trust policy promises (trust/README.md) asserted. Each runs the real
// meshd/core + trust/ code.
#include <gtest/gtest.h>

#include <string>

#include "simulations/simulator.hpp"

namespace meshd::sim {
namespace {

// 80 nodes in 8 failure domains, 20 ms links, 20 malicious destinations seen by honest
// sensors from t = 20 s. Each test appends its adversary / fault.
const std::string kBase = R"(
nodes: 80
degree: 6
domains: 8
link: {latency_ms: 20, jitter_ms: 5, loss: 0.0}
duration_s: 240
traffic: {services: 100, zipf: 1.1, flows_per_node_per_s: 5}
attacks:
  - {targets: 20, detect_prob: 0.03, start_s: 20, spread_s: 100, confidence: 0.95}
)";

struct Ran {
  Setup setup;
  Outcome outcome;
  nlohmann::ordered_json report;
};

Ran run(const std::string& extra, std::uint64_t seed = 3) {
  Options o;
  o.seed = seed;
  auto s = prepare_text(kBase + extra, "test", o);
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  if (!s) return {};
  Ran r{*s, simulate(*s), {}};
  r.report = make_report(*r.setup.model, r.outcome.main(), r.outcome.naive(), 0, 0);
  return r;
}

TEST(MeshsimOutcome, SameSeedSameReport) {
  const std::string adv = R"(
adversaries:
  - {count: 1, strategy: targeted, rate_per_min: 60, start_s: 100}
)";
  auto a = run(adv, 9), b = run(adv, 9), c = run(adv, 10);
  EXPECT_EQ(a.report.dump(), b.report.dump());
  EXPECT_NE(a.report.dump(), c.report.dump());
}

TEST(MeshsimOutcome, HonestFleetDeliversEverything) {
  auto r = run("");
  const auto& j = r.report;
  EXPECT_DOUBLE_EQ(j["delivery"]["fraction"].get<double>(), 1.0);
  EXPECT_GT(j["delivery"]["pairs"].get<std::uint64_t>(), 1000u);  // ~48 claims x 79 nodes
  EXPECT_LE(j["messages"]["per_node_per_claim"].get<double>(), 6.0);
  EXPECT_GT(j["tp"]["coverage"].get<double>(), 0.9);
  EXPECT_DOUBLE_EQ(j["harm"]["total"].get<double>(), 0.0);
}

// Both at the trust engine's default parameters (no policy_params).
TEST(MeshsimOutcome, SingleCompromisedTargetedIsBounded) {
  auto r = run(R"(
adversaries:
  - {count: 1, strategy: targeted, rate_per_min: 100, start_s: 100}
)");
  const auto& h = r.report["harm"];
  EXPECT_GT(h["naive_total"].get<double>(), 0.0);
  EXPECT_LE(h["ratio_vs_naive"].get<double>(), 0.01) << r.report.dump();
  EXPECT_DOUBLE_EQ(h["protected"].get<double>(), 0.0);
  EXPECT_GE(r.report["tp"]["coverage"].get<double>(),
            0.95 * r.report["tp"]["naive_coverage"].get<double>());
}

TEST(MeshsimOutcome, MilkingIsBounded) {
  auto r = run(R"(
adversaries:
  - {count: 1, strategy: milking, rate_per_min: 100, start_s: 150, honest_until_s: 150}
)");
  const auto& h = r.report["harm"];
  EXPECT_GT(h["naive_total"].get<double>(), 0.0);
  EXPECT_LE(h["ratio_vs_naive"].get<double>(), 0.01) << r.report.dump();
  EXPECT_DOUBLE_EQ(h["protected"].get<double>(), 0.0);
}

// Collusion across failure domains (trust/README.md "Collusion resistance"), at the defaults:
// 8 domains, so q_max = floor(8/3) + 1 = 3. Two colluders in two domains can never block what
// a node uses steadily; three (= q_max) are held by the contradictions of the nodes' benign
// evidence; random claims are held too. The honest C2 detections keep their fast path.
void expect_collusion_bounded(const Ran& r, double bound) {
  const auto& h = r.report["harm"];
  EXPECT_GT(h["naive_total"].get<double>(), 0.0);
  EXPECT_LE(h["ratio_vs_naive"].get<double>(), bound) << r.report.dump();
  EXPECT_DOUBLE_EQ(h["protected"].get<double>(), 0.0);
  EXPECT_GE(r.report["tp"]["coverage"].get<double>(),
            0.95 * r.report["tp"]["naive_coverage"].get<double>());
  // A real C2 is enforced as the claim arrives (I7), not after a quorum wait.
  EXPECT_LE(r.report["tp"]["p99_ms"].get<double>(),
            1.1 * r.report["delivery"]["p99_ms"].get<double>())
      << r.report.dump();
  EXPECT_GT(r.report["counters"]["contradictions"].get<std::uint64_t>(), 0u);
}

TEST(MeshsimOutcome, ColludersInSeveralDomainsAreBounded) {
  expect_collusion_bounded(run(R"(
adversaries:
  - {count: 2, strategy: targeted, rate_per_min: 100, start_s: 100, domains: 2}
)"),
                           0.02);
  expect_collusion_bounded(run(R"(
adversaries:
  - {count: 3, strategy: milking, rate_per_min: 100, start_s: 120, honest_until_s: 120, domains: 3}
)",
                               4),
                           0.02);
  expect_collusion_bounded(run(R"(
adversaries:
  - {count: 3, strategy: random, rate_per_min: 100, start_s: 100, domains: 3}
)",
                               5),
                           0.03);
}

TEST(MeshsimOutcome, EquivocationIsQuarantinedEverywhereFast) {
  auto r = run(R"(
adversaries:
  - {count: 1, strategy: equivocate, rate_per_min: 10, start_s: 100}
)");
  const auto& q = r.report["quarantine"];
  EXPECT_TRUE(q["detected"].get<bool>()) << r.report.dump();
  EXPECT_LE(q["p99_ms"].get<double>(), 5000.0);
}

TEST(MeshsimOutcome, ProtectedClaimsNeverEnforcedAndQuarantined) {
  auto r = run(R"(
adversaries:
  - {count: 1, strategy: protected, rate_per_min: 30, start_s: 100}
)");
  EXPECT_DOUBLE_EQ(r.report["harm"]["protected"].get<double>(), 0.0);
  // Naive has no protected list: the same claims hurt it.
  EXPECT_GT(r.report["harm"]["naive_protected"].get<double>(), 0.0);
  EXPECT_TRUE(r.report["quarantine"]["detected"].get<bool>()) << r.report.dump();
  EXPECT_LE(r.report["quarantine"]["p99_ms"].get<double>(), 5000.0);
}

TEST(MeshsimOutcome, SybilsDoNoHarm) {
  auto r = run(R"(
adversaries:
  - {count: 1, strategy: sybil, rate_per_min: 200, start_s: 60, sybils: 20}
)");
  EXPECT_DOUBLE_EQ(r.report["harm"]["total"].get<double>(), 0.0) << r.report.dump();
  // Forgeries and uncertified keys were seen and refused.
  EXPECT_GT(r.report["counters"]["invalid"].get<std::uint64_t>(), 0u);
}

TEST(MeshsimOutcome, FloodDoesNotSlowHonestDelivery) {
  auto base = run("");
  auto flood = run(R"(
adversaries:
  - {count: 1, strategy: flood, rate_per_min: 1200, start_s: 40}
)");
  const auto& d = flood.report["delivery"];
  EXPECT_GE(d["fraction"].get<double>(), 0.999) << flood.report.dump();
  EXPECT_LE(d["p99_ms"].get<double>(), 1.2 * base.report["delivery"]["p99_ms"].get<double>());
  // The flooder was cut off: rate-limited per origin, then quarantined for gross overrun.
  EXPECT_GT(flood.report["counters"]["rate_limited_origin"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(flood.report["quarantine"]["detected"].get<bool>()) << flood.report.dump();
}

TEST(MeshsimOutcome, PartitionHealsWithinFiveSeconds) {
  auto r = run(R"(
faults:
  - {at_s: 40, kind: partition, fraction: 0.5, duration_s: 60}
)");
  const auto& p = r.report["partition"];
  EXPECT_GT(p["pairs_pending_at_heal"].get<std::uint64_t>(), 0u);  // the cut mattered
  EXPECT_TRUE(p["all_reached"].get<bool>()) << r.report.dump();
  EXPECT_LE(p["heal_max_ms"].get<double>(), 5000.0);
  EXPECT_DOUBLE_EQ(r.report["delivery"]["fraction"].get<double>(), 1.0);
}

TEST(MeshsimOutcome, CrashedNodesCatchUpAfterRestart) {
  auto r = run(R"(
faults:
  - {at_s: 50, kind: crash, count: 10, restart_after_s: 40}
)");
  EXPECT_EQ(r.report["crash"]["restarts"].get<std::uint64_t>(), 10u);
  EXPECT_GT(r.report["counters"]["restored"].get<std::uint64_t>(), 0u);
  // Claims issued while they were down reached them after the restart, via anti-entropy.
  EXPECT_GT(r.report["crash"]["catchup_max_ms"].get<double>(), 0.0);
  EXPECT_LE(r.report["crash"]["catchup_max_ms"].get<double>(), 5000.0);
  EXPECT_DOUBLE_EQ(r.report["delivery"]["fraction"].get<double>(), 1.0) << r.report.dump();
}

}  // namespace
}  // namespace meshd::sim

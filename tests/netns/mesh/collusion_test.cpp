// Collusion resistance with real daemons (issue [J], trust/README.md "Collusion resistance"),
// label netns, root.
//
// Nine meshd daemons (bpf backend), each in its own failure domain (zone-1 .. zone-9). An
// "outside" namespace on the mesh bridge runs a real TCP service (10.213.0.201:80) and a
// stand-in C2 server (10.213.0.200:443). The six honest nodes really use the service: two
// workloads (two child cgroups of the node's cgroup, so two distinct sources) per node connect
// to it again and again, and each node's own sensor (the cgroup connect hooks) counts those
// flows as local benign evidence. Then the three compromised nodes 7, 8, 9 (valid fleet
// certificates, three different domains) claim the service with confidence 1 and severity
// critical (`meshctl block add` on each: real signed claims, gossiped).
//
// Checked on every honest node: the claims arrive and are refused (never enforced, no
// block_enforce event); real connects from both workloads still reach the service; `meshctl
// explain --json` says why: every refusing rule (`refused_by` holds domains_short, since 3 of
// the required 4 domains back it with D = 9), the strong benign evidence (E, sources), C's
// benign term, the benefit cap, each claim `contradicted`; `meshctl trust --json` shows each
// colluder's trust below what it was before its claim. The colluders enforce their own claim
// (a workload on node 7 gets EPERM): the block was real and enforceable, the honest nodes
// refused it. Then a workload on node 1 meets the C2 (in node 1's threat feed), the colluders
// claim the C2 too, and every node enforces it within a second of node 1's claim: a real
// connect to it fails with EPERM on all nine.
//
// The usage window is short (`sensor.usage_bucket_ms` 500 ms x 120) and strong evidence needs
// 2 s of steady use (`policy.benign_strong_span_ms`, default 1 min) so the test fits in well
// under a minute. `policy.fleet_domains: 9` tells every node the size of the fleet, as an
// operator would, so D does not depend on which peers a node happens to have met.
//
// Mutation check: MESHD_COLLUSION_TEST_DISABLE=1 sets `policy.benign_min_sources` to 10^9 on
// every node, which turns all local benign evidence off (E = 0: no benign cost, no quorum, no
// contradiction). The honest nodes then enforce the colluders' block and this test fails.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "meshd/common/clock.hpp"
#include "tests/netns/mesh/mesh_cluster.hpp"

namespace meshd::test {
namespace {

using nlohmann::json;

constexpr int kNodes = 9;
constexpr int kHonest = 6;  // nodes 1..6; nodes 7..9 collude
const std::vector<int> kColluders{7, 8, 9};
const std::string kService = "10.213.0.201";
constexpr std::uint16_t kServicePort = 80;
const std::string kC2 = "10.213.0.200";
constexpr std::uint16_t kC2Port = 443;

std::string fixed3(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

class CollusionTest : public ::testing::Test {
 protected:
  void SetUp() override { skip_unless_root(); }
  void TearDown() override {
    if (HasFailure() && mesh) std::cerr << mesh->logs(25);
    listeners.clear();
    apps.clear();  // child cgroups before the node cgroups they live in
    mesh.reset();
  }

  // errno of one TCP connect to address:port from a workload in `cgroup`, inside node's
  // namespace (0 = connected).
  int connect_from(int node, const TestCgroup& cgroup, const std::string& address,
                   std::uint16_t port) const {
    // The child would write out a copy of whatever stdout still buffers.
    std::cout.flush();
    std::fflush(stdout);
    return run_child({.cgroup = &cgroup, .netns = &mesh->ns(node), .comm = "workload"},
                     [&] { return tcp_connect(address, port, 1000); });
  }

  // Trust of `origin` in node's ledger (`meshctl trust --json`), or -1 when not listed.
  double trust_of(int node, const std::string& origin) const {
    json t = mesh->ctl_json(node, "trust");
    if (!t.is_array()) return -1;
    for (const auto& e : t)
      if (e.value("node", "") == origin) return e.value("trust", -1.0);
    return -1;
  }

  // `meshctl explain ADDR --json` on node: its first target (the most specific), or null.
  json explain(int node, const std::string& address) const {
    json x = mesh->ctl_json(node, "explain " + address);
    if (!x.is_object() || !x.contains("targets") || x["targets"].empty()) return nullptr;
    return x["targets"][0];
  }

  std::unique_ptr<MeshCluster> mesh;
  std::vector<std::unique_ptr<TcpListener>> listeners;
  // apps[i - 1] = the two workloads of honest node i.
  std::vector<std::vector<std::unique_ptr<TestCgroup>>> apps;
};

TEST_F(CollusionTest, ColludersInThreeDomainsCannotBlockAUsedServiceAndARealC2IsStillBlocked) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool disabled = std::getenv("MESHD_COLLUSION_TEST_DISABLE") != nullptr;
  MeshOptions o;
  o.nodes = kNodes;
  o.backend = "bpf";
  o.domains.clear();
  for (int i = 1; i <= kNodes; ++i) o.domains.push_back("zone-" + std::to_string(i));
  o.feeds[1] = "# collusion test threat feed\n" + kC2 + "\n";
  for (int i = 1; i <= kNodes; ++i) o.sensor_yaml[i] = "usage_bucket_ms: 500\n  usage_buckets: 120";
  o.policy["benign_strong_span_ms"] = "2000";
  o.policy["fleet_domains"] = std::to_string(kNodes);
  if (disabled) {
    std::cout << "MESHD_COLLUSION_TEST_DISABLE: policy.benign_min_sources = 1e9 (no benign "
                 "evidence): this test is expected to FAIL\n";
    o.policy["benign_min_sources"] = "1000000000";
  }
  mesh = std::make_unique<MeshCluster>(o);
  mesh->start_all();
  ASSERT_TRUE(mesh->wait_ready(6, 30000)) << "the mesh did not come up";
  for (int i = 1; i <= kNodes; ++i)
    ASSERT_EQ(mesh->ctl_json(i, "status").value("backend", ""), "bpf") << mesh->name(i);

  const NetNs& outside = mesh->attach("mout", {kService, kC2});
  listeners.push_back(std::make_unique<TcpListener>(&outside, kService, kServicePort));
  listeners.push_back(std::make_unique<TcpListener>(&outside, kC2, kC2Port));
  for (int i = 1; i <= kHonest; ++i) {
    apps.emplace_back();
    for (const char* app : {"app-a", "app-b"})
      apps.back().push_back(std::make_unique<TestCgroup>(mesh->cgroup(i), app));
  }

  // 1. The honest nodes' workloads use the service: 2 workloads x 20 rounds, 150 ms apart
  // (about 3 s of steady use), seen by each node's own sensor.
  constexpr int kRounds = 20;
  for (int r = 0; r < kRounds; ++r) {
    for (int i = 1; i <= kHonest; ++i)
      for (const auto& app : apps[static_cast<std::size_t>(i - 1)])
        ASSERT_EQ(connect_from(i, *app, kService, kServicePort), 0)
            << mesh->name(i) << " could not use the service (round " << r << ")";
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  // Before any claim: explain --json answers with JSON for an address nobody claimed, and
  // each honest node holds strong benign evidence for the service.
  std::map<int, json> before;
  const bool strong_everywhere = wait_until(
      [&] {
        for (int i = 1; i <= kHonest; ++i) {
          before[i] = explain(i, kService);
          if (!before[i].is_object() ||
              (!before[i]["benign_evidence"].value("strong", false) && !disabled))
            return false;
        }
        return true;
      },
      5000);
  for (int i = 1; i <= kHonest; ++i) {
    ASSERT_TRUE(before[i].is_object())
        << mesh->name(i) << ": meshctl explain " << kService << " --json printed no JSON:\n"
        << mesh->ctl(i, "explain " + kService + " --json").output;
    EXPECT_EQ(before[i].value("verdict", ""), "no_claims") << before[i].dump(2);
    EXPECT_EQ(before[i]["refused_by"], json::array({"no_claims"})) << before[i].dump(2);
  }
  ASSERT_TRUE(strong_everywhere) << "no strong benign evidence for " << kService << " on "
                                 << mesh->name(1) << ": " << before[1].dump(2);
  std::map<int, std::map<int, double>> trust_before;  // [honest][colluder]
  for (int i = 1; i <= kHonest; ++i)
    for (int c : kColluders) trust_before[i][c] = trust_of(i, mesh->name(c));

  // 2. The colluders claim the service.
  for (int c : kColluders) {
    auto r = mesh->ctl(
        c, "block add " + kService + " --confidence 1 --severity critical --reason collusion-test");
    ASSERT_TRUE(r.ok()) << mesh->name(c) << ": " << r.output;
  }
  const bool delivered = wait_until(
      [&] {
        for (int i = 1; i <= kHonest; ++i) {
          json b = mesh->block(i, kService);
          if (!b.is_object() || b["origins"].size() != kColluders.size()) return false;
        }
        return true;
      },
      5000);
  ASSERT_TRUE(delivered) << "the colluders' claims did not reach every honest node";
  // An enforcement, if any, happens in the call that delivers a claim; the per-bucket
  // re-check (500 ms) gets one more chance here.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));

  // The colluders enforce their own claims: the block was real (a workload on node 7 is
  // denied), only the honest nodes refuse it.
  {
    TestCgroup colluder_app(mesh->cgroup(7), "app-x");
    EXPECT_EQ(connect_from(7, colluder_app, kService, kServicePort), EPERM)
        << "node7 does not enforce its own claim on the service";
  }

  for (int i = 1; i <= kHonest; ++i) {
    const std::string n = mesh->name(i);
    EXPECT_FALSE(mesh->enforced(i, kService)) << n << " enforces the colluders' block:\n"
                                              << mesh->ctl(i, "explain " + kService).output;
    EXPECT_FALSE(mesh->event_at(i, "block_enforce", kService).has_value())
        << n << " enforced the service at some point";
    for (const auto& app : apps[static_cast<std::size_t>(i - 1)])
      EXPECT_EQ(connect_from(i, *app, kService, kServicePort), 0)
          << n << ": a workload can no longer reach the service";

    const json x = explain(i, kService);
    ASSERT_TRUE(x.is_object()) << n << ": meshctl explain " << kService << " --json:\n"
                               << mesh->ctl(i, "explain " + kService + " --json").output;
    const std::string verdict = x.value("verdict", "");
    EXPECT_NE(verdict, "enforce") << x.dump(2);
    // Every refusing rule is named: with D = 9 the strong evidence requires the full quorum
    // of 4 domains; 3 back it. below_threshold joins it once the colluders' trust fell.
    const json& refused = x["refused_by"];
    EXPECT_TRUE(refused.is_array() && !refused.empty() && refused[0] == verdict) << x.dump(2);
    const bool names_domains_short =
        std::find(refused.begin(), refused.end(), json("domains_short")) != refused.end();
    EXPECT_TRUE(names_domains_short) << x.dump(2);
    const json& ev = x["benign_evidence"];
    EXPECT_TRUE(ev.value("strong", false)) << x.dump(2);
    EXPECT_GE(ev.value("sources", 0), 2) << x.dump(2);
    EXPECT_GE(ev.value("E", 0.0), 2.0 * kRounds) << x.dump(2);
    EXPECT_GE(x["cost_terms"].value("benign", 0.0), 0.25 * 2 * kRounds) << x.dump(2);
    EXPECT_EQ(x.value("fleet_domains", 0), kNodes) << x.dump(2);
    EXPECT_EQ(x.value("quorum_max", 0), kNodes / 3 + 1) << x.dump(2);
    EXPECT_EQ(x.value("domains_required", 0), kNodes / 3 + 1) << x.dump(2);
    EXPECT_EQ(x.value("domains_supporting", 0), static_cast<int>(kColluders.size())) << x.dump(2);
    EXPECT_LT(x.value("benefit_cap", 99.0), x.value("benefit_claimed", 0.0)) << x.dump(2);
    EXPECT_EQ(x["claims"].size(), kColluders.size()) << x.dump(2);
    for (const auto& c : x["claims"])
      EXPECT_TRUE(c.value("contradicted", false)) << n << ": " << c.dump();
    const json status = mesh->ctl_json(i, "status");
    EXPECT_GE(status["usage"].value("claims_contradicted", 0), static_cast<int>(kColluders.size()))
        << status.dump(2);

    // The contradiction cost each colluder trust here.
    for (int c : kColluders) {
      const double after = trust_of(i, mesh->name(c));
      EXPECT_GE(trust_before[i][c], 0.0) << n << " did not list " << mesh->name(c);
      EXPECT_LT(after, trust_before[i][c] - 0.1)
          << n << ": " << mesh->name(c) << "'s trust did not fall: " << trust_before[i][c] << " -> "
          << after;
    }
    std::cout << n << ": " << kService << " " << verdict << " refused_by " << refused.dump()
              << ", E " << ev.value("E", 0.0) << " (" << ev.value("sources", 0) << " sources, span "
              << ev.value("span_ms", 0) << " ms), S " << fixed3(x.value("score", 0.0))
              << " < threshold " << fixed3(x.value("threshold", 0.0)) << ", domains "
              << x.value("domains_supporting", 0) << "/" << x.value("domains_required", 0)
              << ", trust node7 " << fixed3(trust_before[i][7]) << " -> "
              << fixed3(trust_of(i, "node7")) << "\n";
  }
  std::cout << mesh->name(1) << " meshctl explain " << kService << ":\n"
            << mesh->ctl(1, "explain " + kService).output << mesh->name(1) << " meshctl trust:\n"
            << mesh->ctl(1, "trust").output;

  // 3. A real C2: node 1's workload meets it (threat feed), the colluders claim it too.
  // Nobody uses it, so nothing stands against it: every node blocks it, as fast as before.
  {
    TestCgroup infected(mesh->cgroup(1), "infected");
    connect_from(1, infected, kC2, kC2Port);  // the first connect is not blocked yet
  }
  ASSERT_TRUE(wait_until([&] { return mesh->event_at(1, "claim_signed", kC2).has_value(); }, 5000))
      << "node1's threat feed did not turn the connect into a claim";
  const std::int64_t claimed = *mesh->event_at(1, "claim_signed", kC2);
  for (int c : kColluders) {
    auto r = mesh->ctl(c, "block add " + kC2 + " --confidence 1 --severity critical --reason c2");
    ASSERT_TRUE(r.ok()) << r.output;
  }
  ASSERT_TRUE(wait_until(
      [&] {
        for (int i = 1; i <= kNodes; ++i)
          if (!mesh->enforced(i, kC2)) return false;
        return true;
      },
      5000))
      << "the C2 is not blocked everywhere";
  std::int64_t slowest = 0;
  for (int i = 1; i <= kNodes; ++i) {
    const auto at = mesh->event_at(i, "block_enforce", kC2);
    ASSERT_TRUE(at.has_value()) << mesh->name(i);
    slowest = std::max(slowest, *at - claimed);
    EXPECT_LE(*at - claimed, 1000) << mesh->name(i) << " enforced the C2 late";
    TestCgroup probe(mesh->cgroup(i), "probe");
    EXPECT_EQ(connect_from(i, probe, kC2, kC2Port), EPERM)
        << mesh->name(i) << ": a workload still reaches the C2";
    const json x = explain(i, kC2);
    ASSERT_TRUE(x.is_object()) << mesh->name(i);
    EXPECT_EQ(x.value("verdict", ""), "enforce") << x.dump(2);
    EXPECT_TRUE(x["refused_by"].empty()) << x.dump(2);
  }
  // The service is still in use everywhere it was.
  for (int i = 1; i <= kHonest; ++i)
    EXPECT_EQ(connect_from(i, *apps[static_cast<std::size_t>(i - 1)][0], kService, kServicePort), 0)
        << mesh->name(i);
  const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "C2 " << kC2 << ": claim_signed on node1 -> block_enforce on all " << kNodes
            << " nodes, slowest " << slowest << " ms; EPERM on every node\n"
            << "collusion test body: " << fixed3(secs) << " s\n";
}

}  // namespace
}  // namespace meshd::test

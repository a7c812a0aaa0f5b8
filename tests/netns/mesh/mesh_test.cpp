// A real 5-node meshd mesh in network namespaces (label netns, root): propagation, restart
// catch-up, foreign CA, hostile bytes, forged claims, and the end-to-end data plane.
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "meshd/common/clock.hpp"
#include "tests/netns/mesh/mesh_cluster.hpp"

#ifndef MESHD_PEER_TOOL
#error "MESHD_PEER_TOOL must name the mesh_peer_tool binary"
#endif

namespace meshd::test {
namespace {

using nlohmann::json;

// Sum of every sample of a metric family (all label values).
double family_sum(const std::string& metrics_text, const std::string& family) {
  std::istringstream lines(metrics_text);
  std::string line;
  double sum = 0;
  while (std::getline(lines, line)) {
    if (line.rfind(family + "{", 0) != 0 && line.rfind(family + " ", 0) != 0) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

class MeshTest : public ::testing::Test {
 protected:
  void SetUp() override { skip_unless_root(); }
  void TearDown() override {
    if (HasFailure() && mesh) std::cerr << mesh->logs(25);
    mesh.reset();
  }

  // Builds and starts the mesh; fails the test when it does not come up.
  void start(MeshOptions options, int min_peers) {
    mesh = std::make_unique<MeshCluster>(std::move(options));
    mesh->start_all();
    ASSERT_TRUE(mesh->wait_ready(min_peers)) << "the mesh did not come up";
  }

  bool all_enforced(const std::string& prefix, bool want = true, int except = 0) const {
    for (int i = 1; i <= mesh->size(); ++i)
      if (i != except && mesh->enforced(i, prefix) != want) return false;
    return true;
  }

  std::string blocks_everywhere() const {
    std::string out;
    for (int i = 1; i <= mesh->size(); ++i)
      out += mesh->name(i) + ": " + mesh->ctl_json(i, "blocks").dump() + "\n";
    return out;
  }

  void block_add(int node, const std::string& target, const std::string& extra = "") {
    auto r =
        mesh->ctl(node, "block add " + target + " --confidence 0.9 --reason netns-test " + extra);
    ASSERT_TRUE(r.ok()) << r.output;
  }

  std::unique_ptr<MeshCluster> mesh;
};

TEST_F(MeshTest, BlockAddIsEnforcedOnAllNodesWithinOneSecondAndBlockDelLiftsIt) {
  start({}, 4);
  const std::string prefix = "203.0.113.7";
  block_add(1, "203.0.113.7");
  ASSERT_TRUE(wait_until([&] { return all_enforced(prefix); }, 5000)) << blocks_everywhere();
  const auto claimed = mesh->event_at(1, "claim_signed", prefix);
  ASSERT_TRUE(claimed.has_value());
  for (int i = 1; i <= mesh->size(); ++i) {
    auto at = mesh->event_at(i, "block_enforce", prefix);
    ASSERT_TRUE(at.has_value()) << mesh->name(i) << " logged no block_enforce";
    EXPECT_LE(*at - *claimed, 1000) << mesh->name(i) << " enforced late";
    EXPECT_EQ(mesh->block(i, prefix)["origins"], json::array({"node1"})) << mesh->name(i);
  }

  auto r = mesh->ctl(1, "block del 203.0.113.7");
  ASSERT_TRUE(r.ok()) << r.output;
  ASSERT_TRUE(wait_until([&] { return all_enforced(prefix, false); }, 5000))
      << blocks_everywhere() << "node2 metrics:\n"
      << mesh->metrics(2);
  const auto retracted = mesh->event_at(1, "retraction_signed", prefix);
  ASSERT_TRUE(retracted.has_value());
  for (int i = 1; i <= mesh->size(); ++i) {
    auto at = mesh->event_at(i, "block_lift", prefix);
    ASSERT_TRUE(at.has_value()) << mesh->name(i) << " logged no block_lift";
    EXPECT_LE(*at - *retracted, 1000) << mesh->name(i) << " lifted late";
  }
}

TEST_F(MeshTest, KilledNodeRestartsWithItsStateAndCatchesUpWithinTwoSeconds) {
  start({}, 4);
  block_add(3, "198.51.100.3");  // node3's own claim: its store must keep it and its seq
  block_add(1, "198.51.100.1");
  ASSERT_TRUE(wait_until(
      [&] { return all_enforced("198.51.100.3") && all_enforced("198.51.100.1"); }, 5000))
      << blocks_everywhere();
  const json before = mesh->ctl_json(3, "status");
  ASSERT_TRUE(before.is_object());
  const std::uint64_t seq_before = before.value("own_seq", 0ull);
  ASSERT_GE(seq_before, 1u);

  mesh->kill(3, SIGKILL);
  block_add(1, "198.51.100.11");
  block_add(1, "198.51.100.12");
  block_add(2, "198.51.100.22");
  const std::vector<std::string> missed{"198.51.100.11", "198.51.100.12", "198.51.100.22"};
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& p : missed)
          if (!all_enforced(p, true, 3)) return false;
        return true;
      },
      5000))
      << blocks_everywhere();

  mesh->start(3);
  ASSERT_TRUE(mesh->wait_status(3)) << mesh->log_tail(3, 40);
  const std::int64_t answering = wall_now_ms();
  const bool caught_up = wait_until(
      [&] {
        for (const auto& p : missed)
          if (!mesh->enforced(3, p)) return false;
        return true;
      },
      5000);
  const std::int64_t caught_up_ms = wall_now_ms() - answering;
  ASSERT_TRUE(caught_up) << mesh->ctl_json(3, "blocks").dump();
  EXPECT_LE(caught_up_ms, 2000) << "node3 caught up only after " << caught_up_ms << " ms";

  // Its earlier state came back from the store: the blocks it held, its sequence counter.
  EXPECT_TRUE(mesh->enforced(3, "198.51.100.3"));
  EXPECT_TRUE(mesh->enforced(3, "198.51.100.1"));
  const json after = mesh->ctl_json(3, "status");
  EXPECT_EQ(after.value("own_seq", 0ull), seq_before);
  EXPECT_NE(mesh->log_tail(3, 400).find("restored "), std::string::npos);
  // A new claim gets the next sequence number (a reused one would be equivocation).
  auto r = mesh->ctl(3, "block add 198.51.100.33 --confidence 0.9 --reason after-restart");
  ASSERT_TRUE(r.ok()) << r.output;
  EXPECT_EQ(mesh->ctl_json(3, "status").value("own_seq", 0ull), seq_before + 1);
  ASSERT_TRUE(wait_until([&] { return all_enforced("198.51.100.33"); }, 5000))
      << blocks_everywhere();
  for (int i = 1; i <= mesh->size(); ++i)
    EXPECT_EQ(mesh->metric(i, "meshd_equivocations_total").value_or(-1), 0) << mesh->name(i);
}

TEST_F(MeshTest, NodeWithCertFromAnotherCaCannotJoin) {
  MeshOptions o;
  o.nodes = 6;
  o.foreign_ca_nodes = {6};
  mesh = std::make_unique<MeshCluster>(o);
  mesh->start_all();
  auto fleet_up = [&] {
    for (int i = 1; i <= 5; ++i) {
      json s = mesh->ctl_json(i, "status");
      if (!s.is_object() || s.value("peers", 0) != 4) return false;
    }
    return true;
  };
  ASSERT_TRUE(wait_until(fleet_up, 20000)) << "the five certified nodes did not connect";
  ASSERT_TRUE(mesh->wait_status(6)) << mesh->log_tail(6);
  // Node 6 dials every seed and every node dials node 6: each attempt fails the handshake.
  double failed = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        failed = 0;
        for (int i = 1; i <= 5; ++i)
          failed += family_sum(mesh->metrics(i), "meshd_handshakes_failed_total");
        return failed >= 5;
      },
      10000))
      << "handshake failures on the fleet: " << failed;
  for (int i = 1; i <= 5; ++i) {
    EXPECT_EQ(mesh->ctl_json(i, "status").value("peers", -1), 4) << mesh->name(i);
    for (const auto& p : mesh->ctl_json(i, "peers")) EXPECT_NE(p.value("node", ""), "node6");
  }
  EXPECT_EQ(mesh->ctl_json(6, "status").value("peers", -1), 0);
  EXPECT_GT(family_sum(mesh->metrics(6), "meshd_handshakes_failed_total"), 0);
  // And nothing it claims reaches the fleet.
  block_add(6, "203.0.113.66");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  for (int i = 1; i <= 5; ++i)
    EXPECT_TRUE(mesh->block(i, "203.0.113.66").is_null()) << mesh->name(i);
}

// A Python client in the attacker namespace: connect, send `payload` (hex), then read until
// the daemon closes. Prints "<closed|open|reset> <ms>".
std::string hostile_client(const std::string& payload_hex, int wait_s) {
  return "python3 -c '\n"
         "import socket, time\n"
         "s = socket.create_connection((\"" +
         MeshCluster::ip(1) + "\", " + std::to_string(MeshCluster::kMeshPort) +
         "), timeout=3)\n"
         "s.sendall(bytes.fromhex(\"" +
         payload_hex +
         "\"))\n"
         "t = time.monotonic()\n"
         "s.settimeout(" +
         std::to_string(wait_s) +
         ")\n"
         "try:\n"
         "    while s.recv(65536): pass\n"
         "    r = \"closed\"\n"
         "except socket.timeout:\n"
         "    r = \"open\"\n"
         "except ConnectionResetError:\n"
         "    r = \"reset\"\n"
         "print(r, int((time.monotonic() - t) * 1000))\n'";
}

TEST_F(MeshTest, GarbageOversizedFramesAndIdleConnectionsAreDroppedWhileServing) {
  MeshOptions o;
  o.handshake_timeout_ms = 1000;
  start(o, 4);
  const NetNs& attacker = mesh->attach("matk", {"10.213.0.66"});
  const std::string m = mesh->metrics(1);
  const double hs_failed0 = family_sum(m, "meshd_handshakes_failed_total");
  const double oversize0 =
      mesh->metric(1, "meshd_frames_rejected_total{reason=\"frame_too_large\"}").value_or(0);

  // The idle connection runs in the background while the rest goes on.
  const std::string idle_out = mesh->work_dir() + "/idle.out";
  BackgroundProcess idle(netns_prefix(attacker) + hostile_client("", 10) + " > " + idle_out);

  // Garbage: a plausible length prefix (256) followed by bytes that are no handshake.
  std::string garbage = "00000100";
  for (int i = 0; i < 256; ++i) garbage += "de";
  auto g = run(netns_prefix(attacker) + hostile_client(garbage, 5));
  EXPECT_TRUE(g.output.rfind("closed", 0) == 0 || g.output.rfind("reset", 0) == 0)
      << "garbage: " << g.output;
  auto big = run(netns_prefix(attacker) + hostile_client("ffffffff" + garbage.substr(8, 64), 5));
  EXPECT_TRUE(big.output.rfind("closed", 0) == 0 || big.output.rfind("reset", 0) == 0)
      << "oversized length prefix: " << big.output;

  // The daemon keeps serving meanwhile.
  EXPECT_TRUE(mesh->ctl_json(1, "status").is_object());
  block_add(1, "203.0.113.99");
  EXPECT_TRUE(wait_until([&] { return all_enforced("203.0.113.99"); }, 5000))
      << blocks_everywhere();

  // The idle connection is closed by the handshake timeout (1 s), well before its 10 s wait.
  std::string idle_result;
  ASSERT_TRUE(wait_until(
      [&] {
        std::ifstream f(idle_out);
        std::getline(f, idle_result);
        return !idle_result.empty();
      },
      12000));
  EXPECT_TRUE(idle_result.rfind("closed", 0) == 0 || idle_result.rfind("reset", 0) == 0)
      << idle_result;
  const int idle_ms = std::stoi(idle_result.substr(idle_result.find(' ') + 1));
  EXPECT_LT(idle_ms, 5000) << idle_result;

  const std::string m2 = mesh->metrics(1);
  EXPECT_GE(family_sum(m2, "meshd_handshakes_failed_total") - hs_failed0, 2) << m2;
  EXPECT_GT(mesh->metric(1, "meshd_frames_rejected_total{reason=\"frame_too_large\"}").value_or(0),
            oversize0);
  EXPECT_EQ(mesh->ctl_json(1, "status").value("peers", -1), 4);
}

TEST_F(MeshTest, ForgedClaimRelayedByCertifiedPeerIsRejectedAndPenalisesThePeer) {
  start({}, 4);
  const NetNs& forger_ns = mesh->attach("mfrg", {"10.213.0.77"});
  const std::string fdir = mesh->work_dir() + "/forger";
  mesh->make_identity(fdir, "forger", "zone-x");
  const std::string sample = "meshd_envelopes_refused_total{reason=\"bad_signature\"}";
  const double refused0 = mesh->metric(1, sample).value_or(-1);
  ASSERT_GE(refused0, 0) << mesh->metrics(1);

  // The forger is certified by the fleet CA; its claim pretends to come from node2.
  const std::string out = mesh->work_dir() + "/forger.out";
  BackgroundProcess forger(
      netns_prefix(forger_ns) + MESHD_PEER_TOOL + " --ca " + mesh->ca_dir() + "/ca.pub --key " +
      fdir + "/node.key --cert " + fdir + "/node.cert --connect " + MeshCluster::ip(1) +
      ":7946 forge --forge-cert " + mesh->dir(2) + "/node.cert --hold-ms 6000 > " + out + " 2>&1");
  ASSERT_TRUE(wait_until([&] { return mesh->metric(1, sample).value_or(0) > refused0; }, 8000))
      << mesh->metrics(1) << run("cat " + out).output;

  // The forger's score dropped: a penalty while connected, or a ban.
  double penalty = 0;
  bool banned = false;
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& p : mesh->ctl_json(1, "peers"))
          if (p.value("node", "") == "forger") penalty = p.value("penalty", 0.0);
        for (const auto& e : mesh->events(1))
          if (e.value("event", "") == "peer_banned" && e.value("peer", "") == "forger")
            banned = true;
        return penalty > 0 || banned;
      },
      5000))
      << mesh->ctl_json(1, "peers").dump();
  // The forged target was neither enforced nor relayed anywhere.
  for (int i = 1; i <= mesh->size(); ++i)
    EXPECT_TRUE(mesh->block(i, "10.99.99.1").is_null()) << mesh->name(i);
  // Node2's real standing is untouched.
  for (const auto& t : mesh->ctl_json(1, "trust")) {
    if (t.value("node", "") == "node2") {
      EXPECT_FALSE(t.value("quarantined", true));
    }
  }
}

TEST_F(MeshTest, FeedMatchOnNode1EndsWithEpermOnNode4AndXdpDropsOnNode5) {
  const std::string c2 = "10.213.0.200";
  MeshOptions o;
  o.backend = "bpf";
  o.feeds[1] = "# netns test feed\n" + c2 + "\n";
  start(o, 4);
  for (int i = 1; i <= mesh->size(); ++i)
    ASSERT_EQ(mesh->ctl_json(i, "status").value("backend", ""), "bpf") << mesh->log_tail(i);
  const NetNs& outside = mesh->attach("mout", {c2});
  TcpListener c2_server(&outside, c2, 443);
  TcpListener node5_service(&mesh->ns(5), MeshCluster::ip(5), 8080);

  // Before: the C2 reaches node 5.
  EXPECT_EQ(run_child({.netns = &outside, .comm = "c2"},
                      [&] { return tcp_connect(MeshCluster::ip(5), 8080, 1000); }),
            0);
  EXPECT_TRUE(run(netns_prefix(outside) + "ping -c 1 -W 1 " + MeshCluster::ip(5)).ok());

  // A workload on node 1 meets its C2: allowed (nothing blocked yet), detected, claimed.
  EXPECT_EQ(run_child({.cgroup = &mesh->cgroup(1), .netns = &mesh->ns(1), .comm = "implant"},
                      [&] { return tcp_connect(c2, 443, 1000); }),
            0);
  const std::string prefix = c2;  // hosts print without /32
  ASSERT_TRUE(
      wait_until([&] { return mesh->event_at(1, "claim_signed", prefix).has_value(); }, 5000))
      << mesh->log_tail(1, 40);
  ASSERT_TRUE(wait_until([&] { return all_enforced(prefix); }, 5000)) << blocks_everywhere();

  // Node 4: the kernel denies the connect.
  EXPECT_EQ(run_child({.cgroup = &mesh->cgroup(4), .netns = &mesh->ns(4), .comm = "workload"},
                      [&] { return tcp_connect(c2, 443, 1000); }),
            EPERM);
  // Node 5: XDP drops the C2's packets.
  const double drops0 = mesh->metric(5, "meshd_packets_dropped_total").value_or(-1);
  ASSERT_GE(drops0, 0) << mesh->metrics(5);
  EXPECT_NE(run_child({.netns = &outside, .comm = "c2"},
                      [&] { return tcp_connect(MeshCluster::ip(5), 8080, 1000); }),
            0);
  EXPECT_FALSE(run(netns_prefix(outside) + "ping -c 2 -i 0.2 -W 1 " + MeshCluster::ip(5)).ok());
  EXPECT_TRUE(wait_until(
      [&] { return mesh->metric(5, "meshd_packets_dropped_total").value_or(0) > drops0; }, 3000))
      << mesh->metrics(5);
}

}  // namespace
}  // namespace meshd::test

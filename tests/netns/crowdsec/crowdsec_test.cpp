// meshd as the CrowdSec bouncer of a fleet (label crowdsec: root, Debian's crowdsec package):
// a real LAPI in node 1's namespace, meshd registered with `cscli bouncers add`, decisions
// enforced on all three nodes of a netns mesh and checked with real traffic (EPERM from the
// cgroup connect hook, XDP drops), deletions lifting them everywhere, a `lists` decision kept
// on node 1, and a fake LAPI answering garbage without crashing meshd or lifting its blocks.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "meshd/common/clock.hpp"
#include "tests/netns/crowdsec/crowdsec_lapi.hpp"
#include "tests/netns/mesh/mesh_cluster.hpp"
#include "tests/support/temp_dir.hpp"

namespace meshd::test {
namespace {

using nlohmann::json;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

class CrowdsecMeshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    skip_unless_root();
    if (!crowdsec_installed())
      GTEST_SKIP() << "crowdsec is not installed (deploy/install-deps.sh installs it)";
  }
  void TearDown() override {
    if (HasFailure() && mesh) {
      std::cerr << mesh->logs(30);
      if (lapi) std::cerr << "--- LAPI ---\n" << lapi->log_tail(30);
    }
    lapi.reset();  // before the namespaces go
    mesh.reset();
  }

  // connect() from a workload of `node` to address:443: 0, EPERM (hook), ETIMEDOUT (drop)...
  int connect_from(int node, const std::string& address) const {
    return run_child({.cgroup = &mesh->cgroup(node), .netns = &mesh->ns(node), .comm = "workload"},
                     [&] { return tcp_connect(address, 443, 1000); });
  }
  // Waits until connect_from gives `want` on each node of `nodes`.
  bool wait_connect(const std::vector<int>& nodes, const std::string& address, int want,
                    int timeout_ms = 5000) const {
    return wait_until(
        [&] {
          for (int n : nodes)
            if (connect_from(n, address) != want) return false;
          return true;
        },
        timeout_ms);
  }
  std::string blocks_everywhere() const {
    std::string out;
    for (int i = 1; i <= mesh->size(); ++i)
      out += mesh->name(i) + ": " + mesh->ctl_json(i, "blocks").dump() + "\n";
    return out;
  }

  meshd::testing::TempDir tmp{"cs"};
  std::unique_ptr<MeshCluster> mesh;
  std::unique_ptr<CrowdsecLapi> lapi;
};

TEST_F(CrowdsecMeshTest, LapiDecisionsAreEnforcedOnEveryNodeAndDeletionsLiftThem) {
  const std::string key_file = tmp.file("meshd.key");
  MeshOptions o;
  o.nodes = 3;
  o.backend = "bpf";
  o.sensor_yaml[1] =
      "crowdsec: {url: \"http://127.0.0.1:8080\", api_key_file: " + key_file + ", poll_ms: 200}";
  mesh = std::make_unique<MeshCluster>(o);
  lapi = std::make_unique<CrowdsecLapi>(mesh->ns(1), tmp.file("lapi"));
  write_text(key_file, lapi->add_bouncer("meshd") + "\n");
  mesh->start_all();
  ASSERT_TRUE(mesh->wait_ready(2)) << "the mesh did not come up";
  for (int i = 1; i <= 3; ++i)
    ASSERT_EQ(mesh->ctl_json(i, "status").value("backend", ""), "bpf") << mesh->log_tail(i);

  // The outside world: one namespace on the bridge with the addresses decisions will name.
  const std::string ip = "10.213.0.201", in_range = "10.213.0.230", listed = "10.213.0.202";
  const std::string ip6 = "fd00:213::c9";
  const NetNs& outside = mesh->attach("mcso", {ip, in_range, listed});
  run_checked("ip -n " + outside.name() + " addr add " + ip6 + "/64 dev eth0 nodad");
  for (int i = 1; i <= 3; ++i)
    run_checked("ip -n " + mesh->ns(i).name() + " addr add fd00:213::" + std::to_string(10 + i) +
                "/64 dev eth0 nodad");
  TcpListener l1(&outside, ip, 443), l2(&outside, in_range, 443), l3(&outside, listed, 443),
      l4(&outside, ip6, 443);
  TcpListener node3_service(&mesh->ns(3), MeshCluster::ip(3), 8080);
  for (const auto& a : {ip, listed, ip6})
    ASSERT_TRUE(wait_connect({1, 2, 3}, a, 0)) << a << " is not reachable before any decision";
  // Only node 1 talks to the range beforehand: flows to a target raise its cost on a node, and
  // a /28 claimed by one node at prior trust does not outweigh a range its peers use (the trust
  // policy at work, not the bouncer).
  ASSERT_TRUE(wait_connect({1}, in_range, 0));

  // cscli decisions add --ip: EPERM on all three nodes.
  auto t0 = std::chrono::steady_clock::now();
  auto r = lapi->cscli("decisions add --ip " + ip + " --duration 1h --reason meshd-netns-ip");
  ASSERT_TRUE(r.ok()) << r.output;
  ASSERT_TRUE(wait_connect({1, 2, 3}, ip, EPERM)) << blocks_everywhere();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  // Flushed now: the waits below are long, and ctest shows output only as it arrives.
  std::cout << "cscli decisions add -> EPERM on 3 nodes: " << ms << " ms" << std::endl;
  // Node 2 enforces it on node 1's signed claim, detector crowdsec, reason = the scenario.
  const json b2 = mesh->block(2, ip);
  EXPECT_EQ(b2["origins"], json::array({"node1"})) << b2.dump();
  const std::string explain = mesh->ctl(2, "explain " + ip).output;
  EXPECT_NE(explain.find("crowdsec"), std::string::npos) << explain;
  // XDP on node 3 drops the banned address's packets.
  const double drops0 = mesh->metric(3, "meshd_packets_dropped_total").value_or(-1);
  ASSERT_GE(drops0, 0) << mesh->metrics(3);
  EXPECT_NE(run_child({.netns = &outside, .comm = "banned"},
                      [&] { return tcp_connect(MeshCluster::ip(3), 8080, 1000); }),
            0);
  EXPECT_TRUE(wait_until(
      [&] { return mesh->metric(3, "meshd_packets_dropped_total").value_or(0) > drops0; }, 3000));

  // --range (v4): an address inside it, not only the network address, is blocked.
  r = lapi->cscli("decisions add --range 10.213.0.224/28 --duration 1h");
  ASSERT_TRUE(r.ok()) << r.output;
  ASSERT_TRUE(wait_connect({1, 2, 3}, in_range, EPERM)) << blocks_everywhere();

  // IPv6.
  r = lapi->cscli("decisions add --ip " + ip6 + " --duration 1h");
  ASSERT_TRUE(r.ok()) << r.output;
  ASSERT_TRUE(wait_connect({1, 2, 3}, ip6, EPERM)) << blocks_everywhere();

  // cscli decisions delete lifts each one everywhere.
  for (const auto& [flag, value, probe] :
       {std::tuple{"--ip", ip, ip}, std::tuple{"--range", std::string("10.213.0.224/28"), in_range},
        std::tuple{"--ip", ip6, ip6}}) {
    r = lapi->cscli(std::string("decisions delete ") + flag + " " + value);
    ASSERT_TRUE(r.ok()) << r.output;
    EXPECT_TRUE(wait_connect({1, 2, 3}, probe, 0)) << value << "\n" << blocks_everywhere();
  }

  // A decision from a subscribed list: node 1 enforces it, nothing is gossiped.
  lapi->add_decision("lists", "Ip", listed, "1h");
  ASSERT_TRUE(wait_connect({1}, listed, EPERM)) << mesh->log_tail(1, 30);
  // A later cscli decision reaches nodes 2 and 3, so the list one had every chance to.
  r = lapi->cscli("decisions add --ip 10.213.0.203 --duration 1h");
  ASSERT_TRUE(r.ok()) << r.output;
  ASSERT_TRUE(wait_until(
      [&] { return mesh->enforced(2, "10.213.0.203") && mesh->enforced(3, "10.213.0.203"); }, 5000))
      << blocks_everywhere();
  EXPECT_EQ(connect_from(2, listed), 0);
  EXPECT_EQ(connect_from(3, listed), 0);
  for (int i = 1; i <= 3; ++i)
    EXPECT_TRUE(mesh->block(i, listed).is_null()) << mesh->name(i) << ": " << blocks_everywhere();
  // explain on node 1 names the list decision: source, scenario, expiry, not gossiped.
  const json ex = mesh->ctl_json(1, "explain " + listed);
  ASSERT_TRUE(ex.is_object()) << mesh->ctl(1, "explain " + listed).output;
  ASSERT_EQ(ex["crowdsec"].size(), 1u) << ex.dump();
  EXPECT_EQ(ex["crowdsec"][0]["source"], "crowdsec/lists") << ex.dump();
  EXPECT_EQ(ex["crowdsec"][0]["scenario"], "lists:meshd-test") << ex.dump();
  EXPECT_EQ(ex["crowdsec"][0]["gossiped"], false);
  EXPECT_GT(ex["crowdsec"][0]["expires_at"].get<std::int64_t>(),
            wall_now_ms() + 3'500'000);  // decisions of "1h"
  const std::string ex_text = mesh->ctl(1, "explain " + listed).output;
  EXPECT_NE(ex_text.find("source crowdsec/lists, scenario 'lists:meshd-test'): enforced on this "
                         "node only, not gossiped"),
            std::string::npos)
      << ex_text;

  const std::string sample = "meshd_crowdsec_decisions_total{result=\"claimed\"}";
  EXPECT_GE(mesh->metric(1, sample).value_or(0), 4) << mesh->metrics(1);
  EXPECT_GE(mesh->metric(1, "meshd_crowdsec_decisions_total{result=\"retracted\"}").value_or(0), 3);
  EXPECT_EQ(mesh->metric(1, "meshd_crowdsec_prefixes{class=\"local_only\"}").value_or(-1), 1);
  for (int i = 1; i <= 3; ++i) EXPECT_TRUE(mesh->running(i)) << mesh->name(i);
}

// A fake LAPI: a valid startup answer (one CAPI ban), then garbage of every kind, then valid
// answers again. Every request's path is logged.
constexpr const char* kFakeLapi = R"PY(
import http.server, json, sys
port, log = int(sys.argv[1]), sys.argv[2]
def ban(i, value):
    return {"id": i, "origin": "CAPI", "scenario": "crowdsecurity/ssh-bf", "scope": "Ip",
            "type": "ban", "value": value, "duration": "1h"}
answers = [
    (200, json.dumps({"new": [ban(1, "10.213.0.205")], "deleted": None})),
    (200, "<html><body>502 Bad Gateway</body></html>"),
    (500, '{"message": "internal error"}'),
    (200, '{"new": [{"id": 2, "value": "10.213.0.206"'),
    (200, "[1, 2, 3]"),
]
good = json.dumps({"new": [ban(1, "10.213.0.205"), ban(3, "10.213.0.206")], "deleted": None})
count = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global count
        if not self.path.startswith("/v1/"):  # readiness probe
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(log, "a") as f:
            f.write(self.path + " key=" + str(self.headers.get("X-Api-Key")) + "\n")
        status, body = answers[count] if count < len(answers) else (200, good)
        count += 1
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
)PY";

TEST_F(CrowdsecMeshTest, GarbageFromTheLapiIsCountedRetriedAndLiftsNothing) {
  const std::string key_file = tmp.file("meshd.key");
  write_text(key_file, "fake-key\n");
  write_text(tmp.file("fake_lapi.py"), kFakeLapi);
  const std::string requests = tmp.file("requests.log");
  MeshOptions o;
  o.nodes = 1;
  o.backend = "bpf";
  o.sensor_yaml[1] =
      "crowdsec: {url: \"http://127.0.0.1:8081\", api_key_file: " + key_file + ", poll_ms: 100}";
  mesh = std::make_unique<MeshCluster>(o);
  auto fake = std::make_unique<BackgroundProcess>(netns_prefix(mesh->ns(1)) + "python3 " +
                                                  tmp.file("fake_lapi.py") + " 8081 " + requests);
  ASSERT_TRUE(wait_until(
      [&] {
        return run(netns_prefix(mesh->ns(1)) + "curl -s -o /dev/null http://127.0.0.1:8081/x").ok();
      },
      5000));
  const NetNs& outside = mesh->attach("mcsg", {"10.213.0.205", "10.213.0.206"});
  TcpListener l1(&outside, "10.213.0.205", 443), l2(&outside, "10.213.0.206", 443);
  mesh->start_all();
  ASSERT_TRUE(mesh->wait_status(1)) << mesh->log_tail(1);

  // The first answer's ban is enforced here (a CAPI decision: local, no claim).
  ASSERT_TRUE(wait_connect({1}, "10.213.0.205", EPERM)) << mesh->log_tail(1, 30);
  EXPECT_TRUE(mesh->block(1, "10.213.0.205").is_null());

  // Garbage, HTTP 500, truncated JSON, a list: each counted; the daemon keeps serving and
  // the ban stays enforced.
  auto polls = [&](const char* result) {
    return mesh->metric(1, std::string("meshd_crowdsec_polls_total{result=\"") + result + "\"}")
        .value_or(0);
  };
  ASSERT_TRUE(wait_until([&] { return polls("bad_shape") >= 1; }, 12000))
      << mesh->metrics(1) << mesh->log_tail(1, 30);
  EXPECT_GE(polls("bad_json"), 2);
  EXPECT_GE(polls("http_error"), 1);
  EXPECT_EQ(connect_from(1, "10.213.0.205"), EPERM);
  EXPECT_TRUE(mesh->running(1));
  EXPECT_TRUE(mesh->ctl_json(1, "status").is_object());
  const std::string log = mesh->log_tail(1, 60);
  EXPECT_NE(log.find("decision stream is not JSON"), std::string::npos) << log;
  EXPECT_NE(log.find("HTTP 500"), std::string::npos) << log;

  // Back to valid answers: the next request is a full one (startup=true) and its new ban
  // is enforced.
  ASSERT_TRUE(wait_connect({1}, "10.213.0.206", EPERM, 20000)) << mesh->log_tail(1, 30);
  EXPECT_EQ(connect_from(1, "10.213.0.205"), EPERM);
  std::ifstream in(requests);
  std::vector<std::string> paths;
  for (std::string line; std::getline(in, line);) paths.push_back(line);
  ASSERT_GE(paths.size(), 6u);
  EXPECT_EQ(paths[0], "/v1/decisions/stream?startup=true key=fake-key");
  EXPECT_EQ(paths[1], "/v1/decisions/stream key=fake-key");
  EXPECT_EQ(paths[5], "/v1/decisions/stream?startup=true key=fake-key");
  EXPECT_GE(mesh->metric(1, "meshd_crowdsec_polls_total{result=\"ok\"}").value_or(0), 2);

  // A restart while the LAPI is gone: the CAPI bans (local only, no claims to restore them)
  // come back from the store, stay enforced, and explain names where they came from.
  fake.reset();
  mesh->kill(1, SIGKILL);
  mesh->start(1);
  ASSERT_TRUE(mesh->wait_status(1)) << mesh->log_tail(1);
  EXPECT_EQ(connect_from(1, "10.213.0.205"), EPERM) << mesh->log_tail(1, 30);
  EXPECT_EQ(connect_from(1, "10.213.0.206"), EPERM) << mesh->log_tail(1, 30);
  const json ex = mesh->ctl_json(1, "explain 10.213.0.206");
  ASSERT_TRUE(ex.is_object()) << mesh->ctl(1, "explain 10.213.0.206").output;
  ASSERT_EQ(ex["crowdsec"].size(), 1u) << ex.dump();
  EXPECT_EQ(ex["crowdsec"][0]["source"], "crowdsec/CAPI");
  EXPECT_EQ(ex["crowdsec"][0]["scenario"], "crowdsecurity/ssh-bf");
  EXPECT_EQ(ex["crowdsec"][0]["decision_id"], 3);
  EXPECT_GT(ex["crowdsec"][0]["expires_at"].get<std::int64_t>(), wall_now_ms() + 3'000'000);
  EXPECT_NE(mesh->log_tail(1, 40).find("2 local-only decision(s) restored"), std::string::npos)
      << mesh->log_tail(1, 40);
  // The LAPI does not answer: still enforced after a failed poll.
  ASSERT_TRUE(wait_until(
      [&] {
        return mesh->metric(1, "meshd_crowdsec_polls_total{result=\"unreachable\"}").value_or(0) >=
               1;
      },
      5000))
      << mesh->metrics(1);
  EXPECT_EQ(connect_from(1, "10.213.0.205"), EPERM);
}

// A LAPI whose delta answer lost part of a bulk insert (as a real LAPI does when a chunk of a
// `cscli decisions import` commits after a pull that began before it): the startup answer is
// empty, one delta brings 60 list decisions, later deltas are empty, and only a full
// (startup=true) answer also holds decision 61. meshd pulls in full a few seconds after the
// bulk delta, and so enforces 61 without a restart.
constexpr const char* kLossyLapi = R"PY(
import http.server, json, sys
port, log = int(sys.argv[1]), sys.argv[2]
def ban(i, value):
    return {"id": i, "origin": "lists", "scenario": "firehol", "scope": "Ip", "type": "ban",
            "value": value, "duration": "1h"}
bulk = [ban(i, "10.213.0.%d" % (100 + i)) for i in range(1, 61)]
count = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global count
        if not self.path.startswith("/v1/"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(log, "a") as f:
            f.write(self.path + "\n")
        full = "startup=true" in self.path
        if full and count == 0:
            body = {"new": [], "deleted": None}
        elif full:
            body = {"new": bulk + [ban(61, "10.213.0.207")], "deleted": None}
        elif count == 1:
            body = {"new": bulk, "deleted": None}
        else:
            body = {"new": None, "deleted": None}
        count += 1
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
)PY";

TEST_F(CrowdsecMeshTest, ABulkDeltaIsFollowedByAFullPullThatFindsWhatTheDeltaLost) {
  const std::string key_file = tmp.file("meshd.key");
  write_text(key_file, "fake-key\n");
  write_text(tmp.file("lossy_lapi.py"), kLossyLapi);
  const std::string requests = tmp.file("requests.log");
  MeshOptions o;
  o.nodes = 1;
  o.backend = "bpf";
  o.sensor_yaml[1] =
      "crowdsec: {url: \"http://127.0.0.1:8082\", api_key_file: " + key_file + ", poll_ms: 200}";
  mesh = std::make_unique<MeshCluster>(o);
  BackgroundProcess lapi_process(netns_prefix(mesh->ns(1)) + "python3 " +
                                 tmp.file("lossy_lapi.py") + " 8082 " + requests);
  ASSERT_TRUE(wait_until(
      [&] {
        return run(netns_prefix(mesh->ns(1)) + "curl -s -o /dev/null http://127.0.0.1:8082/x").ok();
      },
      5000));
  const NetNs& outside = mesh->attach("mcsl", {"10.213.0.101", "10.213.0.207"});
  TcpListener l1(&outside, "10.213.0.101", 443), l2(&outside, "10.213.0.207", 443);
  mesh->start_all();
  ASSERT_TRUE(mesh->wait_status(1)) << mesh->log_tail(1);
  ASSERT_TRUE(wait_connect({1}, "10.213.0.101", EPERM)) << mesh->log_tail(1, 30);
  // Not in any delta: only the full pull after the bulk brings it (5 s after the bulk delta).
  EXPECT_EQ(connect_from(1, "10.213.0.207"), 0);
  ASSERT_TRUE(wait_connect({1}, "10.213.0.207", EPERM, 15000)) << mesh->log_tail(1, 30);
  EXPECT_EQ(connect_from(1, "10.213.0.101"), EPERM);
  std::ifstream in(requests);
  std::vector<std::string> paths;
  for (std::string line; std::getline(in, line);) paths.push_back(line);
  ASSERT_GE(paths.size(), 4u);
  EXPECT_EQ(paths[0], "/v1/decisions/stream?startup=true");
  EXPECT_EQ(paths[1], "/v1/decisions/stream");
  EXPECT_EQ(paths[2], "/v1/decisions/stream");  // no full pull right after the bulk delta
  EXPECT_EQ(std::count(paths.begin(), paths.end(), "/v1/decisions/stream?startup=true"), 2)
      << "one startup pull and one after the bulk, no failure in between";
}

}  // namespace
}  // namespace meshd::test

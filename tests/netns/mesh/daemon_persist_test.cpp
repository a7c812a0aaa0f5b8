// The real daemon's enforcement across its own death (label netns, root): a one-node meshd
// (bpf backend) in a test namespace with its own cgroup and pin path blocks two addresses;
// after `kill -9` the kernel keeps enforcing both (EPERM for a workload in the cgroup, XDP
// drops on eth0) until the shorter block's expiry passes in the kernel; a restart takes the
// attachments over with no datagram let through meanwhile and exactly one program per hook;
// SIGTERM keeps enforcing too; `meshd --detach` removes everything.
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

#include "tests/netns/mesh/mesh_cluster.hpp"

namespace meshd::test {
namespace {

namespace fs = std::filesystem;

constexpr int kTcxEgress = 47;  // BPF_TCX_EGRESS (linux/bpf.h >= 6.6)
constexpr bpf_attach_type kCgroupHooks[] = {BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT,
                                            BPF_CGROUP_UDP4_SENDMSG, BPF_CGROUP_UDP6_SENDMSG};

int cgroup_programs(const std::string& path, bpf_attach_type type) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::uint32_t ids[16];
  std::uint32_t count = 16;
  const int r = fd < 0 ? -1 : bpf_prog_query(fd, type, 0, nullptr, ids, &count);
  if (fd >= 0) ::close(fd);
  return r == 0 ? static_cast<int>(count) : -1;
}

// Programs on eth0 of the node's namespace: XDP (0 or 1) * 100 + tcx egress.
int eth0_programs(const NetNs& ns) {
  ChildOptions in_ns;
  in_ns.netns = &ns;
  return run_child(in_ns, [] {
    const int ifindex = static_cast<int>(::if_nametoindex("eth0"));
    std::uint32_t xdp = 0;
    if (ifindex == 0 || bpf_xdp_query_id(ifindex, 0, &xdp) != 0) return 255;
    std::uint32_t ids[16];
    std::uint32_t tcx = 16;
    if (bpf_prog_query(ifindex, static_cast<bpf_attach_type>(kTcxEgress), 0, nullptr, ids, &tcx) !=
        0)
      tcx = 0;  // no tcx in this kernel: clsact (counted by the daemon's log below)
    return (xdp != 0 ? 100 : 0) + static_cast<int>(tcx);
  });
}

std::size_t files_in(const std::string& dir) {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::end(it); it.increment(ec)) ++n;
  return n;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class DaemonPersist : public ::testing::Test {
 protected:
  void SetUp() override { skip_unless_root(); }
  void TearDown() override {
    if (HasFailure() && mesh) std::cerr << mesh->logs(40);
  }

  // errno of one UDP datagram from a workload in node 1's cgroup to `address`.
  int workload_send(const std::string& address) const {
    return run_child({.cgroup = &mesh->cgroup(1), .netns = &mesh->ns(1), .comm = "workload"},
                     [&] { return udp_sendto(address, 9); });
  }
  // Whether `source` (an address of the outside namespace) gets a ping answered by node 1.
  bool ping_from(const std::string& source) const {
    return run(netns_prefix(*outside) + "ping -c 1 -W 1 -I " + source + " " + MeshCluster::ip(1) +
               " >/dev/null 2>&1")
        .ok();
  }

  std::unique_ptr<MeshCluster> mesh;
  const NetNs* outside = nullptr;
};

TEST_F(DaemonPersist, KilledDaemonKeepsEnforcingUntilExpiryRestartTakesOverDetachRemovesAll) {
  if (!is_root()) return;
  const std::string c2 = "10.213.0.200";  // blocked for an hour
  const std::string c3 = "10.213.0.201";  // blocked for 8 s
  MeshOptions o;
  o.nodes = 1;
  o.backend = "bpf";
  mesh = std::make_unique<MeshCluster>(o);
  mesh->start(1);
  ASSERT_TRUE(mesh->wait_status(1)) << mesh->log_tail(1, 40);
  ASSERT_EQ(mesh->ctl_json(1, "status").value("backend", ""), "bpf") << mesh->log_tail(1, 40);
  outside = &mesh->attach("mpo", {c2, c3});
  ASSERT_TRUE(wait_until([&] { return ping_from(c2) && ping_from(c3); }, 5000));
  EXPECT_EQ(workload_send(c2), 0);

  for (const std::string& args : {"block add " + c2 + " --confidence 0.9 --reason persist",
                                  "block add " + c3 +
                                      " --confidence 0.9 --reason persist "
                                      "--ttl 8s"}) {
    auto r = mesh->ctl(1, args);
    ASSERT_TRUE(r.ok()) << r.output;
  }
  ASSERT_TRUE(wait_until([&] { return mesh->enforced(1, c2) && mesh->enforced(1, c3); }, 5000))
      << mesh->ctl_json(1, "blocks").dump();
  const auto c3_added = std::chrono::steady_clock::now();
  EXPECT_EQ(workload_send(c2), EPERM);
  EXPECT_EQ(workload_send(c3), EPERM);
  EXPECT_FALSE(ping_from(c2));

  // kill -9: no clean-up at all, and still enforced.
  mesh->kill(1, SIGKILL);
  EXPECT_EQ(workload_send(c2), EPERM);
  EXPECT_EQ(workload_send(c3), EPERM);
  EXPECT_FALSE(ping_from(c2));
  EXPECT_FALSE(ping_from(c3));
  EXPECT_EQ(eth0_programs(mesh->ns(1)) / 100, 1) << "XDP detached with the daemon";

  // c3's expiry passes while no daemon runs: the kernel stops enforcing it by itself.
  EXPECT_TRUE(wait_until([&] { return workload_send(c3) == 0; }, 15000));
  EXPECT_GE(std::chrono::steady_clock::now() - c3_added, std::chrono::milliseconds(7000));
  EXPECT_TRUE(ping_from(c3));
  EXPECT_EQ(workload_send(c2), EPERM);
  EXPECT_FALSE(ping_from(c2));

  // Restart under probes: a workload sending to c2 from the cgroup, c2 sending to the node.
  const std::string log = mesh->dir(1) + "/meshd.log";
  const std::size_t log_before = read_all(log).size();
  UdpProbe workload(UdpProbe::Kind::send,
                    {.cgroup = &mesh->cgroup(1), .netns = &mesh->ns(1), .comm = "workload"}, c2, 9);
  UdpProbe sink(UdpProbe::Kind::receive, {.netns = &mesh->ns(1)}, MeshCluster::ip(1), 7001);
  UdpProbe source(UdpProbe::Kind::send, {.netns = outside}, MeshCluster::ip(1), 7001, c2);
  mesh->start(1);
  ASSERT_TRUE(mesh->wait_status(1)) << mesh->log_tail(1, 40);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto w = workload.stop();
  const auto s = source.stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto r = sink.stop();
  std::cout << "restart under probes: workload sendto() " << w.denied << " EPERM, " << w.sent
            << " through; c2 -> node " << s.sent << " sent, " << r.received << " received"
            << std::endl;
  EXPECT_EQ(w.sent, 0u) << "the cgroup hook lapsed during the restart";
  EXPECT_GT(w.denied, 100u);
  EXPECT_GT(s.sent, 100u);
  EXPECT_EQ(r.received, 0u) << "XDP let " << r.received << " of " << s.sent << " through";

  // Taken over, not stacked: one program per hook, six pinned links, as before.
  const std::string restart_log = read_all(log).substr(log_before);
  EXPECT_NE(restart_log.find("taken over"), std::string::npos) << restart_log;
  EXPECT_EQ(restart_log.find("attaching anew"), std::string::npos) << restart_log;
  for (bpf_attach_type t : kCgroupHooks) EXPECT_EQ(cgroup_programs(mesh->cgroup(1).path(), t), 1);
  const int eth0 = eth0_programs(mesh->ns(1));
  EXPECT_EQ(eth0 / 100, 1);
  EXPECT_LE(eth0 % 100, 1);
  EXPECT_EQ(files_in(mesh->pin_path(1) + "/links"), eth0 % 100 == 1 ? 6u : 5u);
  // Reconciled: c2 still blocked by the daemon, c3 gone.
  EXPECT_TRUE(mesh->enforced(1, c2));
  EXPECT_FALSE(mesh->enforced(1, c3));
  EXPECT_EQ(workload_send(c2), EPERM);

  // A plain stop (SIGTERM) keeps enforcing as well.
  mesh->kill(1, SIGTERM);
  EXPECT_EQ(workload_send(c2), EPERM);
  EXPECT_FALSE(ping_from(c2));

  // Purposeful removal.
  auto d = run(netns_prefix(mesh->ns(1)) + MeshCluster::bin("meshd") + " --config " +
               mesh->config_path(1) + " --detach 2>&1");
  ASSERT_TRUE(d.ok()) << d.output;
  EXPECT_NE(d.output.find("links"), std::string::npos) << d.output;
  EXPECT_EQ(workload_send(c2), 0);
  EXPECT_TRUE(ping_from(c2));
  for (bpf_attach_type t : kCgroupHooks) EXPECT_EQ(cgroup_programs(mesh->cgroup(1).path(), t), 0);
  EXPECT_EQ(eth0_programs(mesh->ns(1)), 0);
  EXPECT_FALSE(fs::exists(mesh->pin_path(1)));
  // Nothing left to detach: a second run is a no-op that succeeds.
  d = run(netns_prefix(mesh->ns(1)) + MeshCluster::bin("meshd") + " --config " +
          mesh->config_path(1) + " --detach 2>&1");
  EXPECT_TRUE(d.ok()) << d.output;
}

}  // namespace
}  // namespace meshd::test

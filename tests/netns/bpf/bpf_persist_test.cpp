// Attachments that outlive their loader (label netns, root): with a pin path, the cgroup
// hooks, XDP and TC stay attached when the loader goes away (the daemon exits, crashes or is
// upgraded), a new loader takes them over in place without a moment unenforced and without
// stacking a second program on any hook, stale ones are detached, blocks still expire in the
// kernel, and BpfLoader::detach_pinned() removes everything. Every object is created by
// the test and removed by RAII guards (pins, veth, namespace, cgroup).
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "meshd/common/clock.hpp"
#include "sensor/bpf_enforcer.hpp"
#include "sensor/bpf_loader.hpp"
#include "sensor/bpf_maps.hpp"
#include "tests/support/netns/netns.hpp"

namespace meshd::sensor {
namespace {

namespace fs = std::filesystem;
using test::UdpProbe;

constexpr int kTcxEgress = 47;  // BPF_TCX_EGRESS (linux/bpf.h >= 6.6)
constexpr bpf_attach_type kCgroupHooks[] = {BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT,
                                            BPF_CGROUP_UDP4_SENDMSG, BPF_CGROUP_UDP6_SENDMSG};

BlockRule block(const std::string& address, Direction d, std::uint64_t id, DurationMs ttl = kHour) {
  auto p = Prefix::parse(address);
  EXPECT_TRUE(p) << address;
  return BlockRule{*p, d, id, wall_now_ms() + ttl};
}

// Programs attached to `path` itself for one hook (-1 if the query failed).
int cgroup_programs(const std::string& path, bpf_attach_type type) {
  Fd cg(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::uint32_t ids[16];
  std::uint32_t count = 16;
  if (!cg.valid() || bpf_prog_query(cg.get(), type, 0, nullptr, ids, &count) != 0) return -1;
  return static_cast<int>(count);
}

// Programs on the interface's tcx egress hook (0 on kernels without tcx).
int tcx_programs(int ifindex) {
  std::uint32_t ids[16];
  std::uint32_t count = 16;
  if (bpf_prog_query(ifindex, static_cast<bpf_attach_type>(kTcxEgress), 0, nullptr, ids, &count) !=
      0)
    return errno == EINVAL ? 0 : -1;
  return static_cast<int>(count);
}

// meshd's filters among the clsact egress filters of ifname.
int clsact_filters(const std::string& ifname) {
  auto r =
      test::run("tc filter show dev " + ifname + " egress 2>/dev/null | grep -c meshd_tc_egress");
  return r.output.empty() ? -1 : std::stoi(r.output);
}

std::uint32_t prog_id(int prog_fd) {
  bpf_prog_info info{};
  auto len = static_cast<std::uint32_t>(sizeof info);
  return bpf_obj_get_info_by_fd(prog_fd, &info, &len) == 0 ? info.id : 0;
}

std::uint32_t xdp_prog_id(int ifindex) {
  std::uint32_t id = 0;
  return bpf_xdp_query_id(ifindex, 0, &id) == 0 ? id : 0;
}

std::size_t pinned_links(const std::string& pin_path) {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = fs::directory_iterator(pin_path + "/links", ec); !ec && it != fs::end(it);
       it.increment(ec))
    ++n;
  return n;
}

class BpfPersist : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::skip_unless_root()) return;
    pins_.emplace("meshd-persist");
    ns_.emplace("mper");
    net_ = test::unique_subnet();
    veth_.emplace("mp", *ns_, net_.veth_addresses());
    cg_.emplace("meshd-persist");
    ASSERT_TRUE(test::wait_until([&] { return ping_peer_to_host(); }))
        << "veth setup: namespace cannot reach " << net_.host_v4;
  }

  BpfLoaderConfig config(bool cgroup = true, bool interfaces = true) const {
    BpfLoaderConfig c;
    c.pin_path = pin_path();
    if (cgroup) c.cgroup_path = cg_->path();
    if (interfaces) c.interfaces = {veth_->host_name()};
    return c;
  }
  std::string pin_path() const { return pins_->path() + "/meshd"; }

  bool ping_peer_to_host() const {
    return test::run_in_netns(*ns_, "ping -c1 -W1 " + net_.host_v4 + " >/dev/null").ok();
  }
  // errno of a UDP sendto() from a workload in the cgroup to the namespace's address.
  int workload_send() const {
    test::ChildOptions in_cgroup;
    in_cgroup.cgroup = &*cg_;
    return test::run_child(in_cgroup, [&] { return test::udp_sendto(net_.peer_v4, 9); });
  }
  // True when nothing this test's loaders attached is attached any more.
  void expect_nothing_attached() const {
    for (bpf_attach_type t : kCgroupHooks) EXPECT_EQ(cgroup_programs(cg_->path(), t), 0) << t;
    EXPECT_EQ(xdp_prog_id(veth_->host_ifindex()), 0u);
    EXPECT_EQ(tcx_programs(veth_->host_ifindex()), 0);
    EXPECT_LE(clsact_filters(veth_->host_name()), 0);
  }
  // Exactly one program per hook, and it is `loader`'s where the test can tell.
  void expect_one_program_per_hook(const BpfLoader& loader, bool clsact) const {
    for (bpf_attach_type t : kCgroupHooks) EXPECT_EQ(cgroup_programs(cg_->path(), t), 1) << t;
    EXPECT_EQ(xdp_prog_id(veth_->host_ifindex()), prog_id(loader.xdp_prog_fd()));
    EXPECT_EQ(tcx_programs(veth_->host_ifindex()), clsact ? 0 : 1);
    EXPECT_EQ(clsact_filters(veth_->host_name()), clsact ? 1 : 0);
  }

  std::optional<test::BpfPinDir> pins_;
  std::optional<test::NetNs> ns_;
  test::TestSubnet net_;
  std::optional<test::VethPair> veth_;
  std::optional<test::TestCgroup> cg_;
};

TEST_F(BpfPersist, EnforcementOutlivesTheLoaderAndARestartTakesItOverWithoutALapse) {
  if (!cg_) return;
  const BlockRule rule = block(net_.peer_v4, Direction::both, 901);
  std::uint32_t old_xdp = 0;
  {
    auto loader = BpfLoader::load(config());
    ASSERT_TRUE(loader) << loader.error().message;
    EXPECT_TRUE(loader->persistent());
    for (const auto& a : loader->attachments()) EXPECT_FALSE(a.taken_over) << a.program;
    EXPECT_EQ(pinned_links(pin_path()), 6u);  // 4 cgroup hooks, XDP, tcx
    auto enforcer = BpfEnforcer::from_loader(*loader);
    ASSERT_TRUE(enforcer) << enforcer.error().message;
    std::vector<BlockRule> rules = {rule};
    ASSERT_TRUE(enforcer->apply(rules, wall_now_ms()));
    EXPECT_EQ(workload_send(), EPERM);
    EXPECT_FALSE(ping_peer_to_host());
    old_xdp = prog_id(loader->xdp_prog_fd());
  }
  // The loader is gone (as the daemon after SIGTERM, SIGKILL or a crash): still enforced.
  EXPECT_EQ(workload_send(), EPERM);
  EXPECT_FALSE(ping_peer_to_host());
  EXPECT_EQ(xdp_prog_id(veth_->host_ifindex()), old_xdp);

  // A new loader takes over while traffic of every kind is probed: workloads in the cgroup
  // sending to the blocked address (cgroup hook), the blocked address sending to the host
  // (XDP), the host sending to it outside the cgroup (TC egress).
  test::ChildOptions in_cgroup;
  in_cgroup.cgroup = &*cg_;
  test::ChildOptions in_ns;
  in_ns.netns = &*ns_;
  UdpProbe workload(UdpProbe::Kind::send, in_cgroup, net_.peer_v4, 9);
  UdpProbe xdp_sink(UdpProbe::Kind::receive, {}, net_.host_v4, 7001);
  UdpProbe xdp_source(UdpProbe::Kind::send, in_ns, net_.host_v4, 7001);
  UdpProbe tc_sink(UdpProbe::Kind::receive, in_ns, net_.peer_v4, 7002);
  UdpProbe tc_source(UdpProbe::Kind::send, {}, net_.peer_v4, 7002);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto loader = BpfLoader::load(config());
  ASSERT_TRUE(loader) << loader.error().message;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto w = workload.stop();
  const auto xs = xdp_source.stop();
  const auto ts = tc_source.stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the last datagrams in flight
  const auto xr = xdp_sink.stop();
  const auto tr = tc_sink.stop();
  std::cout << "take-over under probes: workload " << w.denied << " EPERM / " << w.sent
            << " through; XDP " << xs.sent << " sent / " << xr.received << " received; TC "
            << ts.sent << " sent / " << tr.received << " received" << std::endl;
  EXPECT_EQ(w.sent, 0u) << "a workload's sendto() got through the cgroup hook";
  EXPECT_GT(w.denied, 50u);
  EXPECT_GT(xs.sent, 50u);
  EXPECT_EQ(xr.received, 0u) << "XDP let " << xr.received << " of " << xs.sent << " through";
  EXPECT_GT(ts.sent, 50u);
  EXPECT_EQ(tr.received, 0u) << "TC let " << tr.received << " of " << ts.sent << " through";

  // Taken over in place: one program per hook, the new loader's.
  ASSERT_EQ(loader->attachments().size(), 6u) << loader->describe();
  for (const auto& a : loader->attachments()) EXPECT_TRUE(a.taken_over) << a.program;
  EXPECT_NE(loader->describe().find("taken over"), std::string::npos);
  EXPECT_NE(prog_id(loader->xdp_prog_fd()), old_xdp);
  expect_one_program_per_hook(*loader, /*clsact=*/false);
  EXPECT_EQ(pinned_links(pin_path()), 6u);

  // The blocks came from the pinned maps; the counters kept counting.
  auto enforcer = BpfEnforcer::from_loader(*loader);
  ASSERT_TRUE(enforcer) << enforcer.error().message;
  auto listed = enforcer->list(wall_now_ms());
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].prefix, rule.prefix);
  EXPECT_EQ((*listed)[0].rule_id, 901u);
  EXPECT_GE(enforcer->stats().connects_denied, w.denied);

  // A second take-over changes nothing either (no stacking over several restarts).
  loader = BpfLoader::load(config());
  ASSERT_TRUE(loader) << loader.error().message;
  expect_one_program_per_hook(*loader, false);

  // Purposeful removal: everything goes, traffic flows.
  auto report = BpfLoader::detach_pinned(pin_path());
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->links, 6u) << report->describe();
  EXPECT_EQ(report->maps, 7u) << report->describe();
  EXPECT_TRUE(report->pin_dir_removed);
  EXPECT_FALSE(fs::exists(pin_path()));
  expect_nothing_attached();
  EXPECT_EQ(workload_send(), 0);
  EXPECT_TRUE(ping_peer_to_host());
  // `loader` (still alive, as a daemon would be) closes its descriptors without effect.
}

TEST_F(BpfPersist, BlockExpiresInTheKernelWhileNoLoaderRuns) {
  if (!cg_) return;
  {
    auto loader = BpfLoader::load(config());
    ASSERT_TRUE(loader) << loader.error().message;
    auto enforcer = BpfEnforcer::from_loader(*loader);
    ASSERT_TRUE(enforcer);
    std::vector<BlockRule> rules = {block(net_.peer_v4, Direction::both, 902, 3000)};
    ASSERT_TRUE(enforcer->apply(rules, wall_now_ms()));
  }
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(workload_send(), EPERM);
  EXPECT_FALSE(ping_peer_to_host());
  // Nobody touches the maps: the programs stop enforcing at the expiry on their own.
  EXPECT_TRUE(test::wait_until([&] { return workload_send() == 0; }, 8000));
  EXPECT_TRUE(ping_peer_to_host());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000));
  EXPECT_EQ(pinned_links(pin_path()), 6u);  // still attached: expiry is per entry
}

TEST_F(BpfPersist, StaleAttachmentsOfADroppedInterfaceOrCgroupAreDetached) {
  if (!cg_) return;
  {
    auto loader = BpfLoader::load(config());
    ASSERT_TRUE(loader) << loader.error().message;
  }
  EXPECT_EQ(pinned_links(pin_path()), 6u);
  // Same pin path, neither the cgroup nor the interface configured any more.
  auto loader = BpfLoader::load(config(/*cgroup=*/false, /*interfaces=*/false));
  ASSERT_TRUE(loader) << loader.error().message;
  EXPECT_TRUE(loader->attachments().empty());
  EXPECT_EQ(pinned_links(pin_path()), 0u);
  expect_nothing_attached();
  EXPECT_TRUE(fs::exists(pin_file(pin_path(), MESHD_MAP_BLOCK_V4)));  // the blocks stay
}

TEST_F(BpfPersist, ClsactFilterIsKeptReplacedInPlaceAndGivesWayToTcx) {
  if (!cg_) return;
  const std::string ifname = veth_->host_name();
  BpfLoaderConfig forced = config();
  forced.force_tc_clsact = true;
  forced.force_xdp_generic = true;
  {
    auto loader = BpfLoader::load(forced);
    ASSERT_TRUE(loader) << loader.error().message;
    auto enforcer = BpfEnforcer::from_loader(*loader);
    ASSERT_TRUE(enforcer);
    std::vector<BlockRule> rules = {block(net_.peer_v6, Direction::egress, 903)};
    ASSERT_TRUE(enforcer->apply(rules, wall_now_ms()));
  }
  // Kept: the host's packets to the blocked address still die at TC egress.
  EXPECT_EQ(clsact_filters(ifname), 1);
  EXPECT_FALSE(test::run("ping -6 -c1 -W1 " + net_.peer_v6 + " >/dev/null").ok());
  {
    auto loader = BpfLoader::load(forced);
    ASSERT_TRUE(loader) << loader.error().message;
    ASSERT_EQ(loader->attachments().size(), 6u);
    EXPECT_EQ(loader->attachments()[4].mode, "xdp generic");
    EXPECT_EQ(loader->attachments()[5].mode, "clsact");
    for (const auto& a : loader->attachments()) EXPECT_TRUE(a.taken_over) << a.program;
    expect_one_program_per_hook(*loader, /*clsact=*/true);
    auto filter = test::run("tc filter show dev " + ifname + " egress");
    EXPECT_NE(filter.output.find("id " + std::to_string(prog_id(loader->tc_prog_fd()))),
              std::string::npos)
        << filter.output;
  }
  // Without forcing, this kernel's tcx replaces the filter (if it has tcx); the XDP link
  // taken over keeps its generic mode.
  auto loader = BpfLoader::load(config());
  ASSERT_TRUE(loader) << loader.error().message;
  EXPECT_EQ(loader->attachments()[4].mode, "xdp generic");
  EXPECT_TRUE(loader->attachments()[4].taken_over);
  const bool tcx = loader->features().tcx;
  expect_one_program_per_hook(*loader, /*clsact=*/!tcx);
  EXPECT_FALSE(test::run("ping -6 -c1 -W1 " + net_.peer_v6 + " >/dev/null").ok());

  auto report = BpfLoader::detach_pinned(pin_path());
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->tc_filters, tcx ? 0u : 1u) << report->describe();
  expect_nothing_attached();
  EXPECT_TRUE(test::run("ping -6 -c1 -W1 " + net_.peer_v6 + " >/dev/null").ok());
}

TEST_F(BpfPersist, DetachPinnedOfAMissingPinPathIsANoOp) {
  if (!cg_) return;
  auto report = BpfLoader::detach_pinned(pin_path() + "-never-created");
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->links + report->maps + report->tc_filters, 0u);
  EXPECT_FALSE(BpfLoader::detach_pinned(""));
}

}  // namespace
}  // namespace meshd::sensor

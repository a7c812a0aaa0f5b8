// The eBPF data plane for real: cgroup connect/sendmsg hooks on a test cgroup, XDP and TC
// on a test veth whose peer lives in a test namespace, pinned maps across a loader
// restart. Every object is created by the test and removed by RAII guards.
#include <sys/epoll.h>
#include <sys/types.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "meshd/common/clock.hpp"
#include "sensor/bpf_enforcer.hpp"
#include "sensor/bpf_loader.hpp"
#include "sensor/bpf_maps.hpp"
#include "sensor/bpf_ringbuf.hpp"
#include "tests/support/netns/netns.hpp"

namespace meshd::sensor {
namespace {

namespace fs = std::filesystem;

Prefix host_prefix(const std::string& address) {
  auto p = Prefix::parse(address);
  EXPECT_TRUE(p) << address;
  return *p;
}

BlockRule block(const std::string& address, Direction d, std::uint64_t id, DurationMs ttl = kHour) {
  return BlockRule{host_prefix(address), d, id, wall_now_ms() + ttl};
}

// errno of a TCP connect made by a child in `cg` named `comm`; the child's pid in *pid.
int connect_from(const test::TestCgroup& cg, const std::string& addr, std::uint16_t port,
                 const char* comm = "meshd-probe", pid_t* pid = nullptr) {
  test::ChildOptions opts;
  opts.cgroup = &cg;
  opts.comm = comm;
  return test::run_child(
      opts, [&] { return test::tcp_connect(addr, port, 1500); }, pid);
}

int connect_from_ns(const test::NetNs& ns, const std::string& addr, std::uint16_t port) {
  test::ChildOptions opts;
  opts.netns = &ns;
  return test::run_child(opts, [&] { return test::tcp_connect(addr, port, 1000); });
}

bool ping_from_ns(const test::NetNs& ns, const std::string& addr) {
  return test::run_in_netns(ns, "ping -c1 -W1 " + addr + " >/dev/null").ok();
}

bool xdp_attached(const std::string& ifname) {
  return test::run("ip link show dev " + ifname + " | grep -q xdp").ok();
}

class BpfNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::skip_unless_root()) return;
    pins_.emplace("meshd-bpf");
    ns_.emplace("mbpf");
    net_ = test::unique_subnet();
    veth_.emplace("mb", *ns_, net_.veth_addresses());
    cg_.emplace("meshd-bpf");
    // Addresses on veths are usable only after the link is up on both sides.
    ASSERT_TRUE(test::wait_until([&] { return ping_from_ns(*ns_, net_.host_v4); }))
        << "veth setup: namespace cannot reach " << net_.host_v4;
  }

  BpfLoaderConfig config(bool cgroup, bool interfaces) const {
    BpfLoaderConfig c;
    c.pin_path = pins_->path() + "/maps";
    if (cgroup) c.cgroup_path = cg_->path();
    if (interfaces) c.interfaces = {veth_->host_name()};
    return c;
  }

  // Declaration order = reverse destruction order: pins outlive loaders in tests.
  std::optional<test::BpfPinDir> pins_;
  std::optional<test::NetNs> ns_;
  test::TestSubnet net_;
  std::optional<test::VethPair> veth_;
  std::optional<test::TestCgroup> cg_;
};

TEST_F(BpfNetns, ConnectHooksDenyBlockedDestinationsAndReportEvents) {
  if (!cg_) return;
  test::TcpListener listener4(&*ns_, net_.peer_v4, 8080);
  test::TcpListener listener6(&*ns_, net_.peer_v6, 8080);
  auto loader = BpfLoader::load(config(/*cgroup=*/true, /*interfaces=*/false));
  ASSERT_TRUE(loader) << loader.error().message;
  auto enforcer = BpfEnforcer::from_loader(*loader);
  ASSERT_TRUE(enforcer) << enforcer.error().message;
  auto events = RingbufEventSource::create(*loader);
  ASSERT_TRUE(events) << events.error().message;

  // Unblocked: connects fine.
  pid_t allowed_pid = 0;
  EXPECT_EQ(connect_from(*cg_, net_.peer_v4, 8080, "meshd-ok", &allowed_pid), 0);
  EXPECT_EQ(connect_from(*cg_, net_.peer_v6, 8080), 0);

  std::vector<BlockRule> rules = {block(net_.peer_v4, Direction::egress, 41),
                                  block(net_.peer_v6, Direction::both, 61)};
  auto applied = enforcer->apply(rules, wall_now_ms());
  ASSERT_TRUE(applied) << applied.error().message;

  pid_t denied_pid = 0;
  EXPECT_EQ(connect_from(*cg_, net_.peer_v4, 8080, "meshd-probe", &denied_pid), EPERM);
  EXPECT_EQ(connect_from(*cg_, net_.peer_v6, 8080), EPERM);
  // A dual-stack socket to the IPv4-mapped form is matched against the IPv4 block.
  EXPECT_EQ(connect_from(*cg_, "::ffff:" + net_.peer_v4, 8080), EPERM);
  // UDP sendmsg is denied too.
  test::ChildOptions udp;
  udp.cgroup = &*cg_;
  EXPECT_EQ(test::run_child(udp, [&] { return test::udp_sendto(net_.peer_v4, 5353); }), EPERM);
  // Processes outside the hooked cgroup are not affected.
  EXPECT_EQ(test::tcp_connect(net_.peer_v4, 8080), 0);

  // Removal lifts the block.
  std::vector<Prefix> lift = {host_prefix(net_.peer_v4)};
  ASSERT_TRUE(enforcer->remove(lift));
  EXPECT_EQ(connect_from(*cg_, net_.peer_v4, 8080), 0);

  // The ring buffer reports both connects of interest with identity and verdict.
  std::vector<ConnectEvent> seen;
  std::optional<ConnectEvent> denied, allowed;
  test::wait_until(
      [&] {
        events->poll(seen, 1024, 100);
        for (const auto& e : seen) {
          if (e.tgid == static_cast<std::uint32_t>(denied_pid)) denied = e;
          if (e.tgid == static_cast<std::uint32_t>(allowed_pid)) allowed = e;
        }
        return denied && allowed;
      },
      3000);
  ASSERT_TRUE(denied) << "no event for the denied connect among " << seen.size();
  EXPECT_EQ(denied->comm, "meshd-probe");
  EXPECT_EQ(denied->pid, static_cast<std::uint32_t>(denied_pid));  // single-threaded child
  EXPECT_EQ(denied->uid, 0u);
  EXPECT_EQ(denied->cgroup_id, cg_->id());
  EXPECT_EQ(denied->destination, host_prefix(net_.peer_v4));
  EXPECT_EQ(denied->port, 8080);
  EXPECT_EQ(denied->protocol, Protocol::tcp);
  EXPECT_EQ(denied->verdict, Verdict::denied);
  EXPECT_LE(std::llabs(denied->at - wall_now_ms()), 10'000);
  ASSERT_TRUE(allowed);
  EXPECT_EQ(allowed->comm, "meshd-ok");
  EXPECT_EQ(allowed->verdict, Verdict::allowed);
  EXPECT_EQ(allowed->destination, host_prefix(net_.peer_v4));
  EXPECT_EQ(events->lost_events(), 0u);

  auto stats = enforcer->stats();
  EXPECT_EQ(stats.connects_denied, 4u);  // v4, v6, mapped, udp
}

// The daemon blocks on the ring buffer's fd with no timer: the first event of a quiet
// period must wake it, and events right behind it (no wakeup of their own) must still
// reach a reader that only waits as long as next_drain_in_ms() says.
TEST_F(BpfNetns, BlockedReaderIsWokenByEventsWithoutPolling) {
  if (!cg_) return;
  auto loader = BpfLoader::load(config(/*cgroup=*/true, /*interfaces=*/false));
  ASSERT_TRUE(loader) << loader.error().message;
  auto events = RingbufEventSource::create(*loader);
  ASSERT_TRUE(events) << events.error().message;
  test::ChildOptions in_cgroup;
  in_cgroup.cgroup = &*cg_;
  auto send_one = [&] {
    return test::run_child(in_cgroup, [&] { return test::udp_sendto(net_.peer_v4, 5353); });
  };
  std::vector<ConnectEvent> seen;
  EXPECT_EQ(events->next_drain_in_ms(), -1);  // nothing read yet: no recheck due

  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a quiet period
  ASSERT_EQ(send_one(), 0);
  epoll_event ev{};
  EXPECT_EQ(::epoll_wait(events->readable_fd(), &ev, 1, 5000), 1) << "no wakeup for the event";
  EXPECT_EQ(events->poll(seen, 1024, 0), 1u);
  EXPECT_GE(events->next_drain_in_ms(), 0);  // found events: a recheck is due

  // Two more at once: at most the first of them sends a wakeup.
  ASSERT_EQ(send_one(), 0);
  ASSERT_EQ(send_one(), 0);
  seen.clear();
  const auto t0 = std::chrono::steady_clock::now();
  while (seen.size() < 2 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    const int wait = events->next_drain_in_ms();
    if (wait != 0 && ::epoll_wait(events->readable_fd(), &ev, 1, wait < 0 ? 5000 : wait) < 0) break;
    events->poll(seen, 1024, 0);
  }
  EXPECT_EQ(seen.size(), 2u);
  // Once a recheck finds nothing, the reader may block with no timeout.
  EXPECT_TRUE(test::wait_until(
      [&] {
        events->poll(seen, 1024, 0);
        return events->next_drain_in_ms() == -1;
      },
      2000));
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(events->lost_events(), 0u);
}

TEST_F(BpfNetns, XdpDropsBlockedSourcesUntilRemovedOrExpired) {
  if (!cg_) return;
  test::TcpListener listener(nullptr, net_.host_v4, 8081);
  test::TcpListener listener6(nullptr, net_.host_v6, 8081);
  auto loader = BpfLoader::load(config(/*cgroup=*/false, /*interfaces=*/true));
  ASSERT_TRUE(loader) << loader.error().message;
  ASSERT_EQ(loader->attachments().size(), 2u) << loader->describe();
  auto enforcer = BpfEnforcer::from_loader(*loader);
  ASSERT_TRUE(enforcer);

  EXPECT_TRUE(ping_from_ns(*ns_, net_.host_v4));
  EXPECT_EQ(connect_from_ns(*ns_, net_.host_v4, 8081), 0);

  // Ingress block on the namespace's addresses: XDP drops their packets.
  std::vector<BlockRule> rules = {block(net_.peer_v4, Direction::ingress, 1),
                                  block(net_.peer_v6, Direction::ingress, 2)};
  ASSERT_TRUE(enforcer->apply(rules, wall_now_ms()));
  EXPECT_FALSE(ping_from_ns(*ns_, net_.host_v4));
  EXPECT_EQ(connect_from_ns(*ns_, net_.host_v4, 8081), ETIMEDOUT);
  EXPECT_FALSE(ping_from_ns(*ns_, "-6 " + net_.host_v6));
  EXPECT_EQ(connect_from_ns(*ns_, net_.host_v6, 8081), ETIMEDOUT);
  auto counters = read_hook_counters(loader->counters_fd());
  ASSERT_TRUE(counters);
  EXPECT_GE((*counters)[MESHD_HOOK_XDP_INGRESS].blocked, 4u);
  EXPECT_EQ((*counters)[MESHD_HOOK_TC_EGRESS].blocked, 0u);

  // Removal: traffic passes again.
  std::vector<Prefix> lift = {host_prefix(net_.peer_v4), host_prefix(net_.peer_v6)};
  ASSERT_TRUE(enforcer->remove(lift));
  EXPECT_TRUE(ping_from_ns(*ns_, net_.host_v4));
  EXPECT_EQ(connect_from_ns(*ns_, net_.host_v4, 8081), 0);
  EXPECT_TRUE(ping_from_ns(*ns_, "-6 " + net_.host_v6));

  // Expiry: the kernel stops enforcing on its own, no daemon action needed.
  std::vector<BlockRule> short_lived = {block(net_.peer_v4, Direction::ingress, 3, 2000)};
  ASSERT_TRUE(enforcer->apply(short_lived, wall_now_ms()));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(ping_from_ns(*ns_, net_.host_v4));
  EXPECT_TRUE(test::wait_until([&] { return ping_from_ns(*ns_, net_.host_v4); }, 6000));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
  EXPECT_EQ(connect_from_ns(*ns_, net_.host_v4, 8081), 0);
}

TEST_F(BpfNetns, TcEgressDropsPacketsToBlockedDestinations) {
  if (!cg_) return;
  test::TcpListener listener(&*ns_, net_.peer_v4, 8082);
  auto loader = BpfLoader::load(config(/*cgroup=*/false, /*interfaces=*/true));
  ASSERT_TRUE(loader) << loader.error().message;
  auto enforcer = BpfEnforcer::from_loader(*loader);
  ASSERT_TRUE(enforcer);
  EXPECT_EQ(test::tcp_connect(net_.peer_v4, 8082, 1000), 0);

  std::vector<BlockRule> rules = {block(net_.peer_v4, Direction::egress, 5)};
  ASSERT_TRUE(enforcer->apply(rules, wall_now_ms()));
  // Not a cgroup hook (none attached here): the host's own packets die at TC egress.
  EXPECT_EQ(test::tcp_connect(net_.peer_v4, 8082, 1000), ETIMEDOUT);
  EXPECT_FALSE(test::run("ping -c1 -W1 " + net_.peer_v4 + " >/dev/null").ok());
  auto counters = read_hook_counters(loader->counters_fd());
  ASSERT_TRUE(counters);
  EXPECT_GE((*counters)[MESHD_HOOK_TC_EGRESS].blocked, 2u);
  EXPECT_EQ((*counters)[MESHD_HOOK_XDP_INGRESS].blocked, 0u);
}

// Without a pin path (tests, benchmarks) everything detaches with the loader; pinned
// attachments, which outlive it, are covered by bpf_persist_test.cpp.
TEST_F(BpfNetns, UnpinnedFallbackModesGenericXdpAndClsactEnforceAndDetachWithTheLoader) {
  if (!cg_) return;
  const std::string ifname = veth_->host_name();
  {
    BpfLoaderConfig c = config(false, true);
    c.pin_path = "";
    c.force_xdp_generic = true;
    c.force_tc_clsact = true;
    auto loader = BpfLoader::load(c);
    ASSERT_TRUE(loader) << loader.error().message;
    EXPECT_FALSE(loader->persistent());
    ASSERT_EQ(loader->attachments().size(), 2u);
    EXPECT_EQ(loader->attachments()[0].mode, "xdp generic");
    EXPECT_EQ(loader->attachments()[1].mode, "clsact");
    EXPECT_FALSE(loader->features().tcx);
    EXPECT_FALSE(loader->features().xdp_native);
    auto enforcer = BpfEnforcer::from_loader(*loader);
    ASSERT_TRUE(enforcer);
    std::vector<BlockRule> ingress = {block(net_.peer_v4, Direction::ingress, 1)};
    ASSERT_TRUE(enforcer->apply(ingress, wall_now_ms()));
    EXPECT_FALSE(ping_from_ns(*ns_, net_.host_v4));
    std::vector<BlockRule> egress = {block(net_.peer_v6, Direction::egress, 2)};
    ASSERT_TRUE(enforcer->apply(egress, wall_now_ms()));
    EXPECT_FALSE(test::run("ping -6 -c1 -W1 " + net_.peer_v6 + " >/dev/null").ok());
    EXPECT_TRUE(test::run("tc qdisc show dev " + ifname + " | grep -q clsact").ok());
    EXPECT_GE(enforcer->stats().packets_dropped, 2u);
  }
  // The loader created the clsact qdisc, so it removes it again, and XDP is detached.
  EXPECT_FALSE(test::run("tc qdisc show dev " + ifname + " | grep -q clsact").ok());
  EXPECT_FALSE(xdp_attached(ifname));
  EXPECT_TRUE(ping_from_ns(*ns_, net_.host_v4));
}

TEST_F(BpfNetns, LoaderRestartKeepsEnforcementFromPinnedMapsAndLinksAndReconciles) {
  if (!cg_) return;
  const std::string ifname = veth_->host_name();
  const BlockRule rule = block(net_.peer_v4, Direction::both, 777);
  {
    auto loader = BpfLoader::load(config(true, true));
    ASSERT_TRUE(loader) << loader.error().message;
    auto enforcer = BpfEnforcer::open_pinned(loader->pin_path());
    ASSERT_TRUE(enforcer) << enforcer.error().message;
    std::vector<BlockRule> rules = {rule};
    ASSERT_TRUE(enforcer->apply(rules, wall_now_ms()));
    EXPECT_EQ(connect_from(*cg_, net_.peer_v4, 9), EPERM);
    EXPECT_FALSE(ping_from_ns(*ns_, net_.host_v4));
    EXPECT_TRUE(xdp_attached(ifname));
  }
  // Daemon gone: the pinned links keep the programs attached, so the kernel still enforces
  // (until the entries expire); the pinned maps are still there.
  EXPECT_TRUE(xdp_attached(ifname));
  EXPECT_FALSE(ping_from_ns(*ns_, net_.host_v4));
  EXPECT_EQ(connect_from(*cg_, net_.peer_v4, 9), EPERM);
  const std::string maps = pins_->path() + "/maps";
  EXPECT_TRUE(fs::exists(pin_file(maps, MESHD_MAP_BLOCK_V4)));
  EXPECT_TRUE(fs::exists(pin_file(maps, MESHD_MAP_BLOCK_V6)));
  EXPECT_TRUE(fs::exists(pin_file(maps, MESHD_MAP_COUNTERS)));

  // Restart with the same pin path: the old block is enforced before any apply(), by the
  // same links now running the new loader's programs.
  auto loader = BpfLoader::load(config(true, true));
  ASSERT_TRUE(loader) << loader.error().message;
  for (const auto& a : loader->attachments()) EXPECT_TRUE(a.taken_over) << loader->describe();
  EXPECT_EQ(connect_from(*cg_, net_.peer_v4, 9), EPERM);
  EXPECT_FALSE(ping_from_ns(*ns_, net_.host_v4));

  // Reconciliation: list() returns what the previous run installed.
  auto enforcer = BpfEnforcer::open_pinned(maps);
  ASSERT_TRUE(enforcer) << enforcer.error().message;
  EXPECT_EQ(enforcer->stats().active_rules, 1u);
  auto listed = enforcer->list(wall_now_ms());
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].prefix, rule.prefix);
  EXPECT_EQ((*listed)[0].rule_id, 777u);
  EXPECT_EQ((*listed)[0].direction, Direction::both);
  EXPECT_NEAR(static_cast<double>((*listed)[0].expires_at), static_cast<double>(rule.expires_at),
              2000.0);
  // Counters survive too (pinned): the drops of the first run are still counted.
  EXPECT_GE(enforcer->stats().connects_denied, 2u);
}

}  // namespace
}  // namespace meshd::sensor

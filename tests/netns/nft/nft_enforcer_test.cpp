// NftEnforcer in a network namespace of its own: real packets, real kernel timeouts.
// The test thread enters the namespace (setns affects only the calling thread), so the
// enforcer's netlink socket and the test's TCP sockets all live there; `nft` commands run
// with nsenter. The test addresses live on the namespace's loopback, so traffic between
// them crosses the output and input hooks.
#include "sensor/nft_enforcer.hpp"
#include "meshd/common/clock.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>

#include "tests/support/netns/netns.hpp"

namespace meshd::sensor {
namespace {

using meshd::test::NetNs;

Prefix P(std::string_view s) {
  return *Prefix::parse(s);
}

// Moves the calling thread into a network namespace until destruction.
class EnterNetns {
 public:
  explicit EnterNetns(const std::string& path) {
    orig_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (orig_ < 0 || fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      if (fd >= 0) ::close(fd);
      throw std::runtime_error("cannot enter " + path + ": " + std::strerror(errno));
    }
    ::close(fd);
  }
  ~EnterNetns() {
    ::setns(orig_, CLONE_NEWNET);
    ::close(orig_);
  }

 private:
  int orig_ = -1;
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_storage make_addr(const std::string& ip, std::uint16_t port, socklen_t& len) {
  sockaddr_storage ss{};
  if (ip.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    ::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
    len = sizeof(sockaddr_in);
  }
  return ss;
}

constexpr std::uint16_t kPort = 7777;

// TCP connect with a timeout: 0 on success, else the errno. A dropped SYN (or SYN-ACK) is
// retransmitted by TCP, so a blocked connect shows up as ETIMEDOUT here.
int try_connect(const std::string& dst, const std::string& src = "", int timeout_ms = 700) {
  socklen_t len = 0;
  auto to = make_addr(dst, kPort, len);
  Fd s(::socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!src.empty()) {
    socklen_t slen = 0;
    auto from = make_addr(src, 0, slen);
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&from), slen) != 0) return errno;
  }
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&to), len) == 0) return 0;
  if (errno != EINPROGRESS) return errno;
  pollfd p{s.get(), POLLOUT, 0};
  if (::poll(&p, 1, timeout_ms) == 0) return ETIMEDOUT;
  int err = 0;
  socklen_t elen = sizeof(err);
  ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &elen);
  return err;
}

// One UDP datagram: 0 when sent, EPERM when the output hook dropped it (the kernel reports
// an output-hook drop to the sender as EPERM), so this proves where the drop happened.
int udp_send(const std::string& dst) {
  socklen_t len = 0;
  auto to = make_addr(dst, 9, len);
  Fd s(::socket(to.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  char byte = 0;
  if (::sendto(s.get(), &byte, 1, 0, reinterpret_cast<sockaddr*>(&to), len) == 1) return 0;
  return errno;
}

class NftNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (meshd::test::skip_unless_root()) return;
    ns_ = std::make_unique<NetNs>("nft");
    sh("ip addr add 10.77.1.1/32 dev lo && ip addr add 10.77.1.200/32 dev lo"
       " && ip addr add 10.77.2.1/32 dev lo && ip addr add 10.77.3.1/32 dev lo"
       " && ip addr add 255.255.255.254/32 dev lo"
       " && ip -6 addr add fd00:77::1/128 dev lo nodad && ip -6 addr add fd00:78::1/128 dev lo "
       "nodad");
    enter_ = std::make_unique<EnterNetns>(ns_->path());
    listen_ = std::make_unique<Fd>(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int zero = 0, one = 1;
    ::setsockopt(listen_->get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));  // v4 and v6
    ::setsockopt(listen_->get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t len = 0;
    auto any = make_addr("::", kPort, len);
    ASSERT_EQ(::bind(listen_->get(), reinterpret_cast<sockaddr*>(&any), len), 0)
        << std::strerror(errno);
    ASSERT_EQ(::listen(listen_->get(), 512), 0);
    table_ = meshd::test::unique_name("meshd-t");
    enforcer_ = make_enforcer();
  }

  void TearDown() override {
    enforcer_.reset();
    listen_.reset();
    enter_.reset();
    ns_.reset();  // deleting the namespace also removes anything left in it
  }

  std::unique_ptr<NftEnforcer> make_enforcer(bool prefer_destroy = true) {
    NftOptions opt;
    opt.table = table_;
    opt.prefer_destroy = prefer_destroy;
    auto e = NftEnforcer::create(opt, wall_now_ms(),
                                 std::make_shared<spdlog::logger>(
                                     "nft-test", std::make_shared<spdlog::sinks::null_sink_st>()));
    EXPECT_TRUE(e) << e.error().message;
    return e ? std::move(*e) : nullptr;
  }

  std::string sh(const std::string& cmd) {
    return meshd::test::run_checked(meshd::test::netns_prefix(*ns_) + "sh -c '" + cmd + "'");
  }
  meshd::test::CommandResult nft_list() {
    return meshd::test::run(meshd::test::netns_prefix(*ns_) + "nft list table inet " + table_);
  }

  ApplyReport apply(std::vector<BlockRule> rules) {
    auto r = enforcer_->apply(rules, wall_now_ms());
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : ApplyReport{};
  }

  std::unique_ptr<NetNs> ns_;
  std::unique_ptr<EnterNetns> enter_;
  std::unique_ptr<Fd> listen_;
  std::string table_;
  std::unique_ptr<NftEnforcer> enforcer_;
};

BlockRule rule(std::string_view p, std::uint64_t id, DurationMs ttl,
               Direction d = Direction::egress) {
  return BlockRule{P(p), d, id, wall_now_ms() + ttl};
}

TEST_F(NftNetns, BlocksACidrExactlyAndRemovalRestoresTraffic) {
  ASSERT_TRUE(enforcer_);
  ASSERT_EQ(try_connect("10.77.1.1"), 0);
  auto rep = apply({rule("10.77.1.0/24", 1, 60'000)});
  EXPECT_EQ(rep.applied, 1u);
  EXPECT_EQ(try_connect("10.77.1.1"), ETIMEDOUT);
  EXPECT_EQ(udp_send("10.77.1.1"), EPERM);
  EXPECT_EQ(udp_send("10.77.1.200"), EPERM);
  EXPECT_EQ(try_connect("10.77.2.1"), 0);  // outside the /24

  auto listed = nft_list();
  ASSERT_TRUE(listed.ok()) << listed.output;
  EXPECT_NE(listed.output.find("10.77.1.0/24"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("rule=1 prefix=10.77.1.0/24"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("flags interval,timeout"), std::string::npos) << listed.output;
  EXPECT_GT(enforcer_->stats().packets_dropped, 0u);

  std::vector<Prefix> gone{P("10.77.1.0/24"), P("192.0.2.0/24")};
  EXPECT_EQ(enforcer_->remove(gone).value(), 1u);
  EXPECT_EQ(try_connect("10.77.1.1"), 0);
  EXPECT_EQ(nft_list().output.find("10.77.1.0/24"), std::string::npos);
}

TEST_F(NftNetns, Ipv6AndIngress) {
  ASSERT_TRUE(enforcer_);
  apply({rule("fd00:77::/64", 1, 60'000), rule("10.77.3.1", 2, 60'000, Direction::ingress)});
  EXPECT_EQ(udp_send("fd00:77::1"), EPERM);
  EXPECT_EQ(try_connect("fd00:78::1"), 0);
  // Ingress: packets FROM 10.77.3.1 are dropped on input, so the handshake never completes.
  EXPECT_EQ(try_connect("10.77.2.1", "10.77.3.1"), ETIMEDOUT);
  EXPECT_EQ(try_connect("10.77.2.1", "10.77.1.1"), 0);
  // Egress to 10.77.3.1 is not blocked by an ingress rule... but its replies come back from
  // 10.77.3.1, so the connection still fails (timeout, not EPERM).
  EXPECT_EQ(try_connect("10.77.3.1", "10.77.1.1"), ETIMEDOUT);
  // One `both` rule blocks in both directions.
  apply({rule("10.77.1.200", 3, 60'000, Direction::both)});
  EXPECT_EQ(udp_send("10.77.1.200"), EPERM);
  EXPECT_EQ(try_connect("10.77.2.1", "10.77.1.200"), ETIMEDOUT);
  EXPECT_EQ(try_connect("10.77.2.1", "10.77.1.1"), 0);
  auto listed = nft_list().output;
  EXPECT_NE(listed.find("fd00:77::/64"), std::string::npos) << listed;
  EXPECT_NE(listed.find("set both4"), std::string::npos) << listed;
  EXPECT_NE(listed.find("10.77.3.1"), std::string::npos) << listed;
}

TEST_F(NftNetns, ExpiredElementStopsBlockingInTheKernel) {
  ASSERT_TRUE(enforcer_);
  const auto start = std::chrono::steady_clock::now();
  apply({rule("10.77.1.1", 1, 1500)});
  EXPECT_EQ(udp_send("10.77.1.1"), EPERM);
  // No call into the enforcer from here on: only the kernel's element timeout can lift it.
  EXPECT_TRUE(meshd::test::wait_until([] { return udp_send("10.77.1.1") == 0; }, 6000));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
  EXPECT_EQ(try_connect("10.77.1.1"), 0);
  EXPECT_EQ(nft_list().output.find("10.77.1.1"), std::string::npos);
  EXPECT_TRUE(enforcer_->list(wall_now_ms())->empty());
}

TEST_F(NftNetns, NestedRulesKeepTheLongerExpiryOfEachPart) {
  ASSERT_TRUE(enforcer_);
  apply({rule("10.77.0.0/16", 1, 1500), rule("10.77.1.0/24", 2, 60'000)});
  EXPECT_EQ(udp_send("10.77.1.1"), EPERM);
  EXPECT_EQ(udp_send("10.77.2.1"), EPERM);
  EXPECT_TRUE(meshd::test::wait_until([] { return udp_send("10.77.2.1") == 0; }, 6000));
  EXPECT_EQ(udp_send("10.77.1.1"), EPERM);  // the /24 outlives the /16 around it
  auto listed = enforcer_->list(wall_now_ms()).value();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].prefix, P("10.77.1.0/24"));
  // Adjacent halves of a /24, then only one of them.
  apply({rule("10.77.1.0/25", 3, 60'000), rule("10.77.1.128/25", 4, 60'000)});
  std::vector<Prefix> gone{P("10.77.1.0/24"), P("10.77.1.0/25")};
  EXPECT_EQ(enforcer_->remove(gone).value(), 2u);
  EXPECT_EQ(try_connect("10.77.1.1"), 0);
  EXPECT_EQ(udp_send("10.77.1.200"), EPERM);
}

TEST_F(NftNetns, WholeAddressSpaceAndTopAddresses) {
  ASSERT_TRUE(enforcer_);
  apply({rule("255.255.255.254/31", 1, 60'000), rule("::/0", 2, 60'000)});
  EXPECT_EQ(udp_send("255.255.255.254"), EPERM);
  EXPECT_EQ(udp_send("fd00:78::1"), EPERM);
  EXPECT_EQ(try_connect("10.77.2.1"), 0);
  auto listed = nft_list();
  EXPECT_NE(listed.output.find("255.255.255.254/31"), std::string::npos) << listed.output;
  apply({rule("0.0.0.0/0", 3, 60'000, Direction::ingress)});
  EXPECT_EQ(try_connect("10.77.2.1"), ETIMEDOUT);
  std::vector<Prefix> all{P("0.0.0.0/0"), P("::/0"), P("255.255.255.254/31")};
  EXPECT_EQ(enforcer_->remove(all).value(), 3u);
  EXPECT_EQ(try_connect("10.77.2.1"), 0);
  EXPECT_EQ(try_connect("fd00:78::1"), 0);
  EXPECT_EQ(try_connect("255.255.255.254"), 0);
}

TEST_F(NftNetns, ProtectedPrefixIsRefusedI1) {
  ASSERT_TRUE(enforcer_);
  enforcer_->set_protected({P("10.77.1.1")});
  auto rep = apply({rule("10.77.1.0/24", 1, 60'000), rule("10.77.2.1", 2, 60'000)});
  EXPECT_EQ(rep.applied, 1u);
  ASSERT_EQ(rep.refused.size(), 1u);
  EXPECT_EQ(rep.refused[0].second.code, "protected");
  EXPECT_EQ(try_connect("10.77.1.1"), 0);
  EXPECT_EQ(udp_send("10.77.2.1"), EPERM);
  EXPECT_EQ(nft_list().output.find("10.77.1."), std::string::npos);
  // Protecting an address that is already blocked lifts the block.
  enforcer_->set_protected({P("10.77.1.1"), P("10.77.2.0/24")});
  EXPECT_EQ(try_connect("10.77.2.1"), 0);
}

TEST_F(NftNetns, RestartAdoptsTheTableAndDestroyRemovesIt) {
  ASSERT_TRUE(enforcer_);
  apply({rule("10.77.1.0/24", 11, 60'000, Direction::both), rule("fd00:77::1", 12, 60'000)});
  auto before = enforcer_->list(wall_now_ms()).value();
  ASSERT_EQ(before.size(), 2u);
  enforcer_.reset();  // daemon exits: the table and its blocks stay
  EXPECT_EQ(udp_send("10.77.1.1"), EPERM);
  enforcer_ = make_enforcer();
  ASSERT_TRUE(enforcer_);
  auto after = enforcer_->list(wall_now_ms()).value();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].prefix, before[0].prefix);
  EXPECT_EQ(after[0].rule_id, before[0].rule_id);
  EXPECT_EQ(after[0].direction, Direction::both);
  EXPECT_EQ(after[0].expires_at, before[0].expires_at);
  EXPECT_EQ(after[1].prefix, P("fd00:77::1"));
  // The adopted rules are managed like our own: removal works.
  std::vector<Prefix> gone{P("fd00:77::1")};
  EXPECT_EQ(enforcer_->remove(gone).value(), 1u);
  EXPECT_EQ(try_connect("fd00:77::1"), 0);
  ASSERT_TRUE(enforcer_->destroy());
  EXPECT_FALSE(nft_list().ok());
  EXPECT_EQ(try_connect("10.77.1.1"), 0);
}

TEST_F(NftNetns, ForeignTableOfTheSameNameIsNeverTouched) {
  ASSERT_TRUE(enforcer_);
  ASSERT_TRUE(enforcer_->destroy());
  enforcer_.reset();
  sh("nft add table inet " + table_ + " && nft add chain inet " + table_ + " mine");
  NftOptions opt;
  opt.table = table_;
  auto e = NftEnforcer::create(opt, wall_now_ms());
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "nft_foreign_table");
  EXPECT_NE(nft_list().output.find("chain mine"), std::string::npos);
}

// `meshd --detach`: the table a stopped daemon left (still enforcing) is deleted without
// being adopted; nothing left is not an error; a foreign table is never touched.
TEST_F(NftNetns, RemoveTableDeletesOnlyMeshdsTable) {
  ASSERT_TRUE(enforcer_);
  apply({rule("10.77.1.0/24", 21, 60'000, Direction::both)});
  enforcer_.reset();
  EXPECT_EQ(udp_send("10.77.1.1"), EPERM);
  auto removed = NftEnforcer::remove_table(table_);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(nft_list().ok());
  EXPECT_EQ(try_connect("10.77.1.1"), 0);
  removed = NftEnforcer::remove_table(table_);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_FALSE(*removed);
  sh("nft add table inet " + table_ + " && nft add chain inet " + table_ + " mine");
  removed = NftEnforcer::remove_table(table_);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().code, "nft_foreign_table");
  EXPECT_NE(nft_list().output.find("chain mine"), std::string::npos);
}

TEST_F(NftNetns, ElementsChangedBehindOurBackAreRereadAndFixed) {
  ASSERT_TRUE(enforcer_);
  // Plain DELSETELEM (what kernels before 6.3 have): deleting a missing element fails the
  // batch, so this exercises the re-read-and-retry path.
  enforcer_ = make_enforcer(false);
  ASSERT_TRUE(enforcer_);
  EXPECT_FALSE(enforcer_->kernel_has_destroy());
  apply({rule("10.77.1.0/24", 1, 60'000, Direction::both), rule("10.77.2.1", 2, 60'000)});
  sh("nft delete element inet " + table_ + " both4 { 10.77.1.0/24 }");
  EXPECT_EQ(udp_send("10.77.1.1"), 0);  // an operator removed it by hand
  // Re-timing the rule must delete the element we believe exists: the kernel says it does
  // not, the enforcer re-reads the sets and installs it again.
  apply({rule("10.77.1.0/24", 1, 120'000, Direction::both)});
  EXPECT_EQ(enforcer_->counters().resyncs, 1u);
  EXPECT_EQ(udp_send("10.77.1.1"), EPERM);
  // An element added by hand (no meshd comment) is removed by an explicit reload.
  sh("nft add element inet " + table_ + " egress4 { 10.77.3.0/24 timeout 1h }");
  EXPECT_EQ(udp_send("10.77.3.1"), EPERM);
  ASSERT_TRUE(enforcer_->reload_from_kernel(wall_now_ms()));
  EXPECT_EQ(udp_send("10.77.3.1"), 0);
  EXPECT_EQ(udp_send("10.77.2.1"), EPERM);
  // A short rule expires in the kernel; the enforcer then re-applies over it without error.
  apply({rule("10.77.2.1", 2, 800)});
  EXPECT_TRUE(meshd::test::wait_until([] { return udp_send("10.77.2.1") == 0; }, 5000));
  apply({rule("10.77.2.0/24", 3, 60'000)});
  EXPECT_EQ(udp_send("10.77.2.1"), EPERM);
  std::vector<Prefix> all{P("10.77.1.0/24"), P("10.77.2.0/24")};
  EXPECT_EQ(enforcer_->remove(all).value(), 2u);
  EXPECT_EQ(udp_send("10.77.1.1"), 0);
  EXPECT_EQ(udp_send("10.77.2.1"), 0);
}

}  // namespace
}  // namespace meshd::sensor

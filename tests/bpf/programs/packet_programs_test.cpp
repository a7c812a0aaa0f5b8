// BPF_PROG_TEST_RUN tables for the XDP ingress and TC egress programs of bpf/meshd.bpf.c:
// each row is (description, input frame, expected verdict), run against block maps that
// BpfEnforcer filled (plus raw entries for cases apply() would never write).
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include <gtest/gtest.h>

#include "sensor/bpf_enforcer.hpp"
#include "sensor/bpf_loader.hpp"
#include "tests/bpf/programs/packets.hpp"
#include "tests/support/netns/netns.hpp"

namespace meshd::sensor {
namespace {

using test::Bytes;
using test::FrameSpec;
using test::ipv4_tcp;
using test::ipv6_tcp;
using test::truncated;

constexpr TimeMs kNow = 1'700'000'000'000;
constexpr std::uint32_t kTcPass = static_cast<std::uint32_t>(TC_ACT_UNSPEC);
constexpr std::uint32_t kTcDrop = TC_ACT_SHOT;

struct Row {
  const char* description;
  Bytes packet;
  std::uint32_t expected;
};

Prefix P(const char* text) {
  return *Prefix::parse(text);
}

BlockRule rule(const char* prefix, Direction d, std::uint64_t id) {
  return BlockRule{P(prefix), d, id, kNow + kHour};
}

// Runs one frame through a program; nullopt when the kernel refuses the input itself.
std::optional<std::uint32_t> run(int prog_fd, const Bytes& packet) {
  bpf_test_run_opts opts{};
  opts.sz = sizeof opts;
  opts.data_in = packet.data();
  opts.data_size_in = static_cast<std::uint32_t>(packet.size());
  opts.repeat = 1;
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) return std::nullopt;
  return opts.retval;
}

class PacketPrograms : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::skip_unless_root()) return;
    BpfLoaderConfig config;
    config.pin_path = "";  // private, unpinned maps: nothing to clean up
    auto loader = BpfLoader::load(config);
    ASSERT_TRUE(loader) << loader.error().message;
    loader_.emplace(std::move(*loader));
    auto enforcer = BpfEnforcer::from_loader(*loader_);
    ASSERT_TRUE(enforcer) << enforcer.error().message;
    enforcer_.emplace(std::move(*enforcer));

    std::vector<BlockRule> rules = {
        rule("10.1.0.0/16", Direction::both, 1),
        rule("10.3.0.0/16", Direction::egress, 3),
        rule("10.4.0.0/16", Direction::ingress, 4),
        rule("10.6.0.0/16", Direction::both, 6),
        rule("10.7.0.0/16", Direction::ingress, 7),
        rule("10.7.1.0/24", Direction::egress, 71),
        rule("192.0.2.7/32", Direction::both, 8),
        rule("2001:db8:bad::/48", Direction::both, 9),
        rule("2001:db8:e9::/48", Direction::egress, 10),
        rule("10.128.0.0/9", Direction::ingress, 11),
    };
    auto report = enforcer_->apply(rules, kNow);
    ASSERT_TRUE(report) << report.error().message;
    ASSERT_EQ(report->applied, rules.size());

    // Entries apply() never writes (already expired), written raw: an expired /16, an
    // expired v6 /48, and an expired /24 shadowing the live 10.6.0.0/16.
    write_raw_v4("10.5.0.0/16", 1);
    write_raw_v4("10.6.1.0/24", 1);
    meshd_v6_key k6 = to_v6_key(P("2001:db8:dead::/48"));
    meshd_block_value v{1, 99, MESHD_DIR_MASK, 48};
    ASSERT_EQ(bpf_map_update_elem(loader_->block_v6_fd(), &k6, &v, BPF_ANY), 0);

    // Raw writes bypass the enforcer's IPv4 pre-filter; a new enforcer reconciles it from
    // the maps, as after a daemon restart.
    enforcer_.reset();
    auto reopened = BpfEnforcer::from_loader(*loader_);
    ASSERT_TRUE(reopened) << reopened.error().message;
    enforcer_.emplace(std::move(*reopened));
    ASSERT_TRUE(enforcer_->detailed_stats().v4_filter_armed);
  }

  void write_raw_v4(const char* prefix, std::uint64_t expiry_boot_ns) {
    Prefix p = P(prefix);
    meshd_v4_key k = to_v4_key(p);
    meshd_block_value v{expiry_boot_ns, 99, MESHD_DIR_MASK, p.len};
    ASSERT_EQ(bpf_map_update_elem(loader_->block_v4_fd(), &k, &v, BPF_ANY), 0);
  }

  void run_table(int prog_fd, const std::vector<Row>& rows) {
    for (const Row& row : rows) {
      auto got = run(prog_fd, row.packet);
      ASSERT_TRUE(got.has_value())
          << row.description << ": test run failed: " << std::strerror(errno);
      EXPECT_EQ(*got, row.expected) << row.description;
    }
  }

  std::optional<BpfLoader> loader_;
  std::optional<BpfEnforcer> enforcer_;
};

TEST_F(PacketPrograms, XdpDropsBlockedSourcesAndPassesEverythingElse) {
  const FrameSpec dot1q{{0x8100}};
  const FrameSpec qinq{{0x88a8, 0x8100}};
  const FrameSpec three_tags{{0x88a8, 0x8100, 0x8100}};
  const std::vector<Row> rows = {
      {"v4 source inside blocked /16", ipv4_tcp("10.1.2.3", "192.168.0.1"), XDP_DROP},
      {"v4 source at the /16's first address", ipv4_tcp("10.1.0.0", "192.168.0.1"), XDP_DROP},
      {"v4 source just outside the /16", ipv4_tcp("10.2.0.1", "192.168.0.1"), XDP_PASS},
      {"v4 destination blocked, source not (XDP checks sources)",
       ipv4_tcp("192.168.0.1", "10.1.2.3"), XDP_PASS},
      {"v4 /32 block matches exactly", ipv4_tcp("192.0.2.7", "192.168.0.1"), XDP_DROP},
      {"v4 neighbour of a /32 block", ipv4_tcp("192.0.2.8", "192.168.0.1"), XDP_PASS},
      {"egress-only block does not drop ingress", ipv4_tcp("10.3.0.1", "192.168.0.1"), XDP_PASS},
      {"ingress-only block drops ingress", ipv4_tcp("10.4.0.1", "192.168.0.1"), XDP_DROP},
      {"expired entry passes", ipv4_tcp("10.5.0.1", "192.168.0.1"), XDP_PASS},
      {"expired /24 inside a live /16: the /16 still drops", ipv4_tcp("10.6.1.1", "192.168.0.1"),
       XDP_DROP},
      {"egress /24 inside an ingress /16: the /16 drops ingress",
       ipv4_tcp("10.7.1.1", "192.168.0.1"), XDP_DROP},
      {"v4 source deep inside a blocked /9 (pre-filter range)", ipv4_tcp("10.200.1.1", "10.0.0.1"),
       XDP_DROP},
      {"v4 source at the /9's last address", ipv4_tcp("10.255.255.255", "10.0.0.1"), XDP_DROP},
      {"v4 source just below the /9", ipv4_tcp("10.127.255.255", "10.0.0.1"), XDP_PASS},
      {"v6 source inside blocked /48", ipv6_tcp("2001:db8:bad::1", "2001:db8::1"), XDP_DROP},
      {"v6 source outside the /48", ipv6_tcp("2001:db8:bad1::1", "2001:db8::1"), XDP_PASS},
      {"v6 egress-only block does not drop ingress", ipv6_tcp("2001:db8:e9::1", "2001:db8::1"),
       XDP_PASS},
      {"v6 expired entry passes", ipv6_tcp("2001:db8:dead::1", "2001:db8::1"), XDP_PASS},
      {"802.1Q tagged, blocked source", ipv4_tcp("10.1.2.3", "192.168.0.1", dot1q), XDP_DROP},
      {"802.1Q tagged, unblocked source", ipv4_tcp("10.2.2.3", "192.168.0.1", dot1q), XDP_PASS},
      {"802.1Q tagged v6, blocked source", ipv6_tcp("2001:db8:bad::1", "2001:db8::1", dot1q),
       XDP_DROP},
      {"QinQ (two tags), blocked source", ipv4_tcp("10.1.2.3", "192.168.0.1", qinq), XDP_DROP},
      {"three tags: not parsed, passed", ipv4_tcp("10.1.2.3", "192.168.0.1", three_tags), XDP_PASS},
      {"IPv4 header truncated", truncated(ipv4_tcp("10.1.2.3", "192.168.0.1"), 14 + 19), XDP_PASS},
      {"only an Ethernet header", truncated(ipv4_tcp("10.1.2.3", "192.168.0.1"), 14), XDP_PASS},
      {"802.1Q tag truncated", truncated(ipv4_tcp("10.1.2.3", "192.168.0.1", dot1q), 16), XDP_PASS},
      {"IPv6 header truncated", truncated(ipv6_tcp("2001:db8:bad::1", "2001:db8::1"), 14 + 39),
       XDP_PASS},
      {"ARP frame",
       [] {
         Bytes b = test::ethernet({{}, 0x0806});
         b.resize(42);
         return b;
       }(),
       XDP_PASS},
  };
  if (!loader_) return;
  run_table(loader_->xdp_prog_fd(), rows);

  // Malformed IPv4 headers with a blocked source are passed, not dropped.
  Bytes bad_ihl = ipv4_tcp("10.1.2.3", "192.168.0.1");
  bad_ihl[14] = 0x44;  // IHL 4 < 5
  Bytes bad_version = ipv4_tcp("10.1.2.3", "192.168.0.1");
  bad_version[14] = 0x65;  // version 6 behind ethertype IPv4
  run_table(loader_->xdp_prog_fd(), {{"IPv4 IHL < 5", bad_ihl, XDP_PASS},
                                     {"version 6 in an IPv4 frame", bad_version, XDP_PASS}});

  auto counters = read_hook_counters(loader_->counters_fd());
  ASSERT_TRUE(counters);
  const auto& xdp = (*counters)[MESHD_HOOK_XDP_INGRESS];
  EXPECT_EQ(xdp.blocked, 12u);
  EXPECT_EQ(xdp.expired, 2u);   // 10.5.0.1 and 2001:db8:dead::1
  EXPECT_EQ(xdp.unparsed, 7u);  // three tags, 4 truncated, 2 malformed
  EXPECT_EQ(xdp.seen, rows.size() + 2);
}

TEST_F(PacketPrograms, XdpRefusesFramesShorterThanEthernetOrPassesThem) {
  if (!loader_) return;
  // The kernel may reject test inputs shorter than an Ethernet header before the program
  // runs; if it does run the program, the frame must pass.
  Bytes tiny = {0x02, 0, 0, 0, 0, 0};
  if (auto got = run(loader_->xdp_prog_fd(), tiny)) {
    EXPECT_EQ(*got, XDP_PASS);
  }
}

TEST_F(PacketPrograms, TcDropsBlockedDestinationsAndPassesEverythingElse) {
  const FrameSpec dot1q{{0x8100}};
  const std::vector<Row> rows = {
      {"v4 destination inside blocked /16", ipv4_tcp("192.168.0.1", "10.1.2.3"), kTcDrop},
      {"v4 destination outside the /16", ipv4_tcp("192.168.0.1", "10.2.0.1"), kTcPass},
      {"v4 source blocked, destination not (TC checks destinations)",
       ipv4_tcp("10.1.2.3", "192.168.0.1"), kTcPass},
      {"egress-only block drops egress", ipv4_tcp("192.168.0.1", "10.3.0.1"), kTcDrop},
      {"ingress-only block does not drop egress", ipv4_tcp("192.168.0.1", "10.4.0.1"), kTcPass},
      {"expired entry passes", ipv4_tcp("192.168.0.1", "10.5.0.1"), kTcPass},
      {"expired /24 inside a live /16: the /16 still drops", ipv4_tcp("192.168.0.1", "10.6.1.1"),
       kTcDrop},
      {"egress /24 inside an ingress /16 drops egress", ipv4_tcp("192.168.0.1", "10.7.1.1"),
       kTcDrop},
      {"ingress /16 around it does not drop egress elsewhere", ipv4_tcp("192.168.0.1", "10.7.2.1"),
       kTcPass},
      {"v4 /32 block", ipv4_tcp("192.168.0.1", "192.0.2.7"), kTcDrop},
      {"v6 destination inside blocked /48", ipv6_tcp("2001:db8::1", "2001:db8:bad::1"), kTcDrop},
      {"v6 egress-only /48", ipv6_tcp("2001:db8::1", "2001:db8:e9::5"), kTcDrop},
      {"v6 destination outside", ipv6_tcp("2001:db8::1", "2001:db8:beef::1"), kTcPass},
      {"v6 expired entry passes", ipv6_tcp("2001:db8::1", "2001:db8:dead::1"), kTcPass},
      {"802.1Q tagged, blocked destination", ipv4_tcp("192.168.0.1", "10.1.2.3", dot1q), kTcDrop},
      // BPF_PROG_TEST_RUN refuses skbs whose ethertype says IPv4/IPv6 but whose IP header
      // is short, so truncation is exercised behind a VLAN tag (the program sees the same
      // short read either way).
      {"802.1Q + IPv4 header truncated",
       truncated(ipv4_tcp("192.168.0.1", "10.1.2.3", dot1q), 18 + 19), kTcPass},
      {"802.1Q + IPv6 header truncated",
       truncated(ipv6_tcp("2001:db8::1", "2001:db8:bad::1", dot1q), 18 + 30), kTcPass},
      {"802.1Q tag truncated", truncated(ipv4_tcp("192.168.0.1", "10.1.2.3", dot1q), 16), kTcPass},
  };
  if (!loader_) return;
  run_table(loader_->tc_prog_fd(), rows);

  // Untagged truncated frames: the kernel may refuse them as test input; if it runs the
  // program, they must pass.
  int refused = 0;
  for (const Bytes& pkt : {truncated(ipv4_tcp("192.168.0.1", "10.1.2.3"), 14 + 19),
                           truncated(ipv6_tcp("2001:db8::1", "2001:db8:bad::1"), 14 + 30)}) {
    if (auto got = run(loader_->tc_prog_fd(), pkt)) {
      EXPECT_EQ(*got, kTcPass);
    } else {
      ++refused;
    }
  }

  auto counters = read_hook_counters(loader_->counters_fd());
  ASSERT_TRUE(counters);
  const auto& tc = (*counters)[MESHD_HOOK_TC_EGRESS];
  EXPECT_EQ(tc.blocked, 8u);
  EXPECT_EQ(tc.expired, 2u);
  EXPECT_EQ(tc.unparsed, 3u + (2u - refused));
}

// /32 and /24 (IPv6: /128 and /64) entries live in the exact-match maps, other lengths in
// the tries: nested entries across the two still combine, longest first.
TEST_F(PacketPrograms, ExactMapsAndTriesCombineLongestFirst) {
  if (!loader_) return;
  const std::vector<BlockRule> rules = {
      rule("10.9.0.0/16", Direction::ingress, 20),        // trie, around an expired exact /32
      rule("10.10.1.0/24", Direction::ingress, 21),       // exact, around a trie /28
      rule("10.10.1.16/28", Direction::egress, 22),       // trie, inside the exact /24
      rule("10.11.1.0/24", Direction::egress, 23),        // exact, inside a trie /16
      rule("10.11.0.0/16", Direction::ingress, 24),       // trie
      rule("10.12.1.9/32", Direction::egress, 25),        // exact /32 inside an exact /24
      rule("10.12.1.0/24", Direction::ingress, 26),       // exact
      rule("2001:db8:64::/64", Direction::ingress, 27),   // exact v6 net
      rule("2001:db8:64::5/128", Direction::egress, 28),  // exact v6 host inside it
      rule("2001:db8:65::/56", Direction::ingress, 29),   // trie, around an exact v6 /64
      rule("2001:db8:65::/64", Direction::egress, 30),
  };
  ASSERT_TRUE(enforcer_->apply(rules, kNow));
  // An expired exact /32 inside the live /16, written raw; the enforcer picks it up on open.
  meshd_v4_key k = to_v4_key(P("10.9.1.7/32"));
  meshd_block_value expired{1, 99, MESHD_DIR_MASK, 32};
  ASSERT_EQ(bpf_map_update_elem(loader_->exact_v4_fd(), &k, &expired, BPF_ANY), 0);
  enforcer_.reset();
  auto reopened = BpfEnforcer::from_loader(*loader_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  enforcer_.emplace(std::move(*reopened));
  EXPECT_GT(enforcer_->detailed_stats().v4_trie_filter_slash24s, 0u);

  run_table(
      loader_->xdp_prog_fd(),
      {
          {"expired exact /32 inside a live trie /16", ipv4_tcp("10.9.1.7", "10.0.0.1"), XDP_DROP},
          {"egress trie /28 inside an ingress exact /24", ipv4_tcp("10.10.1.17", "10.0.0.1"),
           XDP_DROP},
          {"egress exact /24 inside an ingress trie /16", ipv4_tcp("10.11.1.5", "10.0.0.1"),
           XDP_DROP},
          {"egress exact /32 inside an ingress exact /24", ipv4_tcp("10.12.1.9", "10.0.0.1"),
           XDP_DROP},
          {"next to an exact /24", ipv4_tcp("10.12.2.9", "10.0.0.1"), XDP_PASS},
          {"v6 egress /128 inside an ingress /64", ipv6_tcp("2001:db8:64::5", "2001:db8::1"),
           XDP_DROP},
          {"v6 egress /64 inside an ingress trie /56", ipv6_tcp("2001:db8:65::1", "2001:db8::1"),
           XDP_DROP},
          {"v6 next to the /64", ipv6_tcp("2001:db8:64:1::5", "2001:db8::1"), XDP_PASS},
      });
  run_table(
      loader_->tc_prog_fd(),
      {
          {"egress trie /28 inside an exact /24", ipv4_tcp("10.0.0.1", "10.10.1.17"), kTcDrop},
          {"ingress-only exact /24 outside the /28", ipv4_tcp("10.0.0.1", "10.10.1.1"), kTcPass},
          {"egress exact /24 inside an ingress /16", ipv4_tcp("10.0.0.1", "10.11.1.5"), kTcDrop},
          {"ingress-only trie /16 outside the /24", ipv4_tcp("10.0.0.1", "10.11.2.5"), kTcPass},
          {"egress exact /32", ipv4_tcp("10.0.0.1", "10.12.1.9"), kTcDrop},
          {"ingress-only exact /24 around it", ipv4_tcp("10.0.0.1", "10.12.1.10"), kTcPass},
          {"v6 egress /128", ipv6_tcp("2001:db8::1", "2001:db8:64::5"), kTcDrop},
          {"v6 ingress-only /64 around it", ipv6_tcp("2001:db8::1", "2001:db8:64::6"), kTcPass},
          {"v6 egress /64 inside an ingress /56", ipv6_tcp("2001:db8::1", "2001:db8:65::9"),
           kTcDrop},
          {"v6 ingress-only /56 outside the /64", ipv6_tcp("2001:db8::1", "2001:db8:65:1::9"),
           kTcPass},
      });
  auto counters = read_hook_counters(loader_->counters_fd());
  ASSERT_TRUE(counters);
  EXPECT_EQ((*counters)[MESHD_HOOK_XDP_INGRESS].blocked, 6u);
  EXPECT_EQ((*counters)[MESHD_HOOK_TC_EGRESS].blocked, 5u);
}

TEST_F(PacketPrograms, RemovedRuleStopsDropping) {
  if (!loader_) return;
  const Bytes pkt = ipv4_tcp("10.1.2.3", "192.168.0.1");
  ASSERT_EQ(run(loader_->xdp_prog_fd(), pkt), XDP_DROP);
  std::vector<Prefix> gone = {P("10.1.0.0/16")};
  auto removed = enforcer_->remove(gone);
  ASSERT_TRUE(removed);
  EXPECT_EQ(*removed, 1u);
  EXPECT_EQ(run(loader_->xdp_prog_fd(), pkt), XDP_PASS);
}

}  // namespace
}  // namespace meshd::sensor

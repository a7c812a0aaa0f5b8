// BpfEnforcer against real (unpinned) block maps: refusal of protected and invalid rules,
// expiry conversion both ways, replacement, removal, pruning and stats.
#include "sensor/bpf_enforcer.hpp"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <optional>

#include <gtest/gtest.h>

#include "sensor/bpf_loader.hpp"
#include "tests/bpf/programs/packets.hpp"
#include "tests/support/netns/netns.hpp"

namespace meshd::sensor {
namespace {

constexpr TimeMs kNow = 1'700'000'000'000;

Prefix P(const char* text) {
  return *Prefix::parse(text);
}

// XDP verdict for a TCP SYN from `src`.
std::uint32_t xdp_verdict(const BpfLoader& loader, const char* src) {
  auto pkt = test::ipv4_tcp(src, "10.0.0.1");
  bpf_test_run_opts opts{};
  opts.sz = sizeof opts;
  opts.data_in = pkt.data();
  opts.data_size_in = static_cast<std::uint32_t>(pkt.size());
  EXPECT_EQ(bpf_prog_test_run_opts(loader.xdp_prog_fd(), &opts), 0);
  return opts.retval;
}

class BpfEnforcerTest : public ::testing::Test {
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
    e_.emplace(std::move(*enforcer));
  }

  std::vector<BlockRule> listed() {
    auto l = e_->list(kNow);
    EXPECT_TRUE(l) << l.error().message;
    return l ? *l : std::vector<BlockRule>{};
  }

  std::optional<BpfLoader> loader_;
  std::optional<BpfEnforcer> e_;
};

TEST_F(BpfEnforcerTest, RefusesProtectedOverlapsInBothDirectionsOfContainment) {
  if (!e_) return;
  e_->set_protected({P("10.0.0.0/8"), P("192.168.1.1/32"), P("fd00::/8")});
  std::vector<BlockRule> rules = {
      {P("10.1.0.0/16"), Direction::both, 1, kNow + 60'000},     // inside protected
      {P("192.168.0.0/16"), Direction::both, 2, kNow + 60'000},  // contains protected
      {P("fd12::/16"), Direction::egress, 3, kNow + 60'000},     // inside protected v6
      {P("203.0.113.0/24"), Direction::both, 4, kNow + 60'000},  // fine
  };
  auto r = e_->apply(rules, kNow);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->applied, 1u);
  ASSERT_EQ(r->refused.size(), 3u);
  for (const auto& [rule, err] : r->refused) {
    EXPECT_EQ(err.code, "protected");
    EXPECT_NE(err.message.find(rule.prefix.to_string()), std::string::npos) << err.message;
  }
  auto l = listed();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].prefix, P("203.0.113.0/24"));
  EXPECT_EQ(e_->detailed_stats().rules_refused, 3u);
}

TEST_F(BpfEnforcerTest, RefusesInvalidDirectionAndV4MappedAndSkipsExpired) {
  if (!e_) return;
  std::vector<BlockRule> rules = {
      {P("203.0.113.0/24"), static_cast<Direction>(0), 1, kNow + 60'000},
      {P("203.0.113.0/24"), static_cast<Direction>(7), 2, kNow + 60'000},
      {P("::ffff:203.0.113.0/120"), Direction::both, 3, kNow + 60'000},
      {P("198.51.100.0/24"), Direction::both, 4, kNow},      // expires now: skipped
      {P("198.51.100.0/25"), Direction::both, 5, kNow - 1},  // already expired: skipped
  };
  auto r = e_->apply(rules, kNow);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->applied, 0u);
  ASSERT_EQ(r->refused.size(), 3u);
  EXPECT_EQ(r->refused[0].second.code, "bad_direction");
  EXPECT_EQ(r->refused[1].second.code, "bad_direction");
  EXPECT_EQ(r->refused[2].second.code, "v4_mapped");
  EXPECT_TRUE(listed().empty());
  EXPECT_EQ(e_->detailed_stats().rules_skipped_expired, 2u);
}

TEST_F(BpfEnforcerTest, ListRoundTripsRulesWithExpiryToTheMillisecond) {
  if (!e_) return;
  std::vector<BlockRule> rules = {
      {P("203.0.113.0/24"), Direction::egress, 11, kNow + 90'000},
      {P("198.51.100.7/32"), Direction::ingress, 12, kNow + 3'600'000},
      {P("2001:db8:1::/48"), Direction::both, 13, kNow + 5'000},
  };
  ASSERT_TRUE(e_->apply(rules, kNow));
  auto l = listed();
  ASSERT_EQ(l.size(), 3u);
  for (const BlockRule& want : rules) {
    auto it = std::find_if(l.begin(), l.end(),
                           [&](const BlockRule& r) { return r.prefix == want.prefix; });
    ASSERT_NE(it, l.end()) << want.prefix.to_string();
    EXPECT_EQ(it->direction, want.direction);
    EXPECT_EQ(it->rule_id, want.rule_id);
    // Time passes between apply and list: the rebuilt expiry may be slightly earlier,
    // never later than asked (rounded up to the next ms).
    EXPECT_LE(it->expires_at, want.expires_at);
    EXPECT_GE(it->expires_at, want.expires_at - 1000);
  }
  EXPECT_EQ(e_->stats().active_rules, 3u);
}

TEST_F(BpfEnforcerTest, ReapplyReplacesEntryAndLastDuplicateWins) {
  if (!e_) return;
  std::vector<BlockRule> first = {{P("203.0.113.0/24"), Direction::egress, 1, kNow + 60'000}};
  ASSERT_TRUE(e_->apply(first, kNow));
  std::vector<BlockRule> second = {
      {P("203.0.113.0/24"), Direction::ingress, 2, kNow + 60'000},
      {P("203.0.113.0/24"), Direction::both, 3, kNow + 120'000},
  };
  auto r = e_->apply(second, kNow);
  ASSERT_TRUE(r) << r.error().message;
  auto l = listed();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].rule_id, 3u);
  EXPECT_EQ(l[0].direction, Direction::both);
  EXPECT_EQ(e_->stats().active_rules, 1u);
}

TEST_F(BpfEnforcerTest, RemoveDeletesOnlyNamedPrefixesAndIgnoresAbsentOnes) {
  if (!e_) return;
  std::vector<BlockRule> rules = {
      {P("203.0.113.0/24"), Direction::both, 1, kNow + 60'000},
      {P("203.0.113.0/25"), Direction::both, 2, kNow + 60'000},
      {P("2001:db8::/32"), Direction::both, 3, kNow + 60'000},
  };
  ASSERT_TRUE(e_->apply(rules, kNow));
  std::vector<Prefix> gone = {P("203.0.113.0/24"), P("2001:db8::/32"), P("1.2.3.4/32")};
  auto removed = e_->remove(gone);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, 2u);
  auto l = listed();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].prefix, P("203.0.113.0/25"));
  EXPECT_EQ(e_->stats().active_rules, 1u);
}

TEST_F(BpfEnforcerTest, ExpiredEntriesAreNotListedAndArePruned) {
  if (!e_) return;
  std::vector<BlockRule> rules = {{P("203.0.113.0/24"), Direction::both, 1, kNow + 60'000}};
  ASSERT_TRUE(e_->apply(rules, kNow));
  meshd_v4_key k = to_v4_key(P("198.51.100.0/24"));
  meshd_block_value v{1, 7, MESHD_DIR_MASK, 24};  // expired long ago
  ASSERT_EQ(bpf_map_update_elem(loader_->block_v4_fd(), &k, &v, BPF_ANY), 0);

  EXPECT_EQ(listed().size(), 1u);
  auto pruned = e_->prune_expired();
  ASSERT_TRUE(pruned) << pruned.error().message;
  EXPECT_EQ(*pruned, 1u);
  meshd_block_value out{};
  EXPECT_NE(bpf_map_lookup_elem(loader_->block_v4_fd(), &k, &out), 0);
  EXPECT_EQ(listed().size(), 1u);
}

TEST_F(BpfEnforcerTest, LargeBatchIsCountedExactly) {
  if (!e_) return;
  std::vector<BlockRule> rules;
  for (std::uint32_t i = 0; i < 5000; ++i) {
    rules.push_back({Prefix::v4(0x0B000000u + (i << 8), 24), Direction::both, i, kNow + 60'000});
  }
  // Re-applying half of them must not double count.
  std::vector<BlockRule> half(rules.begin(), rules.begin() + 2500);
  ASSERT_TRUE(e_->apply(half, kNow));
  auto r = e_->apply(rules, kNow);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->applied, 5000u);
  EXPECT_EQ(e_->stats().active_rules, 5000u);
  EXPECT_EQ(listed().size(), 5000u);
  // A fresh enforcer on the same maps counts what is there (reconciliation after restart).
  auto again = BpfEnforcer::from_loader(*loader_);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->stats().active_rules, 5000u);
}

TEST_F(BpfEnforcerTest, PreFilterFollowsRemovalsWithoutLosingCoveredEntries) {
  if (!e_) return;
  std::vector<BlockRule> rules = {
      {P("203.0.113.0/24"), Direction::both, 1, kNow + 60'000},
      {P("203.0.113.128/25"), Direction::both, 2, kNow + 60'000},
      {P("198.18.0.0/15"), Direction::both, 3, kNow + 60'000},
  };
  // Nothing set yet: only the chunks of the armed words are mapped (one per filter).
  EXPECT_EQ(e_->detailed_stats().v4_filter_mapped_bytes, 2 * V4Filter::kChunkBytes);
  ASSERT_TRUE(e_->apply(rules, kNow));
  EXPECT_EQ(e_->detailed_stats().v4_filter_slash24s, 1u + 512u);
  // 203.0.113.0/24 and 198.18.0.0/15 lie in two different chunks; the /25 and the /15 are
  // trie entries, so the trie filter maps the same two.
  EXPECT_EQ(e_->detailed_stats().v4_filter_mapped_bytes, 6 * V4Filter::kChunkBytes);
  EXPECT_EQ(xdp_verdict(*loader_, "203.0.113.1"), XDP_DROP);
  EXPECT_EQ(xdp_verdict(*loader_, "198.19.255.1"), XDP_DROP);

  // The /25 shares its /24 with the removed /24: its bit must stay.
  std::vector<Prefix> gone = {P("203.0.113.0/24")};
  ASSERT_TRUE(e_->remove(gone));
  EXPECT_EQ(xdp_verdict(*loader_, "203.0.113.1"), XDP_PASS);
  EXPECT_EQ(xdp_verdict(*loader_, "203.0.113.200"), XDP_DROP);

  std::vector<Prefix> rest = {P("203.0.113.128/25"), P("198.18.0.0/15")};
  ASSERT_TRUE(e_->remove(rest));
  EXPECT_EQ(xdp_verdict(*loader_, "203.0.113.200"), XDP_PASS);
  EXPECT_EQ(e_->detailed_stats().v4_filter_slash24s, 0u);
  EXPECT_TRUE(e_->detailed_stats().v4_filter_armed);
  // Chunks with no bit left are unmapped again.
  EXPECT_EQ(e_->detailed_stats().v4_filter_mapped_bytes, 2 * V4Filter::kChunkBytes);
  EXPECT_EQ(e_->detailed_stats().v4_filter_map_failures, 0u);
}

TEST_F(BpfEnforcerTest, EntriesFoundOnOpenAreCoveredByThePreFilter) {
  if (!e_) return;
  // Written behind the enforcer's back (e.g. a predecessor crashed mid-batch).
  meshd_v4_key k = to_v4_key(P("192.0.2.0/24"));
  meshd_block_value v{~std::uint64_t{0}, 5, MESHD_DIR_MASK, 24};
  ASSERT_EQ(bpf_map_update_elem(loader_->block_v4_fd(), &k, &v, BPF_ANY), 0);
  auto reopened = BpfEnforcer::from_loader(*loader_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(xdp_verdict(*loader_, "192.0.2.9"), XDP_DROP);
  EXPECT_EQ(reopened->stats().active_rules, 1u);
}

TEST_F(BpfEnforcerTest, ExactLengthsGoToTheExactMapsOthersToTheTries) {
  if (!e_) return;
  std::vector<BlockRule> rules = {
      {P("192.0.2.1/32"), Direction::both, 1, kNow + 60'000},
      {P("192.0.2.0/24"), Direction::both, 2, kNow + 60'000},
      {P("192.0.2.0/25"), Direction::both, 3, kNow + 60'000},
      {P("2001:db8::1/128"), Direction::both, 4, kNow + 60'000},
      {P("2001:db8::/64"), Direction::both, 5, kNow + 60'000},
      {P("2001:db8::/48"), Direction::both, 6, kNow + 60'000},
  };
  ASSERT_TRUE(e_->apply(rules, kNow));
  meshd_block_value v{};
  for (const char* p : {"192.0.2.1/32", "192.0.2.0/24"}) {
    auto k = to_v4_key(P(p));
    EXPECT_EQ(bpf_map_lookup_elem(loader_->exact_v4_fd(), &k, &v), 0) << p;
    // A trie lookup returns the longest covering entry: it must be a shorter one.
    v = {};
    bpf_map_lookup_elem(loader_->block_v4_fd(), &k, &v);
    EXPECT_NE(v.prefixlen, k.prefixlen) << p;
  }
  auto k25 = to_v4_key(P("192.0.2.0/25"));
  EXPECT_EQ(bpf_map_lookup_elem(loader_->block_v4_fd(), &k25, &v), 0);
  for (const char* p : {"2001:db8::1/128", "2001:db8::/64"}) {
    auto k = to_v6_key(P(p));
    EXPECT_EQ(bpf_map_lookup_elem(loader_->exact_v6_fd(), &k, &v), 0) << p;
  }
  auto k48 = to_v6_key(P("2001:db8::/48"));
  EXPECT_EQ(bpf_map_lookup_elem(loader_->block_v6_fd(), &k48, &v), 0);
  EXPECT_EQ(listed().size(), rules.size());
  // Only the /25 sends lookups to the IPv4 trie.
  EXPECT_EQ(e_->detailed_stats().v4_trie_filter_slash24s, 1u);

  std::vector<Prefix> all;
  for (const auto& r : rules) all.push_back(r.prefix);
  auto removed = e_->remove(all);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, rules.size());
  EXPECT_TRUE(listed().empty());
  EXPECT_EQ(e_->detailed_stats().v4_filter_slash24s, 0u);
}

TEST_F(BpfEnforcerTest, ExactLengthEntryLeftInATrieIsRetimedAndRemovedInPlace) {
  if (!e_) return;
  // An older version kept /24s in the trie.
  meshd_v4_key k = to_v4_key(P("198.51.100.0/24"));
  meshd_block_value v{~std::uint64_t{0}, 5, MESHD_DIR_MASK, 24};
  ASSERT_EQ(bpf_map_update_elem(loader_->block_v4_fd(), &k, &v, BPF_ANY), 0);
  auto reopened = BpfEnforcer::from_loader(*loader_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(xdp_verdict(*loader_, "198.51.100.9"), XDP_DROP);

  std::vector<BlockRule> rules = {{P("198.51.100.0/24"), Direction::both, 6, kNow + 60'000}};
  ASSERT_TRUE(reopened->apply(rules, kNow));
  meshd_block_value out{};
  EXPECT_EQ(bpf_map_lookup_elem(loader_->block_v4_fd(), &k, &out), 0);
  EXPECT_EQ(out.rule_id, 6u);  // re-timed where it was, no second copy in the exact map
  EXPECT_NE(bpf_map_lookup_elem(loader_->exact_v4_fd(), &k, &out), 0);

  std::vector<Prefix> gone = {P("198.51.100.0/24")};
  auto removed = reopened->remove(gone);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, 1u);
  EXPECT_EQ(xdp_verdict(*loader_, "198.51.100.9"), XDP_PASS);
}

}  // namespace
}  // namespace meshd::sensor

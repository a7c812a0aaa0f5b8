#include "sensor/bpf_enforcer.hpp"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "meshd/common/errno_text.hpp"
#include "sensor/bpf_loader.hpp"

namespace meshd::sensor {
namespace {

constexpr std::uint64_t kNsPerMs = 1'000'000;
constexpr int kEnotsupp = 524;  // kernel-internal ENOTSUPP, seen by user space as 524

// ::ffff:0:0/96 — IPv4-mapped IPv6. The hooks match such destinations against the IPv4
// trie, so a rule must be written in its IPv4 form to take effect.
const Prefix& v4_mapped() {
  static const Prefix p = [] {
    Prefix m;
    m.family = Family::v6;
    m.len = 96;
    m.addr[10] = 0xff;
    m.addr[11] = 0xff;
    return m;
  }();
  return p;
}

std::uint64_t to_boot_expiry(std::uint64_t boot_now, TimeMs remaining_ms) {
  auto remaining = static_cast<std::uint64_t>(remaining_ms);
  if (remaining > (std::numeric_limits<std::uint64_t>::max() - boot_now) / kNsPerMs) {
    return std::numeric_limits<std::uint64_t>::max();
  }
  return boot_now + remaining * kNsPerMs;
}

bool batch_unsupported(int err) {
  return err == EINVAL || err == EOPNOTSUPP || err == kEnotsupp;
}

// Reads all entries of one trie into keys/values: BPF_MAP_LOOKUP_BATCH in chunks, or
// get_next_key + lookup on kernels without batch support for LPM tries.
template <class Key>
Result<void> dump(int fd, std::vector<Key>& keys, std::vector<meshd_block_value>& values,
                  int& batch_state) {
  constexpr std::uint32_t kChunk = 4096;
  if (batch_state >= 0) {
    Key in{}, out{};
    bool first = true;
    bpf_map_batch_opts opts{};
    opts.sz = sizeof opts;
    while (true) {
      const std::size_t old = keys.size();
      keys.resize(old + kChunk);
      values.resize(old + kChunk);
      std::uint32_t count = kChunk;
      int err = bpf_map_lookup_batch(fd, first ? nullptr : &in, &out, &keys[old], &values[old],
                                     &count, &opts);
      int saved = errno;
      if (err != 0 && saved != ENOENT) {
        keys.resize(old);
        values.resize(old);
        if (batch_state == 0 && first && batch_unsupported(saved)) {
          batch_state = -1;
          break;  // fall back below
        }
        return fail("map_iterate", "reading block map: " + errno_text(saved));
      }
      keys.resize(old + count);
      values.resize(old + count);
      batch_state = 1;
      if (err != 0) return {};  // ENOENT: that was the last chunk
      in = out;
      first = false;
    }
  }
  Key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    meshd_block_value v{};
    if (bpf_map_lookup_elem(fd, &next, &v) == 0) {
      keys.push_back(next);
      values.push_back(v);
    } else if (errno != ENOENT) {
      return fail("map_lookup", "reading block map entry: " + errno_text(errno));
    }
    key = next;
    prev = &key;
  }
  if (errno != ENOENT) return fail("map_iterate", "iterating block map: " + errno_text(errno));
  return {};
}

template <class Key>
void sort_by_key(std::vector<Key>& keys, std::vector<meshd_block_value>& values) {
  std::vector<std::uint32_t> order(keys.size());
  for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    int c = std::memcmp(keys[a].addr, keys[b].addr, sizeof(keys[a].addr));
    return c < 0 || (c == 0 && keys[a].prefixlen < keys[b].prefixlen);
  });
  std::vector<Key> sorted_keys(keys.size());
  std::vector<meshd_block_value> sorted_values(values.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    sorted_keys[i] = keys[order[i]];
    sorted_values[i] = values[order[i]];
  }
  keys.swap(sorted_keys);
  values.swap(sorted_values);
}

}  // namespace

BpfEnforcer::BpfEnforcer(Maps maps, V4Filter filter, V4Filter trie_filter)
    : v4_(std::move(maps.v4)),
      v6_(std::move(maps.v6)),
      exact4_(std::move(maps.exact4)),
      exact6_(std::move(maps.exact6)),
      filter_(std::move(filter)),
      trie_filter_(std::move(trie_filter)),
      counters_(std::move(maps.counters)) {}

Result<BpfEnforcer> BpfEnforcer::make(Maps maps) {
  auto filter = V4Filter::open(std::move(maps.filter));
  if (!filter) return std::unexpected(filter.error());
  auto trie_filter = V4Filter::open(std::move(maps.trie_filter));
  if (!trie_filter) return std::unexpected(trie_filter.error());
  BpfEnforcer e(std::move(maps), std::move(*filter), std::move(*trie_filter));
  // Reconciliation starts from what the kernel has: mirror the installed prefixes, and
  // make the pre-filters match them (they may be new next to reused maps, or stale).
  auto r = e.for_each([&](const Prefix& p, const meshd_block_value&, std::uint8_t where) {
    e.installed_.add(p, where);
  });
  if (!r) return std::unexpected(r.error());
  e.rebuild_filters();
  return e;
}

Result<BpfEnforcer> BpfEnforcer::open_pinned(const std::string& pin_path) {
  Maps maps;
  for (auto [fd, name] : {std::pair{&maps.v4, MESHD_MAP_BLOCK_V4},
                          {&maps.v6, MESHD_MAP_BLOCK_V6},
                          {&maps.exact4, MESHD_MAP_EXACT_V4},
                          {&maps.exact6, MESHD_MAP_EXACT_V6},
                          {&maps.filter, MESHD_MAP_V4_FILTER},
                          {&maps.trie_filter, MESHD_MAP_V4_TRIE_FILTER},
                          {&maps.counters, MESHD_MAP_COUNTERS}}) {
    auto opened = open_pinned_map(pin_file(pin_path, name));
    if (!opened) return std::unexpected(opened.error());
    *fd = std::move(*opened);
  }
  return make(std::move(maps));
}

Result<BpfEnforcer> BpfEnforcer::from_loader(const BpfLoader& loader) {
  Maps maps;
  for (auto [fd, original] : {std::pair{&maps.v4, loader.block_v4_fd()},
                              {&maps.v6, loader.block_v6_fd()},
                              {&maps.exact4, loader.exact_v4_fd()},
                              {&maps.exact6, loader.exact_v6_fd()},
                              {&maps.filter, loader.v4_filter_fd()},
                              {&maps.trie_filter, loader.v4_trie_filter_fd()},
                              {&maps.counters, loader.counters_fd()}}) {
    auto dup = Fd::dup_of(original);
    if (!dup) return std::unexpected(dup.error());
    *fd = std::move(*dup);
  }
  return make(std::move(maps));
}

template <class Fn>
Result<void> BpfEnforcer::for_each(Fn&& fn) {
  std::vector<meshd_v4_key> k4, x4;
  std::vector<meshd_v6_key> k6, x6;
  std::vector<meshd_block_value> v4, v6, xv4, xv6;
  auto r = dump(v4_.get(), k4, v4, batch_state_);
  if (r) r = dump(v6_.get(), k6, v6, batch_state_);
  if (r) r = dump(exact4_.get(), x4, xv4, batch_state_);
  if (r) r = dump(exact6_.get(), x6, xv6, batch_state_);
  if (!r) {
    ++stats_.map_errors;
    return r;
  }
  for (std::size_t i = 0; i < k4.size(); ++i) fn(from_key(k4[i]), v4[i], kInTrie);
  for (std::size_t i = 0; i < k6.size(); ++i) fn(from_key(k6[i]), v6[i], kInTrie);
  for (std::size_t i = 0; i < x4.size(); ++i) fn(from_key(x4[i]), xv4[i], kInExact);
  for (std::size_t i = 0; i < x6.size(); ++i) fn(from_key(x6[i]), xv6[i], kInExact);
  return {};
}

void BpfEnforcer::rebuild_filters() {
  // The trie's IPv4 prefixes are few next to the exact maps' (every /32 and /24): collect
  // them once instead of walking installed_ a second time.
  std::vector<Prefix> in_trie;
  filter_.rebuild([&](auto&& visit) {
    installed_.for_each([&](const Prefix& p, std::uint8_t where) {
      if (p.family != Family::v4) return;
      visit(p);
      if (where & kInTrie) in_trie.push_back(p);
    });
  });
  trie_filter_.rebuild([&](auto&& visit) {
    for (const Prefix& p : in_trie) visit(p);
  });
}

void BpfEnforcer::set_protected(std::vector<Prefix> protected_prefixes) {
  protected_ = std::move(protected_prefixes);
}

template <class Key>
Result<void> BpfEnforcer::write(int fd, std::uint8_t where, const std::vector<Key>& keys,
                                const std::vector<meshd_block_value>& values, std::size_t& done) {
  done = 0;
  auto record = [&](std::size_t from, std::size_t to) {
    for (std::size_t j = from; j < to; ++j) installed_.add(from_key(keys[j]), where);
    stats_.rules_written += to - from;
  };
  auto map_error = [&](int err) -> Result<void> {
    ++stats_.map_errors;
    if (err == E2BIG || err == ENOMEM) {
      return fail("map_full", "block map full or out of memory after " + std::to_string(done) +
                                  " of " + std::to_string(keys.size()) +
                                  " entries: " + errno_text(err));
    }
    return fail("map_update", "writing block map entry: " + errno_text(err));
  };
  if (keys.empty()) return {};
  if (batch_state_ >= 0) {
    // Batch updates accept no NOEXIST/EXIST flags: an existing prefix is replaced, which is
    // what apply() wants (re-timing); installed_ says which ones were new.
    bpf_map_batch_opts opts{};
    opts.sz = sizeof opts;
    auto count = static_cast<std::uint32_t>(keys.size());
    int err = bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts);
    int saved = errno;
    if (err == 0) {
      batch_state_ = 1;
      done = keys.size();
      record(0, done);
      return {};
    }
    if (!(batch_state_ == 0 && batch_unsupported(saved))) {
      // The kernel reports how many entries it wrote before failing.
      done = std::min<std::size_t>(count, keys.size());
      record(0, done);
      return map_error(saved);
    }
    batch_state_ = -1;
  }
  for (; done < keys.size(); ++done) {
    if (bpf_map_update_elem(fd, &keys[done], &values[done], BPF_ANY) != 0) {
      int saved = errno;
      record(0, done);
      return map_error(saved);
    }
  }
  record(0, done);
  return {};
}

template <class Key>
Result<std::size_t> BpfEnforcer::erase(int fd, const std::vector<Key>& keys) {
  std::size_t removed = 0;
  std::size_t i = 0;
  if (keys.empty()) return removed;
  if (batch_state_ >= 0) {
    bpf_map_batch_opts opts{};
    opts.sz = sizeof opts;
    while (i < keys.size()) {
      auto count = static_cast<std::uint32_t>(keys.size() - i);
      int err = bpf_map_delete_batch(fd, &keys[i], &count, &opts);
      int saved = errno;
      if (err == 0) {
        batch_state_ = 1;
        removed += keys.size() - i;
        i = keys.size();
        break;
      }
      if (batch_state_ == 0 && batch_unsupported(saved)) {
        batch_state_ = -1;
        break;
      }
      if (saved != ENOENT) {
        ++stats_.map_errors;
        return fail("map_delete", "removing block map entries: " + errno_text(saved));
      }
      // Someone else deleted keys[i + count] meanwhile: it is gone, as asked; go on after it.
      removed += count;
      i += count + 1;
    }
  }
  for (; i < keys.size(); ++i) {
    if (bpf_map_delete_elem(fd, &keys[i]) == 0) {
      ++removed;
    } else if (errno != ENOENT) {
      ++stats_.map_errors;
      return fail("map_delete", "removing block map entry: " + errno_text(errno));
    }
  }
  return removed;
}

namespace {

bool exact_length(const Prefix& p) {
  return p.family == Family::v4 ? (p.len == MESHD_V4_HOST_LEN || p.len == MESHD_V4_NET_LEN)
                                : (p.len == MESHD_V6_HOST_LEN || p.len == MESHD_V6_NET_LEN);
}

// Keys and values bound for one map.
template <class Key>
struct Batch {
  std::vector<Key> keys;
  std::vector<meshd_block_value> values;
  void push(const Key& k, const meshd_block_value& v) {
    keys.push_back(k);
    values.push_back(v);
  }
};

}  // namespace

Result<ApplyReport> BpfEnforcer::apply(std::span<const BlockRule> rules, TimeMs now) {
  ApplyReport report;
  const auto boot_now = static_cast<std::uint64_t>(boot_time_ns());
  Batch<meshd_v4_key> trie4, exact4;
  Batch<meshd_v6_key> trie6, exact6;
  std::size_t accepted = 0;

  for (const BlockRule& rule : rules) {
    // Only refusals need the text (formatting every prefix cost ~5% of a 100k install).
    auto what = [&] { return rule.prefix.to_string(); };
    auto dir = static_cast<std::uint8_t>(rule.direction);
    if (dir == 0 || (dir & ~MESHD_DIR_MASK) != 0) {
      report.refused.push_back(
          {rule, Error{"bad_direction", "rule for " + what() + " has no valid direction (" +
                                            std::to_string(dir) + ")"}});
      continue;
    }
    if (rule.prefix.family == Family::v6 && v4_mapped().contains(rule.prefix)) {
      report.refused.push_back(
          {rule, Error{"v4_mapped",
                       "rule for " + what() + " is an IPv4-mapped IPv6 prefix; write it as IPv4"}});
      continue;
    }
    bool is_protected = false;
    for (const Prefix& p : protected_) {
      if (p.overlaps(rule.prefix)) {
        report.refused.push_back(
            {rule, Error{"protected",
                         "rule for " + what() + " overlaps protected prefix " + p.to_string()}});
        is_protected = true;
        break;
      }
    }
    if (is_protected) continue;
    if (rule.expires_at <= now) {
      ++stats_.rules_skipped_expired;
      continue;
    }
    meshd_block_value value{};
    value.expiry_boot_ns = to_boot_expiry(boot_now, rule.expires_at - now);
    value.rule_id = rule.rule_id;
    value.direction = dir;
    value.prefixlen = rule.prefix.len;
    ++accepted;
    // In place when present (re-timing), else by length.
    const std::uint8_t found = installed_.find(rule.prefix);
    const std::uint8_t where = found != 0 ? found : exact_length(rule.prefix) ? kInExact : kInTrie;
    if (rule.prefix.family == Family::v4) {
      const meshd_v4_key k = to_v4_key(rule.prefix);
      if (where & kInExact) exact4.push(k, value);
      if (where & kInTrie) trie4.push(k, value);
    } else {
      const meshd_v6_key k = to_v6_key(rule.prefix);
      if (where & kInExact) exact6.push(k, value);
      if (where & kInTrie) trie6.push(k, value);
    }
  }
  stats_.rules_refused += report.refused.size();

  // Inserting in address order keeps the trie path just walked in cache: ~25% faster
  // than random order for 100k entries. Stable, so the last duplicate still wins.
  sort_by_key(trie4.keys, trie4.values);
  sort_by_key(trie6.keys, trie6.values);
  // Bits first: the programs must never see an IPv4 entry whose /24 is not marked.
  for (const meshd_v4_key& k : exact4.keys) filter_.set_bits(from_key(k));
  for (const meshd_v4_key& k : trie4.keys) {
    filter_.set_bits(from_key(k));
    trie_filter_.set_bits(from_key(k));
  }
  // An exact map that is full sends the rest of its rules to the trie.
  auto write_exact = [&]<class Key>(int fd, Batch<Key>& exact, Batch<Key>& trie) -> Result<void> {
    std::size_t done = 0;
    auto r = write(fd, kInExact, exact.keys, exact.values, done);
    if (r || r.error().code != "map_full") return r;
    --stats_.map_errors;
    stats_.exact_map_full += exact.keys.size() - done;
    for (std::size_t i = done; i < exact.keys.size(); ++i) {
      if constexpr (std::is_same_v<Key, meshd_v4_key>)
        trie_filter_.set_bits(from_key(exact.keys[i]));
      trie.push(exact.keys[i], exact.values[i]);
    }
    return {};
  };
  if (auto r = write_exact(exact4_.get(), exact4, trie4); !r) return std::unexpected(r.error());
  if (auto r = write_exact(exact6_.get(), exact6, trie6); !r) return std::unexpected(r.error());
  std::size_t done = 0;
  if (auto r = write(v4_.get(), kInTrie, trie4.keys, trie4.values, done); !r)
    return std::unexpected(r.error());
  if (auto r = write(v6_.get(), kInTrie, trie6.keys, trie6.values, done); !r)
    return std::unexpected(r.error());
  report.applied = accepted;
  return report;
}

Result<std::size_t> BpfEnforcer::remove(std::span<const Prefix> prefixes) {
  // Every named prefix goes to the kernel, also ones not in installed_ (written to the
  // maps after we read them, e.g. raw entries or a crashed predecessor's last batch): they
  // are deleted from every map they could be in; absent keys cost one extra syscall each
  // and are not counted.
  std::vector<meshd_v4_key> trie4, exact4;
  std::vector<meshd_v6_key> trie6, exact6;
  bool v4_touched = false;
  for (const Prefix& p : prefixes) {
    std::uint8_t where = exact_length(p) ? (kInExact | kInTrie) : kInTrie;
    if (const std::uint8_t found = installed_.erase(p); found != 0) where = found;
    if (p.family == Family::v4) {
      v4_touched = true;
      if (where & kInExact) exact4.push_back(to_v4_key(p));
      if (where & kInTrie) trie4.push_back(to_v4_key(p));
    } else {
      if (where & kInExact) exact6.push_back(to_v6_key(p));
      if (where & kInTrie) trie6.push_back(to_v6_key(p));
    }
  }
  std::size_t removed = 0;
  Result<void> failed;
  auto count = [&](Result<std::size_t> n) {
    if (!n && failed) failed = std::unexpected(n.error());
    if (n) removed += *n;
  };
  count(erase(exact4_.get(), exact4));
  count(erase(v4_.get(), trie4));
  // Unmark /24s no remaining entry needs (also after a partial failure: removed is removed).
  if (v4_touched) rebuild_filters();
  if (!failed) return std::unexpected(failed.error());
  count(erase(exact6_.get(), exact6));
  count(erase(v6_.get(), trie6));
  if (!failed) return std::unexpected(failed.error());
  stats_.rules_removed += removed;
  return removed;
}

Result<std::vector<BlockRule>> BpfEnforcer::list(TimeMs now) {
  std::vector<BlockRule> out;
  const auto boot_now = static_cast<std::uint64_t>(boot_time_ns());
  constexpr auto kMax = std::numeric_limits<TimeMs>::max();
  auto r = for_each([&](const Prefix& prefix, const meshd_block_value& v, std::uint8_t) {
    if (v.expiry_boot_ns <= boot_now) return;
    const std::uint64_t left_ns = v.expiry_boot_ns - boot_now;
    const std::uint64_t left_ms = left_ns / kNsPerMs + (left_ns % kNsPerMs != 0 ? 1 : 0);
    BlockRule rule;
    rule.prefix = prefix;
    rule.direction = static_cast<Direction>(v.direction & MESHD_DIR_MASK);
    rule.rule_id = v.rule_id;
    rule.expires_at = left_ms >= static_cast<std::uint64_t>(kMax - now)
                          ? kMax
                          : now + static_cast<TimeMs>(left_ms);
    out.push_back(rule);
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::size_t> BpfEnforcer::prune_expired() {
  const auto boot_now = static_cast<std::uint64_t>(boot_time_ns());
  std::vector<Prefix> expired;
  auto r = for_each([&](const Prefix& prefix, const meshd_block_value& v, std::uint8_t) {
    if (v.expiry_boot_ns <= boot_now) expired.push_back(prefix);
  });
  if (!r) return std::unexpected(r.error());
  const std::uint64_t removed_before = stats_.rules_removed;
  auto n = remove(expired);
  if (!n) return n;
  stats_.rules_removed = removed_before;  // pruning is not a removal asked for by the daemon
  stats_.rules_pruned += *n;
  return *n;
}

BpfEnforcerStats BpfEnforcer::detailed_stats() const {
  BpfEnforcerStats s = stats_;
  s.batch_updates = batch_state_ == 1;
  s.v4_filter_armed = filter_.armed();
  s.v4_filter_slash24s = filter_.marked_slash24s();
  s.v4_trie_filter_slash24s = trie_filter_.marked_slash24s();
  s.v4_filter_mapped_bytes =
      (filter_.mapped_chunks() + trie_filter_.mapped_chunks()) * V4Filter::kChunkBytes;
  s.v4_filter_map_failures = filter_.map_failures() + trie_filter_.map_failures();
  if (auto hooks = read_hook_counters(counters_.get())) s.hooks = *hooks;
  return s;
}

EnforcerStats BpfEnforcer::stats() const {
  EnforcerStats s;
  s.active_rules = installed_.size();
  if (auto hooks = read_hook_counters(counters_.get())) {
    const HookCounters& h = *hooks;
    s.packets_dropped = h[MESHD_HOOK_XDP_INGRESS].blocked + h[MESHD_HOOK_TC_EGRESS].blocked;
    s.connects_denied = h[MESHD_HOOK_CONNECT4].blocked + h[MESHD_HOOK_CONNECT6].blocked +
                        h[MESHD_HOOK_SENDMSG4].blocked + h[MESHD_HOOK_SENDMSG6].blocked;
  }
  return s;
}

}  // namespace meshd::sensor

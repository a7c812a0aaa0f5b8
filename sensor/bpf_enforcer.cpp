#include "sensor/bpf_enforcer.hpp"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "sensor/bpf_loader.hpp"

namespace meshd::sensor {
namespace {

constexpr std::uint64_t kNsPerMs = 1'000'000;
constexpr int kEnotsupp = 524;  // kernel-internal ENOTSUPP, seen by user space as 524

std::string errno_text(int err) {
  return std::strerror(err);
}

// ::ffff:0:0/96 — IPv4-mapped IPv6. The hooks match such destinations against the IPv4
// trie, so a rule must be written in its IPv4 form to take effect.
const trust::Prefix& v4_mapped() {
  static const trust::Prefix p = [] {
    trust::Prefix m;
    m.family = trust::Family::v6;
    m.len = 96;
    m.addr[10] = 0xff;
    m.addr[11] = 0xff;
    return m;
  }();
  return p;
}

std::uint64_t to_boot_expiry(std::uint64_t boot_now, trust::TimeMs remaining_ms) {
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

BpfEnforcer::BpfEnforcer(Fd v4, Fd v6, V4Filter filter, Fd counters)
    : v4_(std::move(v4)),
      v6_(std::move(v6)),
      filter_(std::move(filter)),
      counters_(std::move(counters)) {}

Result<BpfEnforcer> BpfEnforcer::make(Fd v4, Fd v6, Fd filter, Fd counters) {
  auto mapped = V4Filter::open(std::move(filter));
  if (!mapped) return std::unexpected(mapped.error());
  BpfEnforcer e(std::move(v4), std::move(v6), std::move(*mapped), std::move(counters));
  // Reconciliation starts from what the kernel has: mirror the installed prefixes, and
  // make the pre-filter match them (it may be new next to reused tries, or stale).
  auto r =
      e.for_each([&](const trust::Prefix& p, const meshd_block_value&) { e.installed_.insert(p); });
  if (!r) return std::unexpected(r.error());
  e.filter_.rebuild(e.installed_);
  return e;
}

Result<BpfEnforcer> BpfEnforcer::open_pinned(const std::string& pin_path) {
  auto v4 = open_pinned_map(pin_file(pin_path, MESHD_MAP_BLOCK_V4));
  if (!v4) return std::unexpected(v4.error());
  auto v6 = open_pinned_map(pin_file(pin_path, MESHD_MAP_BLOCK_V6));
  if (!v6) return std::unexpected(v6.error());
  auto filter = open_pinned_map(pin_file(pin_path, MESHD_MAP_V4_FILTER));
  if (!filter) return std::unexpected(filter.error());
  auto counters = open_pinned_map(pin_file(pin_path, MESHD_MAP_COUNTERS));
  if (!counters) return std::unexpected(counters.error());
  return make(std::move(*v4), std::move(*v6), std::move(*filter), std::move(*counters));
}

Result<BpfEnforcer> BpfEnforcer::from_loader(const BpfLoader& loader) {
  auto v4 = Fd::dup_of(loader.block_v4_fd());
  if (!v4) return std::unexpected(v4.error());
  auto v6 = Fd::dup_of(loader.block_v6_fd());
  if (!v6) return std::unexpected(v6.error());
  auto filter = Fd::dup_of(loader.v4_filter_fd());
  if (!filter) return std::unexpected(filter.error());
  auto counters = Fd::dup_of(loader.counters_fd());
  if (!counters) return std::unexpected(counters.error());
  return make(std::move(*v4), std::move(*v6), std::move(*filter), std::move(*counters));
}

template <class Fn>
Result<void> BpfEnforcer::for_each(Fn&& fn) {
  std::vector<meshd_v4_key> k4;
  std::vector<meshd_v6_key> k6;
  std::vector<meshd_block_value> v4, v6;
  auto r = dump(v4_.get(), k4, v4, batch_state_);
  if (r) r = dump(v6_.get(), k6, v6, batch_state_);
  if (!r) {
    ++stats_.map_errors;
    return r;
  }
  for (std::size_t i = 0; i < k4.size(); ++i) fn(from_key(k4[i]), v4[i]);
  for (std::size_t i = 0; i < k6.size(); ++i) fn(from_key(k6[i]), v6[i]);
  return {};
}

void BpfEnforcer::set_protected(std::vector<trust::Prefix> protected_prefixes) {
  protected_ = std::move(protected_prefixes);
}

template <class Key>
Result<void> BpfEnforcer::write(int fd, const std::vector<Key>& keys,
                                const std::vector<meshd_block_value>& values) {
  std::size_t done = 0;
  auto record = [&](std::size_t from, std::size_t to) {
    for (std::size_t j = from; j < to; ++j) installed_.insert(from_key(keys[j]));
    stats_.rules_written += to - from;
  };
  auto map_error = [&](int err) -> Result<void> {
    ++stats_.map_errors;
    if (err == E2BIG || err == ENOMEM) {
      return fail("map_full", "block map full (" + std::to_string(MESHD_BLOCK_MAX_ENTRIES) +
                                  " entries) or out of memory after " + std::to_string(done) +
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
      record(0, keys.size());
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

Result<ApplyReport> BpfEnforcer::apply(std::span<const BlockRule> rules, trust::TimeMs now) {
  ApplyReport report;
  const auto boot_now = static_cast<std::uint64_t>(boot_time_ns());
  std::vector<meshd_v4_key> keys4;
  std::vector<meshd_v6_key> keys6;
  std::vector<meshd_block_value> values4, values6;

  for (const BlockRule& rule : rules) {
    const std::string what = rule.prefix.to_string();
    auto dir = static_cast<std::uint8_t>(rule.direction);
    if (dir == 0 || (dir & ~MESHD_DIR_MASK) != 0) {
      report.refused.push_back(
          {rule, Error{"bad_direction", "rule for " + what + " has no valid direction (" +
                                            std::to_string(dir) + ")"}});
      continue;
    }
    if (rule.prefix.family == trust::Family::v6 && v4_mapped().contains(rule.prefix)) {
      report.refused.push_back(
          {rule, Error{"v4_mapped",
                       "rule for " + what + " is an IPv4-mapped IPv6 prefix; write it as IPv4"}});
      continue;
    }
    bool is_protected = false;
    for (const trust::Prefix& p : protected_) {
      if (p.overlaps(rule.prefix)) {
        report.refused.push_back(
            {rule, Error{"protected",
                         "rule for " + what + " overlaps protected prefix " + p.to_string()}});
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
    if (rule.prefix.family == trust::Family::v4) {
      keys4.push_back(to_v4_key(rule.prefix));
      values4.push_back(value);
    } else {
      keys6.push_back(to_v6_key(rule.prefix));
      values6.push_back(value);
    }
  }
  stats_.rules_refused += report.refused.size();

  // Inserting in address order keeps the trie path just walked in cache: ~25% faster
  // than random order for 100k entries. Stable, so the last duplicate still wins.
  sort_by_key(keys4, values4);
  sort_by_key(keys6, values6);
  // Bits first: the programs must never see an IPv4 entry whose /24 is not marked.
  for (const meshd_v4_key& k : keys4) filter_.set_bits(from_key(k));
  if (auto r = write(v4_.get(), keys4, values4); !r) return std::unexpected(r.error());
  if (auto r = write(v6_.get(), keys6, values6); !r) return std::unexpected(r.error());
  report.applied = keys4.size() + keys6.size();
  return report;
}

Result<std::size_t> BpfEnforcer::remove(std::span<const trust::Prefix> prefixes) {
  // Every named prefix goes to the kernel, also ones not in installed_ (written to the
  // maps after we read them, e.g. raw entries or a crashed predecessor's last batch):
  // absent keys cost one extra syscall each and are not counted.
  std::vector<meshd_v4_key> keys4;
  std::vector<meshd_v6_key> keys6;
  for (const trust::Prefix& p : prefixes) {
    installed_.erase(p);
    if (p.family == trust::Family::v4)
      keys4.push_back(to_v4_key(p));
    else
      keys6.push_back(to_v6_key(p));
  }
  auto n4 = erase(v4_.get(), keys4);
  // Unmark /24s no remaining entry needs (also after a partial failure: removed is removed).
  if (!keys4.empty()) filter_.rebuild(installed_);
  if (!n4) return n4;
  auto n6 = erase(v6_.get(), keys6);
  if (!n6) return n6;
  stats_.rules_removed += *n4 + *n6;
  return *n4 + *n6;
}

Result<std::vector<BlockRule>> BpfEnforcer::list(trust::TimeMs now) {
  std::vector<BlockRule> out;
  const auto boot_now = static_cast<std::uint64_t>(boot_time_ns());
  constexpr auto kMax = std::numeric_limits<trust::TimeMs>::max();
  auto r = for_each([&](const trust::Prefix& prefix, const meshd_block_value& v) {
    if (v.expiry_boot_ns <= boot_now) return;
    const std::uint64_t left_ns = v.expiry_boot_ns - boot_now;
    const std::uint64_t left_ms = left_ns / kNsPerMs + (left_ns % kNsPerMs != 0 ? 1 : 0);
    BlockRule rule;
    rule.prefix = prefix;
    rule.direction = static_cast<trust::Direction>(v.direction & MESHD_DIR_MASK);
    rule.rule_id = v.rule_id;
    rule.expires_at = left_ms >= static_cast<std::uint64_t>(kMax - now)
                          ? kMax
                          : now + static_cast<trust::TimeMs>(left_ms);
    out.push_back(rule);
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::size_t> BpfEnforcer::prune_expired() {
  const auto boot_now = static_cast<std::uint64_t>(boot_time_ns());
  std::vector<trust::Prefix> expired;
  auto r = for_each([&](const trust::Prefix& prefix, const meshd_block_value& v) {
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

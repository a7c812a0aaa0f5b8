// The one interface every enforcement backend implements: bpf (default), nftables, dryrun.
// The daemon owns the decision; an enforcer only installs, re-times and removes rules, and
// independently refuses protected prefixes (defence in depth for invariant I1).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meshd/common/direction.hpp"
#include "meshd/common/prefix.hpp"
#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"

namespace meshd::sensor {

struct BlockRule {
  Prefix prefix;
  Direction direction = Direction::both;
  // Stable id chosen by the daemon; shows up in kernel counters and in `meshctl explain`.
  std::uint64_t rule_id = 0;
  // Wall-clock expiry. Every backend converts it to an expiry the kernel itself enforces
  // (BPF: boot-time ns checked in the program; nftables: element timeout), so a dead daemon
  // leaves no permanent block (invariant I4).
  TimeMs expires_at = 0;
};

struct ApplyReport {
  std::size_t applied = 0;
  // Rules the backend would not install, each with the reason (e.g. overlaps protected).
  std::vector<std::pair<BlockRule, Error>> refused;
};

struct EnforcerStats {
  std::uint64_t active_rules = 0;
  std::uint64_t packets_dropped = 0;  // XDP/TC/nft drops, where the backend can count them
  std::uint64_t connects_denied = 0;  // cgroup connect/sendmsg EPERMs
};

class Enforcer {
 public:
  virtual ~Enforcer() = default;
  virtual std::string_view name() const = 0;

  // Replaces the backend's own protected list; rules overlapping any of them are refused.
  virtual void set_protected(std::vector<Prefix> protected_prefixes) = 0;

  // Installs or re-times rules in one batch. `now` is the caller's wall clock, used to turn
  // `expires_at` into the kernel's notion of expiry. Already-expired rules are skipped.
  virtual Result<ApplyReport> apply(std::span<const BlockRule> rules, TimeMs now) = 0;

  // Removes rules for these prefixes (all directions). Removing an absent prefix is not an
  // error. Only rules this backend created are ever touched.
  virtual Result<std::size_t> remove(std::span<const Prefix> prefixes) = 0;

  // What is installed right now (pinned maps / nft sets), for reconciliation on start.
  virtual Result<std::vector<BlockRule>> list(TimeMs now) = 0;

  virtual EnforcerStats stats() const = 0;
};

}  // namespace meshd::sensor

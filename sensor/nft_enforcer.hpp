// The nftables enforcement backend (for hosts without usable eBPF), via libnftnl + libmnl.
//
// Kernel objects, all inside ONE table of its own (`inet meshd` by default):
//   sets   egress4/6 (destinations), ingress4/6 (sources), both4/6 (either): type
//          ipv4_addr / ipv6_addr, flags interval,timeout; a rule lives in the set of its
//          exact direction, so a `both` rule costs one element, not two
//   chains input, output, forward: type filter, policy accept, priority -10 (just before the
//          usual filter chains; a drop in any base chain is final whatever the priority)
//   rules  output:  ip daddr @egress4 counter drop; ip daddr @both4 counter drop; (and ip6)
//          input:   ip saddr @ingress4 counter drop; ip saddr @both4 counter drop; (and ip6)
//          forward: all of the above
// A drop in the output hook fails a local UDP/ICMP send at once with EPERM; a TCP connect()
// to a blocked destination never completes (its SYNs are dropped) and times out.
//
// CIDRs are enforced exactly: rules become disjoint interval elements (see
// nft_enforcer_intervals.hpp for nesting and expiry), each start element with its own
// kernel timeout, so blocks expire in the kernel even if meshd is dead (invariant I4). Every
// apply()/remove() is ONE netlink batch: one atomic transaction however many prefixes.
//
// Ownership: the enforcer only ever touches its own table. The destructor leaves the table
// in place on purpose (blocks survive a daemon restart and expire on their own); create()
// on the next start adopts it and reads the rules back from the element comments.
// destroy() deletes the table. Not thread-safe.
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "sensor/enforcer.hpp"
#include "sensor/nft_enforcer_intervals.hpp"

namespace meshd::sensor {

namespace nft {
class Socket;
}

struct NftOptions {
  std::string table = "meshd";  // inet table name; several nodes on one host use different ones
  int priority = -10;
  // Element timeouts are capped: a rule expiring later is installed with this timeout and
  // the kernel lifts it earlier (the safe direction); re-applying the rule extends it.
  DurationMs max_timeout_ms = 30 * 24 * kHour;
  // Delete elements with DESTROYSETELEM when the kernel has it (Linux >= 6.3: no error for an
  // element that already expired). false forces DELSETELEM, as on older kernels, where an
  // element that expired in between makes the batch fail and the enforcer re-reads the
  // kernel and retries once.
  bool prefer_destroy = true;
};

struct NftCounters {
  std::uint64_t batches = 0;
  std::uint64_t batch_failures = 0;
  std::uint64_t elements_added = 0;  // kernel elements (a range is 1 or 2 elements)
  std::uint64_t elements_deleted = 0;
  std::uint64_t resyncs = 0;  // the kernel's sets differed from our view and were re-read
};

class NftEnforcer final : public Enforcer {
 public:
  // Opens netlink, creates the table (or adopts and reconciles the one a previous run
  // left). Errors: "nft_permission" without CAP_NET_ADMIN, "nft_foreign_table" when a table
  // of that name exists without meshd's sets (it is never touched), "nft_*" otherwise.
  static Result<std::unique_ptr<NftEnforcer>> create(
      NftOptions options, TimeMs now, std::shared_ptr<spdlog::logger> logger = nullptr);
  ~NftEnforcer() override;

  std::string_view name() const override { return "nftables"; }
  void set_protected(std::vector<Prefix> protected_prefixes) override;
  Result<ApplyReport> apply(std::span<const BlockRule> rules, TimeMs now) override;
  Result<std::size_t> remove(std::span<const Prefix> prefixes) override;
  // The live rules this backend enforces. They mirror the kernel: create() read the sets back
  // (rules named in the element comments; see nft_enforcer_intervals.hpp for dominated
  // rules) and every change since went through a confirmed transaction. Reading 100k
  // elements back from the kernel is slow (its rbtree dump restarts from the first element
  // for every message), so this does not do it; reload_from_kernel() does.
  Result<std::vector<BlockRule>> list(TimeMs now) override;
  // Re-reads all sets from the kernel and rewrites whatever differs from our rules (someone
  // edited the table by hand). Slow for very large sets, see list().
  Result<void> reload_from_kernel(TimeMs now);
  // packets_dropped is read from the rules' counters in the kernel.
  EnforcerStats stats() const override;

  // Deletes the table with everything in it. The enforcer is unusable afterwards.
  Result<void> destroy();
  // Deletes table inet `table` if it exists and is meshd's (has meshd's sets), without
  // adopting it first (`meshd --detach`). Returns whether a table was deleted. A table of that
  // name that is not meshd's is never touched ("nft_foreign_table").
  static Result<bool> remove_table(const std::string& table);

  const std::string& table() const { return options_.table; }
  bool kernel_has_destroy() const { return has_destroy_; }
  const NftCounters& counters() const { return counters_; }

 private:
  NftEnforcer(NftOptions options, std::unique_ptr<nft::Socket> sock,
              std::shared_ptr<spdlog::logger> logger);
  Result<void> create_table();
  Result<bool> table_exists();
  Result<void> check_sets_are_ours();
  Result<void> resync(TimeMs now);
  Result<void> send_ops(const std::vector<nft::ElementOp>& ops, TimeMs now);
  // Plans the touched ranges, sends them as one batch; re-reads the kernel and retries once
  // when the kernel's state drifted from ours (e.g. an element expired in between).
  Result<void> sync(TimeMs now);

  NftOptions options_;
  std::unique_ptr<nft::Socket> sock_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<Prefix> protected_;
  nft::IntervalPlanner planner_;
  bool has_destroy_ = false;
  bool destroyed_ = false;
  NftCounters counters_;
  mutable EnforcerStats last_stats_;
};

}  // namespace meshd::sensor

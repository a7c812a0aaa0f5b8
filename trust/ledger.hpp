// Per-origin reputation: Beta-style evidence counts with exponential decay, asymmetric
// updates, a prior for new certified nodes, a cap t_cap < 1 and quarantine.
//
//   trust(o) = 0                                  while now < quarantine_until
//            = t_cap * (pos + a0) / (pos + neg + a0 + b0)   otherwise
//   a0 = prior_weight * prior / t_cap,  b0 = prior_weight - a0
//
// so an origin with no evidence sits exactly at `prior`, unlimited corroboration approaches
// t_cap, and pos/neg halve every `half_life_ms` (the origin drifts back to the prior).
// A gain adds `gain` to pos; a loss adds `gain * loss_ratio` to neg (asymmetric).
//
// The ledger stores a snapshot per origin (evidence decayed up to `updated_at`); trust values
// change only when the ledger is updated, so a decision is a pure function of the stored
// ledger (I8). Pure, deterministic, serialisable.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"
#include "trust/params.hpp"
#include "trust/types.hpp"

namespace meshd::trust {

struct LedgerEntry {
  DomainId domain;
  double pos = 0;               // decayed positive evidence (corroborations)
  double neg = 0;               // decayed negative evidence (contradictions)
  TimeMs updated_at = 0;        // pos/neg are decayed up to this time
  TimeMs quarantine_until = 0;  // trust is 0 while updated time < this
  bool pinned = false;          // the local node itself: trust fixed at t_cap, never updated
};

class TrustLedger {
 public:
  explicit TrustLedger(const Params& params = Params::defaults()) : params_(params) {}

  // Adds the origin at the prior if unknown; updates its domain if the cert changed.
  // Returns true if the origin was new.
  bool ensure(const NodeId& node, const DomainId& domain, TimeMs now);
  // Marks `node` as the local node (trust pinned to t_cap).
  void pin(const NodeId& node, const DomainId& domain, TimeMs now);

  // Trust as stored (no decay applied beyond the last update). Unknown origins: 0 (an unknown
  // key has zero influence). In [0, t_cap].
  double trust(const NodeId& node, TimeMs now) const;
  double trust(const LedgerEntry& e, TimeMs now) const;
  bool quarantined(const NodeId& node, TimeMs now) const;

  // Updates (decay to `now` first, then add evidence). No-op for pinned or unknown origins.
  void add_gain(const NodeId& node, double weight, TimeMs now);
  void add_loss(const NodeId& node, double weight, TimeMs now);
  // Trust 0 until now + quarantine_ms; afterwards the origin restarts with
  // post_quarantine_neg negative evidence (low trust, recovering by decay).
  void quarantine(const NodeId& node, TimeMs now);
  // Applies decay to `now` (trust moves towards the prior); ends expired quarantines.
  // Returns true if the stored trust changed.
  bool refresh(const NodeId& node, TimeMs now);

  const LedgerEntry* find(const NodeId& node) const;
  const std::unordered_map<NodeId, LedgerEntry>& entries() const { return entries_; }
  void set_params(const Params& p) { params_ = p; }
  const Params& params() const { return params_; }

  // Compact text form, one origin per line, node ids and domains percent-escaped:
  //   "meshd-trust-ledger v1\n" then "node domain pos neg updated_at quarantine_until pinned\n"
  // Lines sorted by node id, so equal ledgers serialise to equal bytes.
  std::string serialize() const;
  // Inverse of serialize(). Error code "bad_ledger" naming the line and the reason.
  static Result<TrustLedger> deserialize(std::string_view text, const Params& params);

 private:
  void decay_to(LedgerEntry& e, TimeMs now) const;
  Params params_;
  std::unordered_map<NodeId, LedgerEntry> entries_;
};

}  // namespace meshd::trust

// Internal state of trust::Engine. Not part of the public API.
//
// Layout is chosen for memory (the simulator runs 10,000 engines): claims and targets are
// plain records in vectors addressed by 32-bit indexes, linked into per-target and per-origin
// intrusive lists, and found through FlatIndex (4 bytes per slot). A live claim costs its
// 88-byte record, ~8 bytes of index and its share of the 56-byte target record; each target
// has one deadline (target_wake) covering its claims' expiry and its block's.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "trust/detail/flat_index.hpp"
#include "trust/engine.hpp"

namespace meshd::trust::detail {

inline constexpr std::uint32_t kNone = 0xffffffffu;

enum ClaimFlag : std::uint8_t {
  kLive = 1,          // slot in use
  kSuperseded = 2,    // a newer claim of the same origin on the same target replaced it;
                      // kept (skipped by decisions) only to detect equivocation on its seq
  kCreditDomain = 4,  // its origin already gained from independent-domain corroboration
  kCreditLocal = 8,   // its origin already gained from local sensor corroboration
  kDebitLocal = 16,   // its origin already lost from local benign evidence (contradiction)
};

struct ClaimRec {
  Digest digest{};
  std::uint64_t seq = 0;
  TimeMs issued_at = 0;
  TimeMs expires_at = 0;  // min(issued_at + requested_ttl, received + ttl_max)
  std::uint32_t target = kNone;
  std::uint32_t origin = kNone;
  std::uint32_t t_next = kNone;  // next claim on the same target
  std::uint32_t o_prev = kNone;  // per-origin doubly linked list (the head's o_prev: the tail)
  std::uint32_t o_next = kNone;
  float confidence = 0;
  std::uint16_t detector = 0;
  std::uint16_t epoch = 0;  // target epoch at arrival; claims of an older epoch are spent
  Severity severity = Severity::medium;
  Direction direction = Direction::both;
  std::uint8_t flags = 0;
};

enum TargetFlag : std::uint8_t {
  kTargetLive = 1,
  kEnforced = 2,
  kPending = 4,   // waiting for a budget token
  kOperator = 8,  // an operator block exists (see Impl::op_blocks)
};

struct TargetRec {
  Prefix prefix;
  std::uint32_t head = kNone;  // claims: active ones newest first, then superseded ones
  TimeMs since = 0;            // enforced: start of this enforcement
  TimeMs expires_at = 0;       // enforced: expiry; pending: retry time
  TimeMs wake_at = 0;          // the one live target_wake deadline (0: none); later ones are not
                               // pushed, so retimes do not grow the deadline heap
  float score = 0;
  std::uint16_t epoch = 0;  // bumped when a block runs out of time: its claims are spent
  Direction direction = Direction::both;
  std::uint8_t flags = 0;
};

// Fields ordered by size (no padding holes): a node keeps one per origin of the fleet.
struct OriginRec {
  NodeId node;
  // issued_at of recent accepted claims (sorted), for the gross-overrun check.
  std::vector<TimeMs> recent;
  double trust = 0;   // cache of ledger trust (updated with every ledger change)
  double tokens = 0;  // budget bucket content at tokens_at
  TimeMs tokens_at = 0;
  double pending_gain = 0;  // batched corroboration gains (applied at flush)
  TimeMs quarantine_until = 0;
  std::uint32_t domain = 0;
  std::uint32_t head = kNone;  // claims: active ones newest first, then superseded ones
  std::uint32_t nclaims = 0;
  bool self = false;
  bool dirty = false;        // queued for re-evaluation of its targets
  bool gain_queued = false;  // in Impl::gain_origins
};
static_assert(sizeof(OriginRec) <= sizeof(NodeId) + 80, "OriginRec grew padding");

struct OpBlock {
  Direction direction = Direction::both;
  TimeMs expires_at = 0;
  std::string reason;
};

struct OpAllow {
  Prefix prefix;
  TimeMs expires_at = 0;
  std::string reason;
};

enum class DeadlineKind : std::uint8_t {
  target_wake,     // id = target: claim expiry, block expiry, budget retry, operator end
  quarantine_end,  // id = origin
  allow_expiry,    // id unused: allows are scanned
  flush,           // batched trust gains
  refresh,         // decay of idle origins
  tombstones,      // expiry of remembered retractions
  requorum,        // register_origin() made a new failure domain known: re-decide everything
};

struct Deadline {
  TimeMs at = 0;
  std::uint32_t id = 0;
  DeadlineKind kind = DeadlineKind::target_wake;
  bool operator>(const Deadline& o) const {
    if (at != o.at) return at > o.at;
    if (kind != o.kind) return kind > o.kind;
    return id > o.id;
  }
};

struct Tombstone {
  std::uint32_t origin;
  std::uint64_t seq;
  TimeMs expires_at;
};

// A pivotal domain of a new block and who pays its token (I3).
struct PayerRec {
  std::uint32_t domain = kNone;
  std::uint32_t origin = kNone;  // kNone: nobody in the domain can pay now (pending)
  bool self = false;             // this node's own claim carries the domain: free
  TimeMs retry_at = 0;           // pending: when a token is available (0: none foreseeable)
};

// Per-evaluation result with what settle() needs beyond the public Decision.
struct Eval {
  Decision d;
  std::vector<PayerRec> payers;  // pivotal domains of a new block: each origin pays one token
  TimeMs since = 0;              // enforcement start if enforced now
  TimeMs retry_at = 0;           // pending: when a token is available
  const ProtectedPrefix* prot = nullptr;
  const OpAllow* allow = nullptr;
  std::uint64_t flows = 0;
  BenignEvidence ev;     // local benign evidence (trust mode; flows only otherwise)
  bool used_up = false;  // enforced, but its time ran out: lift and spend its claims
};

struct DomainAcc {
  std::uint32_t domain;
  double max_tc;
  std::uint32_t lead;  // origin with the max
  std::uint32_t lead_claim;
};

}  // namespace meshd::trust::detail

namespace meshd::trust {

struct Engine::Impl {
  Params params;
  LocalContext ctx;
  TrustLedger ledger;
  EngineStats stats;
  TimeMs last_now = 0;

  std::vector<ProtectedPrefix> protected_list;  // builtins (trust mode) + configured
  std::vector<detail::OpAllow> allows;
  std::map<std::uint32_t, detail::OpBlock> op_blocks;  // by target

  std::vector<detail::ClaimRec> claims;
  std::vector<std::uint32_t> free_claims;
  detail::FlatIndex claim_index;  // (origin, seq)

  std::vector<detail::TargetRec> targets;
  std::vector<std::uint32_t> free_targets;
  detail::FlatIndex target_index;  // prefix
  // Live targets per (family, length): index len for v4, 33 + len for v6. Lets
  // overlapping_targets() probe only the lengths in use.
  std::uint32_t target_len_count[33 + 129] = {};

  std::vector<detail::OriginRec> origins;
  detail::FlatIndex origin_index;  // node id (string_hash) -> origins index
  std::vector<std::string> domains;
  detail::FlatIndex domain_index;  // domain name (string_hash) -> domains index
  std::size_t named_domains = 0;   // interned non-empty domains: the fleet's D as known here
  bool domains_grew = false;       // D grew since the last requorum(): decisions may change
  std::vector<std::string> detectors;
  std::unordered_map<std::string, std::uint16_t> detector_index;
  std::uint16_t last_detector = 0xffff;  // most recent detector_of() answer (claims of a
                                         // fleet mostly come from a few detectors)

  std::deque<detail::Tombstone> tombstones;  // FIFO by expiry (now is monotonic)
  std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> tombstone_set;  // origin -> seqs

  std::priority_queue<detail::Deadline, std::vector<detail::Deadline>,
                      std::greater<detail::Deadline>>
      deadlines;
  bool flush_scheduled = false;
  bool refresh_scheduled = false;
  std::vector<std::uint32_t> dirty_origins;  // trust changed: re-evaluate their targets
  std::vector<std::uint32_t> gain_origins;   // have a pending_gain

  mutable std::vector<detail::DomainAcc> scratch_domains;
  mutable std::vector<TimeMs> scratch_times;

  Impl(const Params& p, LocalContext c, TimeMs now);

  // --- time ---
  TimeMs clamp(TimeMs now);
  TimeMs view(TimeMs now) const { return now < last_now ? last_now : now; }

  // --- interning ---
  std::uint32_t origin_of(const NodeId& node, const DomainId& domain, TimeMs now);
  std::uint32_t find_origin(const NodeId& node) const;
  std::uint32_t domain_of(const DomainId& d);
  std::uint16_t detector_of(const std::string& d);

  // --- claims and targets ---
  std::uint64_t claim_hash(std::uint32_t origin, std::uint64_t seq) const;
  std::uint32_t find_claim(std::uint32_t origin, std::uint64_t seq) const;
  std::uint32_t find_target(const Prefix& p) const;
  std::uint32_t get_target(const Prefix& p);
  void maybe_free_target(std::uint32_t t);
  std::uint32_t add_claim(const ClaimFacts& f, const Digest& dg, std::uint32_t origin,
                          std::uint32_t target, TimeMs now);
  void unlink_from_target(std::uint32_t c);
  void supersede(std::uint32_t c);  // flags it and moves it behind the active claims
  void bring_earliest_forward(std::uint32_t* front);
  void unlink_from_origin(std::uint32_t c);
  void free_claim(std::uint32_t c);  // unlinks everywhere
  bool tombstoned(std::uint32_t origin, std::uint64_t seq) const;
  void add_tombstone(std::uint32_t origin, std::uint64_t seq, TimeMs now);
  std::vector<std::uint32_t> overlapping_targets(const Prefix& p) const;
  ClaimFacts facts_of(std::uint32_t c) const;

  // --- protection ---
  const ProtectedPrefix* protected_overlap(const Prefix& p) const;
  const ProtectedPrefix* protected_container(const Prefix& p) const;
  const detail::OpAllow* allow_overlap(const Prefix& p, TimeMs now) const;

  // --- trust and budgets ---
  double tokens_at(const detail::OriginRec& o, TimeMs now) const;
  double capacity(const detail::OriginRec& o) const;
  double rate_per_ms(const detail::OriginRec& o) const;
  void set_trust_cache(std::uint32_t o, TimeMs now);  // after any ledger change of o
  void trust_changed(std::uint32_t o, TimeMs now);    // re-evaluation queued
  void quarantine(std::uint32_t o, TimeMs now, std::vector<BlockChange>& out);
  void queue_gain(std::uint32_t o, double weight, TimeMs now);
  void flush_gains(TimeMs now);
  void drain(TimeMs now, std::vector<BlockChange>& out);  // process dirty origins
  std::optional<MisbehaviourRecord> overrun_check(std::uint32_t o, TimeMs issued, TimeMs now);

  // --- decisions ---
  detail::Eval evaluate(std::uint32_t t, const Prefix& p, TimeMs now) const;
  void settle(std::uint32_t t, TimeMs now, ChangeCause cause, std::vector<BlockChange>& out);
  void settle_all(TimeMs now, ChangeCause cause, std::vector<BlockChange>& out);
  void credit_corroboration(std::uint32_t t, TimeMs now);
  // If a new failure domain became known (the quorum depends on D), re-decides every target.
  void requorum(TimeMs now, std::vector<BlockChange>& out);
  // Strong local benign evidence for the claim's target: its origin loses
  // weight_contradiction (once per claim). Returns true if it did.
  bool check_contradiction(std::uint32_t c, TimeMs now);
  void recheck_targets(const std::vector<std::uint32_t>& ts, TimeMs now,
                       std::vector<BlockChange>& out);
  void schedule(TimeMs at, std::uint32_t id, detail::DeadlineKind k);
  void wake_target(std::uint32_t t, TimeMs at);
  void rearm(std::uint32_t t);  // wake at the target's next claim expiry / block event
  void process_deadline(const detail::Deadline& d, TimeMs now, std::vector<BlockChange>& out);
  Explanation explain(std::uint32_t t, const Prefix& p, TimeMs now) const;
};

}  // namespace meshd::trust

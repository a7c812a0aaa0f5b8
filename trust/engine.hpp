// The acceptance engine: one per node. Sans-I/O: every entry point takes `now`, returns the
// block changes to apply (enforce / retime / lift) and never reads a clock, draws randomness
// or does I/O. The daemon and the simulator link the same code.
//
// Contract (mode `trust`; the model and the tests of I1-I8: trust/README.md):
//  I1 no block overlapping a protected prefix is ever returned as enforce/retime;
//  I2 one failure domain's claims never raise S above s_cap;
//  I3 blocks enforced on one origin's sole support are paid from its trust-scaled token
//     bucket; excess waits ("pending") and is re-considered when tokens refill;
//  I4 every block carries expires_at <= since + ttl_max (ttl_single while single-domain)
//     and is lifted by tick() at expiry;
//  I5 equivocation, protected targets and gross overrun yield a MisbehaviourRecord and
//     quarantine the origin, lifting what loses support in the same call;
//  I6 every trust drop re-evaluates the origin's targets and lifts/retimes in the same call;
//  I7 a trusted, confident claim on a cheap target is enforced by on_claim itself;
//  I8 decide() is a pure function of (params, ledger, claims, usage, now).
// Beyond one domain (trust/README.md "Collusion resistance"): a target this node has benign
// evidence for (flows from several local sources, no local detection) costs linearly more,
// needs corroboration by required_domains() distinct failure domains (the full quorum, more
// than a third of the fleet's domains, with strong evidence), the benefit claims may invoke is
// capped by the domains backing them, every pivotal domain pays a budget token, and a claim
// on a target with strong benign evidence lowers its origin's trust (contradiction).
//
// Time: the engine remembers the latest `now` it was given and treats an earlier one as that
// latest time (a clock stepping back never un-expires or extends anything).
// Decisions are per exact target prefix; a target's block direction is the union of the
// directions of its active claims.
//
// Semantics worth knowing (mode `trust`):
//  - Claims: one per (origin, target): a newer seq replaces the older (kept only to detect
//    equivocation on its seq until it expires); an older seq is `stale`. A claim lives until
//    min(issued_at + requested_ttl, arrival + ttl_max).
//  - Lifetime: a block's expiry is anchored at the start of its enforcement (`since`):
//    min(since + ttl(S), since + ttl_single|ttl_max, latest supporting claim expiry).
//    When that time comes the block is lifted and the claims that carried it are *spent*
//    (ClaimExplanation::spent): only fresh claims (e.g. the origin re-issuing while it still
//    detects the threat) can enforce it again, and a single-domain re-enforcement pays a new
//    budget token. Extensions smaller than retime_min_ms are applied at the old expiry.
//  - Budget: a new block is paid (one token each) by every pivotal supporting domain (one
//    whose support the decision cannot do without): by an origin of that domain whose t*c
//    still carries the decision; without a token it is `pending_budget` and retried when a
//    token refills. A single domain is always pivotal. The local node's own claims are free.
//  - Contradiction: a claim that arrives (or is re-checked by recheck_usage) while this node
//    has strong benign evidence for its target costs its origin weight_contradiction, once
//    per claim, applied before the decision (I6 re-evaluates the origin's other targets).
//  - Gross overrun: more than overrun_max_claims claims issued by one origin within
//    overrun_window_ms (provable from the signed claims alone).
//  - Trust losses (false positive, contradiction, quarantine) re-evaluate at once (I6);
//    gains (corroboration) are batched every feedback_flush_ms; decay every trust_refresh_ms.
//  - A quarantined origin's claims are dropped; new ones are rejected until it ends.
// naive / quorum: see PolicyMode in params.hpp.
// Thread-compatibility: not thread-safe; one owner drives it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "meshd/common/direction.hpp"
#include "meshd/common/event_kinds.hpp"
#include "meshd/common/prefix.hpp"
#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"
#include "trust/ledger.hpp"
#include "trust/params.hpp"
#include "trust/types.hpp"
#include "trust/usage.hpp"

namespace meshd::trust {

// A prefix this node must never block (I1). Any claim OVERLAPPING it is never enforced;
// a claim TARGETING it (claim prefix contained in it) is misbehaviour when `fleet_wide`
// (other nodes share the list, so they can verify the proof). Node-local entries (own
// addresses, default gateway, DNS) only reject such claims.
struct ProtectedPrefix {
  Prefix prefix;
  std::string reason;      // shown by explain, e.g. "kubernetes api", "own address"
  bool fleet_wide = true;  // true: targeting it is provable misbehaviour
};

// Loopback and link-local, v4 and v6 (node-local). The engine always adds these in mode
// `trust`; exposed so the daemon can print them.
std::vector<ProtectedPrefix> builtin_protected();

struct LocalContext {
  Origin self;  // this node; its own claims have trust t_cap
  std::vector<ProtectedPrefix> protected_prefixes;
  const UsageSource* usage = nullptr;  // not owned; may be null (no usage term)
};

enum class ChangeCause : std::uint8_t {
  evidence,           // claims arrived / changed the score
  expiry,             // block or its supporting claims expired
  retraction,         // an origin withdrew its claim
  trust,              // an origin's trust changed (feedback, proof, decay)
  operator_decision,  // operator block/unblock/allow/clear
  protected_list,     // set_protected() made the target protected
  params,             // set_params() changed the policy
  budget,             // a pending block got budget tokens
};
std::string_view to_string(ChangeCause c);

struct BlockChange {
  enum class Kind : std::uint8_t { enforce, retime, lift };
  Kind kind = Kind::enforce;
  Prefix prefix;
  Direction direction = Direction::both;  // enforce/retime: new; lift: what was enforced
  TimeMs expires_at = 0;                  // enforce/retime: absolute expiry; lift: 0
  double score = 0;                       // S at the time of the change
  ChangeCause cause = ChangeCause::evidence;
  bool operator==(const BlockChange&) const = default;
};
std::string_view to_string(BlockChange::Kind k);

struct EnforcedBlock {
  Prefix prefix;
  Direction direction = Direction::both;
  TimeMs since = 0;  // start of this continuous enforcement
  TimeMs expires_at = 0;
  double score = 0;
  bool by_operator = false;
};

struct OffendingClaim {
  ClaimFacts facts;
  Digest digest{};
};

// Evidence that an origin misbehaved. The daemon attaches the signed envelopes of `claims`
// (looked up by origin + seq + digest) to build a self-verifying MisbehaviourProof.
struct MisbehaviourRecord {
  MisbehaviourKind kind = MisbehaviourKind::equivocation;
  Origin origin;
  std::vector<OffendingClaim> claims;  // equivocation: both bodies; protected: the claim;
                                       // overrun: the claims in the window
  TimeMs detected_at = 0;
  std::string reason;  // one sentence for logs and explain
};

enum class ClaimStatus : std::uint8_t {
  accepted,     // stored; it counts towards its target's decision
  duplicate,    // same (origin, seq, digest) already known: nothing changed
  stale,        // the origin already has a newer claim on this target: ignored
  retracted,    // the origin had already retracted this seq: ignored
  rejected,     // invalid or from a quarantined origin: see Outcome::error
  misbehaviour  // proof of misbehaviour: see Outcome::misbehaviour (origin quarantined)
};
std::string_view to_string(ClaimStatus s);

struct Outcome {
  ClaimStatus status = ClaimStatus::accepted;
  bool contradicted = false;   // accepted, but it contradicts strong local benign evidence:
                               // its origin lost trust (weight_contradiction)
  std::optional<Error> error;  // set when rejected
  std::optional<MisbehaviourRecord> misbehaviour;  // set when misbehaviour
  std::vector<BlockChange> changes;                // apply these, in order
};

enum class RetractionStatus : std::uint8_t {
  applied,     // the claim was removed
  remembered,  // claim not (yet) known: the retraction is kept so the claim is ignored later
  duplicate,   // already retracted
};
struct RetractionOutcome {
  RetractionStatus status = RetractionStatus::applied;
  std::vector<BlockChange> changes;
};

// Authoritative, operator-key-signed decisions (verified by the daemon).
struct OperatorDecision {
  using Action = OperatorAction;
  Action action = Action::block;
  Prefix prefix;
  Direction direction = Direction::both;  // for block
  TimeMs expires_at = 0;  // block/allow; 0 or beyond operator_ttl_max = now + operator_ttl_max
  bool false_positive = false;  // unblock: the claims were wrong; lowers their origins' trust
  std::string reason;
};

enum class Verdict : std::uint8_t {
  enforce,           // S >= threshold (or quorum met / naive) and budget allows
  below_threshold,   // S < C/(B+C)
  protected_prefix,  // overlaps a protected prefix: never enforced (I1)
  operator_allow,    // overlaps an operator allow
  operator_block,    // operator block: enforced regardless of evidence
  pending_budget,    // a pivotal domain has no origin with a budget token (I3)
  no_claims,         // no active claims
  quorum_not_met,    // mode quorum: fewer than K distinct origins
  domains_short,     // S clears the threshold, but fewer failure domains back it than the
                     // local benign evidence demands (required_domains)
};
inline constexpr std::size_t kVerdictCount = 9;  // values of Verdict
std::string_view to_string(Verdict v);

// Result of decide(): the pure decision for one target at `now`.
struct Decision {
  Verdict verdict = Verdict::no_claims;
  bool enforce = false;
  double score = 0;         // S
  double cost = 0;          // C (infinity when protected)
  double benefit = 0;       // B
  double threshold = 1;     // C / (B + C)
  std::size_t domains = 0;  // failure domains with positive support
  std::size_t origins = 0;  // distinct origins with active claims
  bool single_domain = false;
  // Collusion resistance (mode trust): local benign evidence and what it demands.
  double benign = 0;                 // E: benign evidence flows (0 if none / flagged)
  bool strong_benign = false;        // E strong: claims contradict it
  std::size_t domains_required = 1;  // q(E)
  std::size_t fleet_domains = 0;     // D the quorum is computed from
  std::size_t quorum_max = 1;        // q_max = floor(D * quorum_fraction) + 1
  double benefit_claimed = 0;        // B the claims assert (trust-weighted severity)
  double benefit_cap = 0;            // most B that `domains` domains may invoke
  bool self_claim = false;           // this node's own claim supports it: no quorum needed
  DurationMs ttl = 0;                // TTL the policy grants now (before the since-based caps)
  TimeMs expires_at = 0;             // expiry if enforced at `now` (all caps applied)
  Direction direction = Direction::both;
};

struct ClaimExplanation {
  Origin origin;
  std::uint64_t seq = 0;
  std::string detector;
  Severity severity = Severity::medium;
  Direction direction = Direction::both;
  double trust = 0;
  double confidence = 0;
  double contribution = 0;  // trust * confidence
  bool quarantined = false;
  bool spent = false;         // already used by a block that ran out of time: counts no more
  bool contradicted = false;  // cost its origin trust here (strong local benign evidence)
  TimeMs issued_at = 0;
  TimeMs expires_at = 0;
};

struct DomainExplanation {
  DomainId domain;
  double max_contribution = 0;  // max t*c over the domain's origins
  double support = 0;           // min(s_cap, max_contribution)
  NodeId lead;                  // origin giving the max
};

struct BudgetExplanation {
  bool applies = false;     // this origin pays for a new block (its domain is pivotal)
  DomainId domain;          // the pivotal domain
  NodeId origin;            // who pays
  double tokens = 0;        // tokens now
  double capacity = 0;      // bucket size at its trust
  double rate_per_min = 0;  // refill at its trust
  bool pending = false;     // waiting for a token
  TimeMs retry_at = 0;      // when a token is available (pending only)
};

// The cost C of a wrong block, term by term (explain only; C is infinite when protected):
// C = base + usage + breadth + benign.
struct CostTerms {
  double base = 0;     // cost_base
  double usage = 0;    // cost_usage * log2(1 + flows)
  double breadth = 0;  // cost_breadth * effective host bits
  double benign = 0;   // cost_benign * E (mode trust; 0 otherwise)
};

struct Explanation {
  Prefix prefix;
  TimeMs now = 0;
  std::string policy;  // "trust", "naive", "quorum:K"
  Decision decision;
  std::vector<ClaimExplanation> claims;    // sorted by contribution, highest first
  std::vector<DomainExplanation> domains;  // sorted by support, highest first
  std::uint64_t flows = 0;                 // usage input of the cost model
  BenignEvidence evidence;                 // local benign evidence input (trust mode)
  CostTerms cost_terms;                    // C's terms (decision.cost is their sum)
  BudgetExplanation budget;                // the first (or only) payer
  std::vector<BudgetExplanation> payers;   // every pivotal domain's payer (budget included)
  std::string protected_reason;            // non-empty: why it is protected/allowed
  std::optional<Prefix> protected_by;      // the protected/allowed prefix it overlaps
  // Every rule that refuses the target now, in the order evaluate() checks them (the first
  // is decision.verdict): a refused target often fails several at once, e.g. colluders'
  // claims on a used service are below_threshold AND domains_short. Empty when enforced.
  std::vector<Verdict> refused_by;
  bool enforced = false;  // currently enforced by this engine
  TimeMs enforced_since = 0;
  TimeMs enforced_until = 0;
  bool by_operator = false;
};

// Every rule that refuses `d` (see Explanation::refused_by); empty when it enforces.
std::vector<Verdict> refusal_reasons(const Decision& d, bool trust_mode);

// Human-readable multi-line rendering for `meshctl explain`.
std::string format_explanation(const Explanation& e);

// Counters for metrics export; monotonic except the gauges marked so.
struct EngineStats {
  std::uint64_t claims_received = 0;
  std::uint64_t claims_accepted = 0;
  std::uint64_t claims_duplicate = 0;
  std::uint64_t claims_stale = 0;
  std::uint64_t claims_retracted = 0;    // ignored because retracted earlier
  std::uint64_t claims_rejected = 0;     // all reasons
  std::uint64_t rejected_bad_input = 0;  // validate() failed
  std::uint64_t rejected_future = 0;     // issued too far ahead
  std::uint64_t rejected_expired = 0;    // already expired on arrival
  std::uint64_t rejected_quarantined = 0;
  std::uint64_t rejected_protected = 0;  // targets a protected prefix
  std::uint64_t misbehaviour_detected = 0;
  std::uint64_t proofs_applied = 0;
  std::uint64_t retractions = 0;
  std::uint64_t retractions_early = 0;
  std::uint64_t operator_decisions = 0;
  std::uint64_t blocks_enforced = 0;
  std::uint64_t blocks_retimed = 0;
  std::uint64_t blocks_lifted = 0;
  std::uint64_t budget_deferrals = 0;  // times a block waited for a token
  std::uint64_t trust_gains = 0;
  std::uint64_t trust_losses = 0;
  std::uint64_t contradictions = 0;     // claims that cost their origin trust (benign evidence)
  std::uint64_t domains_short = 0;      // decisions refused for too few domains (not a gauge)
  std::uint64_t clock_regressions = 0;  // calls with `now` earlier than the latest seen
  // Decisions taken on a target (after a claim, retraction, operator decision, expiry,
  // budget retry or trust change), by the resulting Verdict (index = its value).
  std::array<std::uint64_t, kVerdictCount> decisions{};
  // gauges
  std::uint64_t active_claims = 0;
  std::uint64_t active_blocks = 0;
  std::uint64_t pending_blocks = 0;
};

class Engine {
 public:
  // Throws std::invalid_argument if params.validate() fails (a start-up error); use create()
  // to get the error as a value.
  Engine(const Params& params, LocalContext ctx, TimeMs now = 0);
  static Result<Engine> create(const Params& params, LocalContext ctx, TimeMs now = 0);
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

  // Makes a certified origin known at the prior (no effect if known; updates its domain).
  void register_origin(const NodeId& node, const DomainId& domain, TimeMs now);

  // A verified claim and the digest of its signed body. Unknown origins are registered at the
  // prior. Returns what happened and the block changes to apply.
  Outcome on_claim(const ClaimFacts& claim, const Digest& body_digest, TimeMs now);
  // The origin withdraws its claim `claim_seq`. Retractions of unknown claims are remembered
  // (for ttl_max) so the claim is ignored if it arrives later.
  RetractionOutcome on_retraction(const NodeId& origin, std::uint64_t claim_seq, TimeMs now);
  // Operator decision (authoritative). Error "protected" when blocking a protected prefix.
  Result<std::vector<BlockChange>> on_operator_decision(const OperatorDecision& d, TimeMs now);

  // Checks that a (signature-verified) record really proves misbehaviour under this node's
  // params and fleet-wide protected list. Error "bad_proof" naming what does not hold.
  Result<void> check_misbehaviour(const MisbehaviourRecord& r) const;
  // Quarantines the origin (trust 0 for quarantine_ms) and lifts/retimes what loses support.
  // Mode naive/quorum: no effect (they have no trust).
  std::vector<BlockChange> apply_proof(const NodeId& origin, TimeMs now);

  // Feedback: this node's own sensor saw malicious activity for addresses in `prefix`: every
  // origin with an active claim on a target overlapping it gains trust (once per claim).
  std::vector<BlockChange> on_local_corroboration(const Prefix& prefix, TimeMs now);
  // Feedback: this node has strong benign evidence for `prefix`: origins claiming targets
  // overlapping it lose trust (once per claim).
  std::vector<BlockChange> on_local_contradiction(const Prefix& prefix, TimeMs now);

  // Local benign evidence (ctx.usage->evidence()) changed for `prefix`: every active claim on a
  // target overlapping it is checked against the evidence (strong: its origin loses
  // weight_contradiction, once per claim) and those targets are re-decided. on_claim() already
  // checks each claim on arrival; the daemon calls this when its usage window moves (e.g. once
  // per usage bucket for the targets whose flows changed), or recheck_usage() for all targets.
  std::vector<BlockChange> on_usage_changed(const Prefix& prefix, TimeMs now);
  std::vector<BlockChange> recheck_usage(TimeMs now);

  // Expiry of claims/blocks/quarantines/allows, budget retries, batched trust gains, decay.
  // Call at (or after) next_deadline().
  std::vector<BlockChange> tick(TimeMs now);
  // Earliest time tick() has work; nullopt if none.
  std::optional<TimeMs> next_deadline() const;

  // Re-decides a target (e.g. after its usage changed) / every target with claims.
  std::vector<BlockChange> reevaluate(const Prefix& prefix, TimeMs now);
  std::vector<BlockChange> reevaluate_all(TimeMs now);

  // Pure queries (I8): no state changes.
  Decision decide(const Prefix& prefix, TimeMs now) const;
  Explanation explain(const Prefix& prefix, TimeMs now) const;
  // Explanations of every known target overlapping `prefix` (for `meshctl explain IP`),
  // most specific first; includes `prefix` itself if known.
  std::vector<Explanation> explain_overlapping(const Prefix& prefix, TimeMs now) const;

  std::vector<EnforcedBlock> enforced() const;  // sorted by prefix
  std::optional<EnforcedBlock> enforced(const Prefix& prefix) const;
  const TrustLedger& ledger() const;
  // Replaces the ledger (e.g. loaded from disk) and re-evaluates everything.
  std::vector<BlockChange> restore_ledger(TrustLedger ledger, TimeMs now);

  // Replaces the configured protected list (builtins are kept); lifts what became protected.
  std::vector<BlockChange> set_protected(std::vector<ProtectedPrefix> list, TimeMs now);
  // SIGHUP reload: validates, swaps params, re-evaluates every target.
  Result<std::vector<BlockChange>> set_params(const Params& params, TimeMs now);
  const Params& params() const;

  const EngineStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshd::trust

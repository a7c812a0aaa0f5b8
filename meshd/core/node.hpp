// meshd/core: the sans-I/O gossip state machine of one node (overview: meshd/README.md).
//
// Inputs are method calls that each take `now` (Unix ms or virtual ms, never read here);
// outputs are appended to an `Actions` the driver owns, clears and reuses (so the
// per-message path allocates nothing in steady state). Randomness comes from the injected
// Rng, crypto and codec from the injected EventOpener, every acceptance decision from the
// injected trust::Engine. No sockets, threads, clocks or Asio: meshd/app (Asio) and
// simulations/ (virtual clock) drive the same code.
//
// Behaviour (the contract):
//  - Dedup: every received envelope's event id is checked against a bounded, time-evicted
//    seen-set BEFORE opening; each distinct envelope is opened at most once while remembered.
//    A copy arriving after eviction is opened again and recognised by (origin, seq, digest).
//  - Forwarding: every new, valid event (claim, retraction, operator decision, proof) is
//    pushed to every peer except the one it came from, whether or not this node enforces it
//    (forwarding is about validity, enforcement about trust). Not forwarded: events that fail
//    to open, duplicates, the second body of an equivocation (a proof goes out instead),
//    events of an origin this node has quarantined, and events over the origin's rate limit.
//  - Decisions: claims, retractions, operator decisions and proofs go to trust::Engine; its
//    block changes are returned in Actions::blocks, in order.
//  - Misbehaviour: the core detects equivocation across all kinds ((origin, seq) held with a
//    different body digest); the engine detects claim equivocation, protected targets and
//    gross budget overruns. Either way the origin is quarantined here at once
//    (Engine::apply_proof) and, after a jittered delay unless a valid proof arrives first, a
//    ProofRequest is returned carrying the offending envelopes. The driver signs it as a
//    `MisbehaviourProof` body with its own key and next seq and hands the envelope back via
//    on_local_event(), which gossips it like any event. A received proof is verified from its
//    evidence alone (see ProofBody) and, if valid, quarantines the accused and lifts the
//    blocks that lose support. Invalid proofs are dropped (not forwarded, counted).
//  - Anti-entropy: per-origin version vectors (max contiguous seq; seqs above a gap are held
//    and counted once the gap fills; a seq more than out_of_order_window ahead slides the
//    window and gives up older gaps). The full vector goes to a peer on peer-up and, as a
//    backstop, to random peers every anti_entropy_full_period_ms; every (jittered)
//    anti_entropy_period_ms each peer gets a delta vector with only the origins that advanced
//    since its last vector, and nothing when nothing advanced (the rounds go idle). A
//    receiver requests its gaps (bounded spans, bounded outstanding requests, one origin
//    fetched from one peer at a time, re-sent to the same peer after request_timeout_ms) and
//    tells the sender the listed entries it is behind on. Requests are served from the store
//    of known envelopes. Envelopes pulled this way are new events like any other: applied
//    and pushed on. "Held" seqs include those this node deliberately never stores:
//    events of quarantined origins and proofs that failed verification.
//  - Peer scoring: failed opens, malformed messages, per-peer rate-limit violations and
//    useless duplicates add weighted penalties (Config) that decay over time; at the threshold
//    the peer gets a Disconnect action with a ban deadline (exponential back-off per peer id).
//    A peer that comes up while banned is disconnected at once.
//  - Rate limits: per peer (messages, token bucket; excess dropped and penalised) and per
//    origin (new events; excess queued, then dropped WITHOUT marking the seq held so
//    anti-entropy can fetch it later: honest bursts still converge).
//  - Persistence: newly accepted events are returned as Persist actions, envelopes leaving the
//    store as Forget actions; after a restart the driver passes the stored envelopes to
//    restore(), which rebuilds the store, the version vector and the engine's claims without
//    sending anything. restore() may be called several times with consecutive slices of the
//    stored envelopes sorted by (origin, seq) (the result is the same as one call). With an
//    EnvelopeArchive the store reads envelope bytes back from the driver's storage instead of
//    keeping them in memory, and no Forget actions are returned (meshd/core/archive.hpp).
//
// The one interface of a driver: after handing the engine to Node::create, a driver mutates
// the engine only through the Node (register_origin, set_protected, set_params,
// restore_ledger, local corroboration, contradiction and usage evidence), so every consequence,
// block changes included, comes back in one Actions with one next_deadline, and reads it through
// the Node's queries.
//
// Not thread-safe: one owner drives a Node. The Node keeps references to the engine, opener
// and rng, which must outlive it. (The driver keeps the engine's storage so that a simulator
// can hold thousands of them in place.)
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meshd/common/result.hpp"
#include "meshd/core/archive.hpp"
#include "meshd/core/config.hpp"
#include "meshd/core/messages.hpp"
#include "meshd/core/opener.hpp"
#include "trust/engine.hpp"

namespace meshd::core {

inline constexpr TimeMs kNoDeadline = std::numeric_limits<TimeMs>::max();

struct Send {
  PeerId peer = 0;
  Message message;
};

// An event newly accepted into the store: write it to durable storage (meshd/app Store).
struct Persist {
  EventId id{};
  std::string origin;
  std::uint64_t seq = 0;
  EventKind kind = EventKind::claim;
  Envelope envelope;
  TimeMs expires_at = 0;  // the store may drop it after this
  TimeMs issued_at = 0;   // the signer's timestamp (propagation latency = now - issued_at)
  bool via_sync = false;  // arrived in an anti-entropy RangeResponse (else a push or local)
};

// Close the connection; refuse the peer (incoming and outgoing) until ban_until.
struct Disconnect {
  PeerId peer = 0;
  std::string reason;  // e.g. "score -104.0 <= -100 (invalid signatures)"
  TimeMs ban_until = 0;
};

// Publish a misbehaviour proof: build a MisbehaviourProof body {accused, kind, evidence,
// detail}, sign it with the node key and its next seq, and pass the envelope to
// on_local_event(). The core has already quarantined `accused` locally.
struct ProofRequest {
  trust::NodeId accused;
  MisbehaviourKind kind = MisbehaviourKind::equivocation;
  std::vector<Envelope> evidence;
  std::string detail;
};

struct Actions {
  std::vector<Send> sends;
  std::vector<trust::BlockChange> blocks;  // apply in order (enforce / retime / lift)
  std::vector<Persist> persist;
  std::vector<EventId> forget;  // remove from durable storage
  std::vector<Disconnect> disconnects;
  std::vector<ProofRequest> proofs;
  // Earliest time the driver must call tick() (absolute), the engine's work included. Set by
  // every call to the node's current next deadline; kNoDeadline if nothing is scheduled.
  TimeMs next_deadline = kNoDeadline;

  // Empties every list, keeping capacity (reuse one Actions across calls).
  void clear() {
    sends.clear();
    blocks.clear();
    persist.clear();
    forget.clear();
    disconnects.clear();
    proofs.clear();
    next_deadline = kNoDeadline;
  }
  bool empty() const {
    return sends.empty() && blocks.empty() && persist.empty() && forget.empty() &&
           disconnects.empty() && proofs.empty();
  }
};

// Monotonic counters (gauges marked) for metrics export.
struct Stats {
  std::uint64_t messages_received = 0;
  std::uint64_t messages_ignored = 0;  // from a peer not (or no longer) connected
  std::uint64_t pushes_received = 0;
  std::uint64_t events_new = 0;               // distinct valid events accepted (push, sync, local)
  std::uint64_t duplicates = 0;               // envelope already seen / (origin, seq) already held
  std::uint64_t useless_duplicates = 0;       // duplicates beyond a peer's tolerance (penalised)
  std::uint64_t invalid = 0;                  // open failed: bad signature / unknown signer / other
  std::uint64_t malformed = 0;                // undecodable envelopes and malformed messages
  std::uint64_t stale = 0;                    // open failed: outside freshness window
  std::uint64_t rejected = 0;                 // opened but refused by the engine or the core
  std::uint64_t forwarded = 0;                // Push sends
  std::uint64_t rate_limited_peer = 0;        // messages dropped by the per-peer limit
  std::uint64_t rate_limited_origin = 0;      // events queued by the per-origin limit
  std::uint64_t origin_dropped = 0;           // queued events dropped (queue full)
  std::uint64_t origin_dropped_unopened = 0;  // of those, dropped before opening (peek)
  std::uint64_t from_quarantined = 0;         // events of quarantined origins (dropped)
  std::uint64_t out_of_window = 0;            // seq beyond the out-of-order window: refused
  std::uint64_t equivocations = 0;            // detected here (core or engine)
  std::uint64_t proofs_requested = 0;         // ProofRequest actions returned
  std::uint64_t proofs_unbuildable = 0;       // detected, but an offending envelope is not stored
  std::uint64_t proofs_suppressed = 0;        // own proof not published: a valid one came first
  std::uint64_t proofs_received = 0;
  std::uint64_t proofs_valid = 0;
  std::uint64_t proofs_invalid = 0;
  std::uint64_t quarantines = 0;  // origins quarantined by this node (detected or proven)
  std::uint64_t vectors_sent = 0;
  std::uint64_t vectors_received = 0;
  std::uint64_t requests_sent = 0;
  std::uint64_t requests_received = 0;
  std::uint64_t requests_served = 0;  // answered with at least one envelope
  std::uint64_t envelopes_served = 0;
  std::uint64_t responses_received = 0;
  std::uint64_t events_from_sync = 0;  // new events that arrived in RangeResponses
  std::uint64_t disconnects = 0;
  std::uint64_t refused_banned = 0;  // peer came up while banned
  std::uint64_t restored = 0;
  std::uint64_t forgotten = 0;
  std::uint64_t archive_misses = 0;  // stored events whose envelope the archive did not return
  // gauges
  std::uint64_t peers = 0;
  std::uint64_t seen_size = 0;
  std::uint64_t store_size = 0;
  std::uint64_t origins = 0;
  std::uint64_t deferred = 0;
};

// Read-only view of one peer for `meshctl peers` and tests.
struct PeerInfo {
  PeerId peer = 0;
  bool connected = false;
  double penalty = 0;  // current (decayed) penalty; disconnect at >= score_threshold
  TimeMs banned_until = 0;
  std::uint32_t bans = 0;
};

class Node {
 public:
  // Fails with config.validate()'s error (a start-up error). With an `archive` (see
  // meshd/core/archive.hpp) the store keeps envelope bytes there instead of in memory; it must
  // outlive the Node.
  static Result<Node> create(const Config& config, trust::Engine& engine, EventOpener& opener,
                             Rng& rng, EnvelopeArchive* archive = nullptr);
  ~Node();
  Node(Node&&) noexcept;
  Node& operator=(Node&&) noexcept;

  // A connection to `peer` is established (authenticated by the transport). Sends our
  // version vector. If the peer is banned or max_peers is reached: a Disconnect instead.
  void on_peer_up(PeerId peer, TimeMs now, Actions& out);
  // The connection is gone; its outstanding requests are dropped, its ban state is kept.
  void on_peer_down(PeerId peer, TimeMs now, Actions& out);
  // One message from a connected peer (messages from peers not connected are ignored and
  // counted in messages_ignored: in-flight messages after a disconnect are normal).
  void on_message(PeerId peer, const Message& message, TimeMs now, Actions& out);
  // The same in two steps, for a driver that refuses a message over the per-peer limit
  // before it decodes it (cheap rejection first): admit() takes one of the peer's tokens and
  // returns true (then pass the decoded message to on_admitted_message), or counts the message
  // (rate_limited_peer, or messages_ignored for a peer not connected), scores the peer for it
  // and returns false.
  bool admit(PeerId peer, TimeMs now, Actions& out);
  void on_admitted_message(PeerId peer, const Message& message, TimeMs now, Actions& out);
  // The driver's own receive limit (e.g. a transport byte budget) dropped one message of
  // `peer` before it got here: counted and scored like a message over the per-peer limit.
  void on_rate_dropped(PeerId peer, TimeMs now, Actions& out);
  // An event this node signed (claim, retraction, operator decision entered here, or the
  // proof built from a ProofRequest). Opened like any event (errors returned, nothing
  // sent), applied, persisted and pushed to every peer.
  Result<void> on_local_event(const Envelope& envelope, TimeMs now, Actions& out);
  // Timers: anti-entropy, store expiry, seen-set rotation, deferred events, delayed proofs,
  // the engine's expiry and budget work. Call at or after Actions::next_deadline.
  void tick(TimeMs now, Actions& out);
  // After a restart: the envelopes the driver persisted (any order). Opened (open_evidence:
  // old events are fine, expired claims are rejected by the engine), applied, stored, marked
  // seen and held. Nothing is sent or persisted; block changes are returned.
  void restore(std::span<const Envelope> envelopes, TimeMs now, Actions& out);

  // ---- The engine's other inputs. Block changes go to out.blocks, in order. ----

  // A peer's failure domain, from its certificate, before its claims arrive.
  void register_origin(const trust::NodeId& node, const trust::DomainId& domain, TimeMs now,
                       Actions& out);
  // Replaces the node-local protected list (config, own addresses, fleet peers).
  void set_protected(std::vector<trust::ProtectedPrefix> list, TimeMs now, Actions& out);
  // New policy (SIGHUP). Invalid params change nothing and return the engine's error.
  Result<void> set_params(const trust::Params& params, TimeMs now, Actions& out);
  // After a restart, before restore(): the trust ledger the driver persisted.
  void restore_ledger(trust::TrustLedger ledger, TimeMs now, Actions& out);
  // This node's own sensor confirms (corroboration) or contradicts (benign evidence, e.g. an
  // operator-approved flow) the claims on `prefix`: feedback for the origins that made them.
  void on_local_corroboration(const Prefix& prefix, TimeMs now, Actions& out);
  void on_local_contradiction(const Prefix& prefix, TimeMs now, Actions& out);
  // This node's benign usage evidence moved for `prefix` (or, recheck_usage, anywhere):
  // claims on overlapping targets are checked against it again.
  void on_usage_changed(const Prefix& prefix, TimeMs now, Actions& out);
  void recheck_usage(TimeMs now, Actions& out);

  // ---- The engine's state, read-only (trust::Engine's queries of the same names). ----
  trust::Decision decide(const Prefix& prefix, TimeMs now) const;
  trust::Explanation explain(const Prefix& prefix, TimeMs now) const;
  std::vector<trust::Explanation> explain_overlapping(const Prefix& prefix, TimeMs now) const;
  std::vector<trust::EnforcedBlock> enforced() const;  // sorted by prefix
  std::optional<trust::EnforcedBlock> enforced(const Prefix& prefix) const;
  const trust::TrustLedger& ledger() const;
  const trust::EngineStats& engine_stats() const;

  // Optional cache hints for a driver that runs many nodes in one process and knows which
  // node runs next (the simulator): fetch the node's hot state, and what on_message(message)
  // is about to touch (peer table, seen-set slots; this computes the event id once more),
  // into the CPU cache ahead of the call. They change no state and no behaviour.
  void prefetch() const;
  void prefetch(const Message& message) const;

  // Convenience forms returning a fresh Actions (tests, low-rate callers).
  Actions on_peer_up(PeerId peer, TimeMs now);
  Actions on_peer_down(PeerId peer, TimeMs now);
  Actions on_message(PeerId peer, const Message& message, TimeMs now);
  Actions tick(TimeMs now);

  // The node's next deadline (same as the last Actions::next_deadline).
  TimeMs next_deadline() const;
  const Stats& stats() const;
  const Config& config() const;
  // Max contiguous seq held for `origin` (0 if unknown).
  std::uint64_t contiguous_seq(std::string_view origin) const;
  // The full version vector (sorted by origin).
  VersionVector version_vector();
  std::vector<PeerInfo> peers(TimeMs now) const;
  std::optional<PeerInfo> peer(PeerId peer, TimeMs now) const;
  bool seen(const EventId& id) const;
  std::size_t store_size() const;

 private:
  struct Impl;
  explicit Node(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshd::core

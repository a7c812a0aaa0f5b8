// Internal state of meshd::core::Node, shared by node*.cpp. Not a public header.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "meshd/common/token_bucket.hpp"
#include "meshd/core/detail/id_set.hpp"
#include "meshd/core/node.hpp"

namespace meshd::core::detail {

enum class Source : std::uint8_t { push, sync, local, restore };

inline constexpr TimeMs kUnset = INT64_MIN;

inline constexpr std::uint32_t kNoSlot = UINT32_MAX;

// 24 bytes: a node holds one per stored event (100k and more). The envelope itself is not
// here but in Node::Impl::envelopes (`slot`): without an archive every stored event has one;
// with an archive only those of the latest call, not persisted yet (kNoSlot once released:
// read back from the archive).
struct StoredEvent {
  std::uint64_t seq = 0;
  TimeMs expires_at = 0;
  std::uint32_t slot = kNoSlot;
  EventKind kind = EventKind::claim;
};
static_assert(sizeof(StoredEvent) == 24, "StoredEvent grew");

// A valid event over its origin's rate limit, waiting for a token.
struct Deferred {
  EventId id{};
  Envelope envelope;
  SignedEvent event;
  PeerId from = 0;
  bool has_from = false;
  Source source = Source::push;
};

// Rarely used per-origin state, allocated on first use to keep OriginState small (a node
// tracks every origin of the fleet).
struct OriginExtra {
  std::deque<Deferred> deferred;
  std::optional<ProofRequest> pending_proof;  // own proof waiting for its jittered time
  TimeMs proof_due = 0;
  TimeMs proved_until = 0;            // a valid proof against this origin is known until then
  std::uint64_t requested_until = 0;  // an outstanding sync request covers up to this seq
  TimeMs requested_at = 0;
  TimeMs stalled_since = kUnset;  // an event beyond the window was refused, contiguous then:
  std::uint64_t stalled_at = 0;
};

struct OriginState {
  std::string id;
  std::uint64_t contiguous = 0;        // every seq in [1, contiguous] is held
  std::vector<std::uint64_t> above;    // held seqs > contiguous + 1, ascending
  std::vector<StoredEvent> store;      // ascending seq
  TokenBucket tokens;                  // per-origin rate limit (Impl::origin_rate)
  TimeMs quarantined_until = 0;        // this core quarantined the origin (engine) until then
  std::uint64_t log_gen = 0;           // gen of this origin's latest entry in Impl::vv_log
  std::unique_ptr<OriginExtra> extra;  // rare state (queues, proofs, sync bookkeeping)

  OriginExtra& ext() {
    if (!extra) extra = std::make_unique<OriginExtra>();
    return *extra;
  }
  TimeMs proved_until() const { return extra ? extra->proved_until : 0; }
};

// Origin id -> index into Node::Impl::origins: open addressing over (hash, index) words, so a
// lookup costs one probe and one string compare instead of a node-based hash map walk.
class OriginIndex {
 public:
  static constexpr std::uint32_t kMissing = UINT32_MAX;
  // `name_of(idx)` returns the id stored at index idx.
  template <class NameOf>
  std::uint32_t find(std::string_view id, const NameOf& name_of) const {
    if (slots_.empty()) return kMissing;
    return find(hash(id), id, name_of);
  }
  // `idx` must not be in the table yet.
  void insert(std::string_view id, std::uint32_t idx) {
    if ((size_ + 1) * 10 > slots_.size() * 7) grow();
    place(hash(id), idx);
    ++size_;
  }
  std::size_t size() const { return size_; }

  // Cache hints for a lookup of `id` that comes a few steps later (a vector's entries are
  // looked up one after another, each a miss into the slots and then into the record):
  // prefetch_slot() fetches the home slot; prefetch_record() reads it (fetched earlier by
  // prefetch_slot) and passes the index it holds, if its tag matches, to `fetch(idx)`. They
  // change nothing.
  void prefetch_slot(std::uint32_t tag) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[tag & mask_]);
  }
  template <class Fetch>
  void prefetch_record(std::uint32_t tag, const Fetch& fetch) const {
    if (slots_.empty()) return;
    const std::uint64_t s = slots_[tag & mask_];
    if (s != 0 && static_cast<std::uint32_t>(s >> 32) == tag)
      fetch(static_cast<std::uint32_t>(s) - 1);
  }
  // find() with the tag computed by hash() beforehand.
  template <class NameOf>
  std::uint32_t find(std::uint32_t tag, std::string_view id, const NameOf& name_of) const {
    if (slots_.empty()) return kMissing;
    for (std::size_t i = tag & mask_;; i = (i + 1) & mask_) {
      const std::uint64_t s = slots_[i];
      if (s == 0) return kMissing;
      const auto idx = static_cast<std::uint32_t>(s) - 1;
      if (static_cast<std::uint32_t>(s >> 32) == tag && name_of(idx) == id) return idx;
    }
  }

  static std::uint32_t hash(std::string_view id) {
    std::uint64_t h = 1469598103934665603ULL;  // FNV-1a with a final mix
    for (unsigned char c : id) h = (h ^ c) * 1099511628211ULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return static_cast<std::uint32_t>(h >> 32);
  }

 private:
  void place(std::uint32_t tag, std::uint32_t idx) {
    for (std::size_t i = tag & mask_;; i = (i + 1) & mask_) {
      if (slots_[i] == 0) {
        slots_[i] = (static_cast<std::uint64_t>(tag) << 32) | (static_cast<std::uint64_t>(idx) + 1);
        return;
      }
    }
  }
  void grow() {
    std::vector<std::uint64_t> old;
    old.swap(slots_);
    const std::size_t n = old.empty() ? 16 : old.size() * 2;
    slots_.assign(n, 0);
    mask_ = n - 1;
    for (std::uint64_t s : old) {
      if (s != 0) place(static_cast<std::uint32_t>(s >> 32), static_cast<std::uint32_t>(s) - 1);
    }
  }
  std::vector<std::uint64_t> slots_;  // 0 = empty, else (tag << 32) | (index + 1)
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

inline constexpr std::uint32_t kNoOrigin = UINT32_MAX;

struct Outstanding {
  std::uint32_t origin = kNoOrigin;  // kNoOrigin: an origin this node had never heard of
  std::uint64_t from = 0;
  std::uint64_t to = 0;
  TimeMs sent_at = 0;
  std::uint64_t theirs = 0;    // the peer's advertised max contiguous seq (to continue from)
  std::string unknown_origin;  // the name, when origin == kNoOrigin (not interned: a peer
                               // must not make us allocate state for names it invents)
};

struct PeerState {
  // Hot: touched by every message (kept together on one cache line).
  PeerId id = 0;
  bool connected = false;
  TokenBucket tokens;  // per-peer rate limit (Impl::peer_rate)
  TimeMs dup_window_start = 0;
  double dups = 0;                  // duplicates pushed in the window
  std::uint64_t dup_news_base = 0;  // stats.events_new at the start of the PREVIOUS window
  std::uint64_t dup_news_mark = 0;  // stats.events_new at the start of this window
  // Cold.
  double penalty = 0;
  TimeMs penalty_at = 0;
  std::uint32_t bans = 0;
  TimeMs banned_until = 0;
  TimeMs last_vv_reply = INT64_MIN / 2;
  std::uint64_t vv_sent_gen = 0;  // Impl::vv_gen when we last sent this peer a vector
  // The peer's last vector, while not all of its entries could be requested yet (request
  // limits): the rest is requested as answers come in.
  std::shared_ptr<const std::vector<VersionEntry>> wants;
  std::size_t wants_pos = 0;
  std::vector<Outstanding> outstanding;  // oldest first; few (max_outstanding_requests)
  // Penalty totals by cause, for the disconnect reason.
  double by_invalid = 0, by_malformed = 0, by_rate = 0, by_dup = 0;
};

// Packed to 20 bytes (4-byte aligned; x86 reads the unaligned 8-byte fields at full speed):
// one per stored event, in the expiry heap.
struct __attribute__((packed, aligned(4))) ExpiryEntry {
  TimeMs at = 0;
  std::uint32_t origin = 0;
  std::uint64_t seq = 0;
  bool operator>(const ExpiryEntry& o) const { return at > o.at; }
};
static_assert(sizeof(ExpiryEntry) == 20, "ExpiryEntry grew");

enum class Cause : std::uint8_t { invalid, malformed, rate, duplicate };

// Appends a send, constructing the message in place (also avoids a GCC 12 false
// -Wmaybe-uninitialized on moving a temporary variant).
template <class M>
void emit(Actions& out, PeerId peer, M&& m) {
  Send& s = out.sends.emplace_back();
  s.peer = peer;
  s.message.template emplace<std::decay_t<M>>(std::forward<M>(m));
}

}  // namespace meshd::core::detail

namespace meshd::core {

// Appends the engine's block changes to an Actions list, in order.
inline void append(std::vector<trust::BlockChange>& to, std::vector<trust::BlockChange>&& from) {
  if (from.empty()) return;
  if (to.empty()) {
    to = std::move(from);
    return;
  }
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

using detail::Cause;
using detail::Deferred;
using detail::emit;
using detail::ExpiryEntry;
using detail::kNoOrigin;
using detail::kUnset;
using detail::OriginExtra;
using detail::OriginIndex;
using detail::OriginState;
using detail::Outstanding;
using detail::PeerState;
using detail::Source;
using detail::StoredEvent;

struct Node::Impl {
  Impl(const Config& c, trust::Engine& e, EventOpener& o, Rng& r, EnvelopeArchive* a)
      : config(c), engine(e), opener(o), rng(r), seen(c.seen_capacity, c.seen_ttl_ms), archive(a) {}

  // Hot per message first: counters, the peer table, the seen-set.
  Stats stats;
  std::vector<PeerId> peer_ids;  // parallel to `peers`: a compact array to scan per message
  std::vector<PeerState> peers;
  Config config;
  trust::Engine& engine;
  EventOpener& opener;
  Rng& rng;

  detail::SeenSet seen;
  detail::OriginIndex origin_index;
  std::vector<OriginState> origins;
  std::size_t connected_count = 0;
  // The engine's next deadline, refreshed after every call that may change it (the per-message
  // duplicate path does not touch the engine, so it does not pay for the query).
  TimeMs engine_deadline = kNoDeadline;
  bool engine_dirty = true;
  std::vector<ExpiryEntry> expiry;    // min-heap on `at`
  TimeMs expiry_front = kNoDeadline;  // expiry.front().at, cached off the heap's cache line
  std::size_t stored = 0;
  std::vector<std::uint32_t> deferred_origins;  // origins with a non-empty deferred queue
  std::size_t deferred_total = 0;
  std::vector<std::uint32_t> proof_origins;  // origins with a pending own proof
  TimeMs next_anti_entropy = kNoDeadline;
  // Change log of contiguous marks: (gen, origin) in gen order. An origin's superseded
  // entries are compacted away, so the log stays <= 2x the number of origins.
  std::uint64_t vv_gen = 0;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> vv_log;
  TimeMs next_full_vector = kNoDeadline;
  bool ae_idle = false;        // next_anti_entropy is only the full-vector backstop
  std::uint64_t idle_gen = 0;  // vv_gen when the rounds went idle
  TimeMs next_deadline = kNoDeadline;
  std::vector<PeerState*> scratch_peers;
  std::size_t nonzero_origins = 0;  // origins with contiguous > 0 (entries of our vector)
  // Optional: where stored envelopes live once the driver persisted them (archive.hpp).
  EnvelopeArchive* archive = nullptr;
  // (origin, seq) stored during the latest call: their envelopes stay in memory until the
  // driver has persisted that call's actions (its next call into the Node).
  std::vector<std::pair<std::uint32_t, std::uint64_t>> unreleased;
  // Envelopes of stored events, addressed by StoredEvent::slot; freed slots are reused.
  std::vector<Envelope> envelopes;
  std::vector<std::uint32_t> free_slots;
  std::uint32_t add_envelope(const Envelope& env);
  void drop_envelope(StoredEvent& s);
  const Envelope& envelope_at(const StoredEvent& s) const {
    static const Envelope kNull;
    return s.slot == detail::kNoSlot ? kNull : envelopes[s.slot];
  }
  std::vector<std::uint64_t> scratch_seqs;
  std::vector<Envelope> scratch_envelopes;

  // node.cpp: messages and events
  // The per-peer limit: false = not connected (counted) or over the limit (counted, scored).
  bool admit(PeerState* p, TimeMs now, Actions& out);
  // A message (or a dropped frame) from `peer` arrives: counted; its peer state, or nullptr
  // (counted as ignored) when the peer is unknown or no longer connected.
  PeerState* receive_from(PeerId peer);
  void dispatch(PeerState& p, const Message& message, TimeMs now, Actions& out);
  void ingest(PeerState* from, const Envelope& env, Source src, TimeMs now, Actions& out);
  // True if `envelope` names an origin whose full queue would drop it after opening.
  bool sheds_unopened(const std::string& envelope, TimeMs now);
  void process(PeerState* from, const EventId& id, const Envelope& env, SignedEvent&& ev,
               Source src, TimeMs now, Actions& out);
  void apply(PeerState* from, const EventId& id, const Envelope& env, const SignedEvent& ev,
             std::uint32_t oi, Source src, TimeMs now, Actions& out);
  void accept(PeerState* from, const EventId& id, const Envelope& env, const SignedEvent& ev,
              std::uint32_t oi, Source src, TimeMs now, Actions& out);
  void forward(PeerState* from, const Envelope& env, Actions& out);
  std::uint32_t intern(const std::string& origin);
  const OriginState* find_origin(std::string_view origin) const;
  std::uint32_t origin_of(std::string_view origin) const;
  void finish(TimeMs now, Actions& out);
  TimeMs compute_deadline();
  // After an engine input outside the gossip path: the engine's deadline may have moved.
  // Only the deadline: the bookkeeping of finish() belongs to gossip inputs, and leaving it out
  // keeps these calls free of side effects on the core's own schedule.
  void engine_input_done(Actions& out) {
    engine_dirty = true;
    next_deadline = compute_deadline();
    out.next_deadline = next_deadline;
  }

  // node_store.cpp: held seqs, store, per-origin rate limit
  bool held(const OriginState& o, std::uint64_t seq) const;
  void mark_held(OriginState& o, std::uint64_t seq);
  // Whether an event at `seq` (beyond the out-of-order window) is taken now, sliding the
  // window over the gaps below it; false = refuse it, anti-entropy fills the gaps first.
  bool beyond_window(OriginState& o, std::uint64_t seq, Source src, TimeMs now);
  void slide_window(OriginState& o, std::uint64_t seq);
  const StoredEvent* find_stored(const OriginState& o, std::uint64_t seq) const;
  // The envelope of a stored event: in memory, or read back from the archive (null if the
  // archive does not have it, counted in archive_misses).
  Envelope envelope_of(const OriginState& o, const StoredEvent& s);
  // Appends one entry per seq (each held in o.store, ascending): its envelope or null.
  void envelopes_of(const OriginState& o, std::span<const std::uint64_t> seqs,
                    std::vector<Envelope>& out);
  // Archive mode: drops the in-memory envelopes of the previous call (persisted by now).
  void release_persisted();
  TimeMs store(std::uint32_t oi, const SignedEvent& ev, const Envelope& env, TimeMs now,
               Actions& out);
  void expire_store(TimeMs now, Actions& out);
  void evict_top(Actions& out);
  bool take_origin_token(OriginState& o, TimeMs now);
  // How many more events o's rate-limit queue takes (its own bound and the total's): 0 means
  // defer() drops the next one.
  std::size_t queue_room(const OriginState& o) const;
  // Bucket shapes from the config, in tokens per ms.
  TokenRate origin_rate() const {
    return {.per_tick = config.origin_rate_per_min / 60000.0, .burst = config.origin_burst};
  }
  TokenRate peer_rate() const {
    return {.per_tick = config.peer_rate_per_s / 1000.0, .burst = config.peer_burst};
  }
  void defer(PeerState* from, const EventId& id, const Envelope& env, SignedEvent&& ev,
             std::uint32_t oi, Source src, TimeMs now);
  void run_deferred(TimeMs now, Actions& out);

  // node_sync.cpp: anti-entropy
  std::shared_ptr<const std::vector<VersionEntry>> vector_snapshot() const;
  void send_vector(PeerState& p, Actions& out);
  void note_advanced(OriginState& o, std::uint32_t oi);
  std::shared_ptr<const std::vector<VersionEntry>> delta_since(std::uint64_t gen);
  void anti_entropy_round(TimeMs now, Actions& out);
  void schedule_anti_entropy(TimeMs now);
  TimeMs jittered(TimeMs now, DurationMs period);
  // The backstop is never more frequent than the delta rounds.
  DurationMs full_period() const {
    return std::max(config.anti_entropy_full_period_ms, config.anti_entropy_period_ms);
  }
  void on_vector(PeerState& p, const VersionVector& vv, TimeMs now, Actions& out);
  void on_request(PeerState& p, const RangeRequest& rq, TimeMs now, Actions& out);
  void on_response(PeerState& p, const RangeResponse& rs, TimeMs now, Actions& out);
  bool request(PeerState& p, std::uint32_t oi, const std::string& origin, std::uint64_t from,
               std::uint64_t to, std::uint64_t theirs, TimeMs now, Actions& out);
  void pull_wants(PeerState& p, TimeMs now, Actions& out);
  std::size_t request_gaps(PeerState& p, const std::string& origin, std::uint64_t theirs,
                           TimeMs now, Actions& out);
  void release_requests(PeerState& p);

  // node_peers.cpp: peers, scoring, per-peer limits
  PeerState* find_peer(PeerId id);
  const PeerState* find_peer(PeerId id) const;
  PeerState& peer_slot(PeerId id);
  void set_connected(PeerState& p, bool connected);
  void penalize(PeerState& p, double amount, Cause cause, TimeMs now, Actions& out);
  double decayed_penalty(const PeerState& p, TimeMs now) const;
  bool take_peer_token(PeerState& p, TimeMs now);
  void note_duplicate(PeerState& p, Source src, TimeMs now, Actions& out);
  void open_failed(PeerState* from, const Error& e, TimeMs now, Actions& out);
  void prune_peers(TimeMs now);
  PeerInfo info(const PeerState& p, TimeMs now) const;

  // node_proof.cpp: misbehaviour
  Result<trust::Origin> verify_proof(const ProofBody& proof, TimeMs now);
  void on_proof(PeerState* from, const EventId& id, const Envelope& env, const SignedEvent& ev,
                std::uint32_t oi, Source src, TimeMs now, Actions& out);
  void detected(std::uint32_t accused, MisbehaviourKind kind, std::vector<Envelope> evidence,
                std::string detail, bool engine_quarantined, TimeMs now, Actions& out);
  void on_engine_misbehaviour(const trust::MisbehaviourRecord& rec, const Envelope& current,
                              const SignedEvent& ev, TimeMs now, Actions& out);
  void run_proofs(TimeMs now, Actions& out);
  void quarantine(std::uint32_t oi, TimeMs now, Actions& out);
};

}  // namespace meshd::core

// meshd/core Node: public entry points and the event path (dedup -> open -> decide ->
// store -> forward). Anti-entropy is in node_sync.cpp, peers and scoring in node_peers.cpp,
// the store and rate limits in node_store.cpp, misbehaviour proofs in node_proof.cpp.
#include "meshd/core/node.hpp"

#include <algorithm>
#include <utility>

#include "meshd/core/detail/node_impl.hpp"

namespace meshd::core {
namespace {

// The opener promises that the variant matches `kind`; a broken opener must not crash us.
bool body_matches(const SignedEvent& ev) {
  switch (ev.kind) {
    case EventKind::claim:
      return std::holds_alternative<trust::ClaimFacts>(ev.body);
    case EventKind::retraction:
      return std::holds_alternative<RetractionBody>(ev.body);
    case EventKind::operator_decision:
      return std::holds_alternative<trust::OperatorDecision>(ev.body);
    case EventKind::misbehaviour_proof:
      return std::holds_alternative<ProofBody>(ev.body);
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------- public entry points

Result<Node> Node::create(const Config& config, trust::Engine& engine, EventOpener& opener,
                          Rng& rng, EnvelopeArchive* archive) {
  if (auto ok = config.validate(); !ok) return std::unexpected(ok.error());
  return Node(std::make_unique<Impl>(config, engine, opener, rng, archive));
}

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() = default;
Node::Node(Node&&) noexcept = default;
Node& Node::operator=(Node&&) noexcept = default;

void Node::on_message(PeerId peer, const Message& message, TimeMs now, Actions& out) {
  Impl& I = *impl_;
  if (!I.unreleased.empty()) I.release_persisted();
  ++I.stats.messages_received;
  PeerState* p = I.find_peer(peer);
  if (I.admit(p, now, out)) I.dispatch(*p, message, now, out);
  I.finish(now, out);
}

bool Node::admit(PeerId peer, TimeMs now, Actions& out) {
  Impl& I = *impl_;
  if (!I.unreleased.empty()) I.release_persisted();
  PeerState* p = I.find_peer(peer);
  if (I.admit(p, now, out)) return true;
  ++I.stats.messages_received;  // admitted ones are counted by on_admitted_message
  I.finish(now, out);
  return false;
}

void Node::on_admitted_message(PeerId peer, const Message& message, TimeMs now, Actions& out) {
  Impl& I = *impl_;
  if (PeerState* p = I.receive_from(peer)) I.dispatch(*p, message, now, out);
  I.finish(now, out);
}

void Node::on_rate_dropped(PeerId peer, TimeMs now, Actions& out) {
  Impl& I = *impl_;
  if (PeerState* p = I.receive_from(peer)) {
    ++I.stats.rate_limited_peer;
    I.penalize(*p, I.config.penalty_rate_limit, Cause::rate, now, out);
  }
  I.finish(now, out);
}

PeerState* Node::Impl::receive_from(PeerId peer) {
  if (!unreleased.empty()) release_persisted();
  ++stats.messages_received;
  PeerState* p = find_peer(peer);
  if (p != nullptr && p->connected) return p;
  ++stats.messages_ignored;
  return nullptr;
}

bool Node::Impl::admit(PeerState* p, TimeMs now, Actions& out) {
  if (p == nullptr || !p->connected) {
    ++stats.messages_ignored;
    return false;
  }
  if (!take_peer_token(*p, now)) {
    ++stats.rate_limited_peer;
    penalize(*p, config.penalty_rate_limit, Cause::rate, now, out);
    return false;
  }
  return true;
}

void Node::Impl::dispatch(PeerState& peer, const Message& message, TimeMs now, Actions& out) {
  PeerState* p = &peer;
  if (const auto* push = std::get_if<Push>(&message)) {
    ++stats.pushes_received;
    if (!push->envelope) {
      ++stats.malformed;
      penalize(*p, config.penalty_malformed, Cause::malformed, now, out);
    } else {
      ingest(p, push->envelope, Source::push, now, out);
    }
  } else if (const auto* vv = std::get_if<VersionVector>(&message)) {
    on_vector(*p, *vv, now, out);
  } else if (const auto* rq = std::get_if<RangeRequest>(&message)) {
    on_request(*p, *rq, now, out);
  } else if (const auto* rs = std::get_if<RangeResponse>(&message)) {
    on_response(*p, *rs, now, out);
  }
}

Result<void> Node::on_local_event(const Envelope& envelope, TimeMs now, Actions& out) {
  Impl& I = *impl_;
  if (!I.unreleased.empty()) I.release_persisted();
  if (!envelope) {
    I.finish(now, out);
    return fail(std::string(open_error::malformed), "local event: the envelope is null");
  }
  const EventId id = I.opener.event_id(*envelope);
  if (I.seen.contains(id)) {  // already known (e.g. the driver retried): nothing to do
    I.finish(now, out);
    return {};
  }
  auto ev = I.opener.open(*envelope, now);
  if (!ev) {
    I.finish(now, out);
    return std::unexpected(ev.error());
  }
  if (!body_matches(*ev) || ev->seq == 0) {
    I.finish(now, out);
    return fail(std::string(open_error::malformed),
                "local event: the opener returned a body that does not match its kind or seq 0");
  }
  I.seen.insert(id, now);
  I.process(nullptr, id, envelope, std::move(*ev), Source::local, now, out);
  I.finish(now, out);
  return {};
}

void Node::tick(TimeMs now, Actions& out) {
  Impl& I = *impl_;
  if (!I.unreleased.empty()) I.release_persisted();
  I.engine_dirty = true;
  I.seen.expire(now);
  I.expire_store(now, out);
  append(out.blocks, I.engine.tick(now));
  I.run_deferred(now, out);
  I.run_proofs(now, out);
  if (now >= I.next_anti_entropy) I.anti_entropy_round(now, out);
  I.prune_peers(now);
  I.finish(now, out);
}

void Node::restore(std::span<const Envelope> envelopes, TimeMs now, Actions& out) {
  Impl& I = *impl_;
  if (!I.unreleased.empty()) I.release_persisted();
  I.engine_dirty = true;
  struct Item {
    EventId id;
    Envelope env;
    SignedEvent ev;
  };
  std::vector<Item> items;
  items.reserve(envelopes.size());
  for (const Envelope& env : envelopes) {
    if (!env) continue;
    const EventId id = I.opener.event_id(*env);
    if (!I.seen.insert(id, now)) continue;
    auto ev = I.opener.open_evidence(*env, now);
    if (!ev || !body_matches(*ev) || ev->seq == 0) {
      ++I.stats.invalid;
      continue;
    }
    items.push_back(Item{id, env, std::move(*ev)});
  }
  // Per origin in seq order, so version vectors come out contiguous and the engine sees each
  // origin's history in the order it was issued.
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.ev.origin.node != b.ev.origin.node) return a.ev.origin.node < b.ev.origin.node;
    return a.ev.seq < b.ev.seq;
  });
  for (Item& it : items)
    I.process(nullptr, it.id, it.env, std::move(it.ev), Source::restore, now, out);
  I.finish(now, out);
}

void Node::prefetch() const {
  // The per-message fields: counters, peer table, config, seen-set (declared first in Impl).
  const char* p = reinterpret_cast<const char*>(impl_.get());
  const char* end = reinterpret_cast<const char*>(&impl_->seen + 1);
  for (; p < end; p += 64) __builtin_prefetch(p);
}

void Node::prefetch(const Message& message) const {
  const Impl& I = *impl_;
  __builtin_prefetch(I.peer_ids.data());
  for (const PeerState& p : I.peers) __builtin_prefetch(&p);
  if (const auto* push = std::get_if<Push>(&message); push != nullptr && push->envelope)
    I.seen.prefetch(I.opener.event_id(*push->envelope));
}

Actions Node::on_peer_up(PeerId peer, TimeMs now) {
  Actions a;
  on_peer_up(peer, now, a);
  return a;
}
Actions Node::on_peer_down(PeerId peer, TimeMs now) {
  Actions a;
  on_peer_down(peer, now, a);
  return a;
}
Actions Node::on_message(PeerId peer, const Message& message, TimeMs now) {
  Actions a;
  on_message(peer, message, now, a);
  return a;
}
Actions Node::tick(TimeMs now) {
  Actions a;
  tick(now, a);
  return a;
}

TimeMs Node::next_deadline() const {
  return impl_->next_deadline;
}
const Stats& Node::stats() const {
  return impl_->stats;
}
const Config& Node::config() const {
  return impl_->config;
}

std::uint64_t Node::contiguous_seq(std::string_view origin) const {
  const OriginState* o = impl_->find_origin(origin);
  return o ? o->contiguous : 0;
}

VersionVector Node::version_vector() {
  auto copy = *impl_->vector_snapshot();
  std::sort(copy.begin(), copy.end(),
            [](const VersionEntry& a, const VersionEntry& b) { return a.origin < b.origin; });
  return VersionVector{std::make_shared<const std::vector<VersionEntry>>(std::move(copy))};
}

std::vector<PeerInfo> Node::peers(TimeMs now) const {
  std::vector<PeerInfo> v;
  for (const PeerState& p : impl_->peers) v.push_back(impl_->info(p, now));
  return v;
}

std::optional<PeerInfo> Node::peer(PeerId peer, TimeMs now) const {
  const PeerState* p = impl_->find_peer(peer);
  if (p == nullptr) return std::nullopt;
  return impl_->info(*p, now);
}

bool Node::seen(const EventId& id) const {
  return impl_->seen.contains(id);
}
std::size_t Node::store_size() const {
  return impl_->stored;
}

// ---------------------------------------------------------------- the event path

void Node::Impl::ingest(PeerState* from, const Envelope& env, Source src, TimeMs now,
                        Actions& out) {
  const EventId id = opener.event_id(*env);
  // Dedup BEFORE opening: opening is the expensive part (decode + Ed25519).
  if (!seen.insert(id, now)) {
    ++stats.duplicates;
    if (from != nullptr) note_duplicate(*from, src, now, out);
    return;
  }
  if (src != Source::local && sheds_unopened(*env, now)) {
    ++stats.origin_dropped;
    ++stats.origin_dropped_unopened;
    seen.erase(id);
    return;
  }
  auto ev = opener.open(*env, now);
  if (!ev) {
    open_failed(from, ev.error(), now, out);
    return;
  }
  if (!body_matches(*ev) || ev->seq == 0 || ev->origin.node.empty()) {
    open_failed(from,
                Error{std::string(open_error::malformed),
                      "opener returned an event without origin, with seq 0 or a body that does "
                      "not match its kind"},
                now, out);
    return;
  }
  process(from, id, env, std::move(*ev), src, now, out);
}

bool Node::Impl::sheds_unopened(const std::string& envelope, TimeMs now) {
  // Exactly the events process() would hand to defer() to be dropped there: a queue that is
  // not empty (so no token is taken) and full. Only then is the envelope peeked at (a decode
  // that open() repeats), so events are not decoded twice while queues merely hold some.
  auto full = [&](const OriginState& o) {
    return o.extra && !o.extra->deferred.empty() && queue_room(o) == 0;
  };
  if (std::none_of(deferred_origins.begin(), deferred_origins.end(),
                   [&](std::uint32_t oi) { return full(origins[oi]); }))
    return false;
  const auto named = opener.peek(envelope);
  if (!named || named->exempt) return false;
  const std::uint32_t oi = origin_of(named->origin);
  if (oi == kNoOrigin || !full(origins[oi])) return false;
  // A seq already held goes on to be opened (a second body under it is an equivocation to
  // detect), and so does a quarantined origin's.
  const OriginState& o = origins[oi];
  return !held(o, named->seq) && o.quarantined_until <= now;
}

void Node::Impl::process(PeerState* from, const EventId& id, const Envelope& env, SignedEvent&& ev,
                         Source src, TimeMs now, Actions& out) {
  const std::uint32_t oi = intern(ev.origin.node);
  OriginState& o = origins[oi];
  if (held(o, ev.seq)) {
    // A different envelope for a seq we hold: the same body signed again (a duplicate), or
    // a second body under the same seq (equivocation, provable with both envelopes).
    const StoredEvent* s = find_stored(o, ev.seq);
    const Envelope mine = s != nullptr ? envelope_of(o, *s) : nullptr;
    if (mine && *mine != *env) {
      auto other = opener.open_evidence(*mine, now);
      if (other && other->origin.node == ev.origin.node && other->seq == ev.seq &&
          other->body_digest != ev.body_digest) {
        ++stats.equivocations;
        detected(oi, MisbehaviourKind::equivocation, {mine, env},
                 "two different bodies signed by " + ev.origin.node + " under seq " +
                     std::to_string(ev.seq),
                 false, now, out);
        return;
      }
    }
    ++stats.duplicates;
    if (from != nullptr) note_duplicate(*from, src, now, out);
    return;
  }
  if (ev.seq > o.contiguous + config.out_of_order_window && !beyond_window(o, ev.seq, src, now)) {
    // Too far ahead of what we hold: refused, not relayed, and forgotten by the seen-set, so
    // it is considered again once anti-entropy has filled the gaps below it (they are fetched
    // in order). Giving the gaps up at once would lose an honest origin's burst for good.
    ++stats.out_of_window;
    seen.erase(id);
    return;
  }
  // A proven misbehaver's events are dropped here, not relayed: they have no influence and
  // relaying them only spends the fleet's bandwidth. Operators are never quarantined.
  if (ev.kind != EventKind::operator_decision && o.quarantined_until > now) {
    ++stats.from_quarantined;
    mark_held(o, ev.seq);
    return;
  }
  if ((src == Source::push || src == Source::sync) && ev.kind != EventKind::operator_decision) {
    const bool queued = o.extra && !o.extra->deferred.empty();
    if (queued || !take_origin_token(o, now)) {
      defer(from, id, env, std::move(ev), oi, src, now);
      return;
    }
  }
  apply(from, id, env, ev, oi, src, now, out);
}

void Node::Impl::apply(PeerState* from, const EventId& id, const Envelope& env,
                       const SignedEvent& ev, std::uint32_t oi, Source src, TimeMs now,
                       Actions& out) {
  engine_dirty = true;
  switch (ev.kind) {
    case EventKind::claim: {
      trust::Outcome r = engine.on_claim(std::get<trust::ClaimFacts>(ev.body), ev.body_digest, now);
      append(out.blocks, std::move(r.changes));
      switch (r.status) {
        case trust::ClaimStatus::misbehaviour:
          mark_held(origins[oi], ev.seq);
          if (r.misbehaviour) on_engine_misbehaviour(*r.misbehaviour, env, ev, now, out);
          return;
        case trust::ClaimStatus::duplicate:
          mark_held(origins[oi], ev.seq);
          ++stats.duplicates;
          return;
        case trust::ClaimStatus::rejected:
          ++stats.rejected;
          if (engine.ledger().quarantined(ev.origin.node, now)) {
            origins[oi].quarantined_until =
                std::max(origins[oi].quarantined_until,
                         engine.ledger().find(ev.origin.node)->quarantine_until);
            mark_held(origins[oi], ev.seq);
            return;
          }
          // Refused by THIS node's policy (e.g. a node-local protected prefix, expiry): still
          // a valid signed event that other nodes decide on for themselves.
          break;
        default:
          break;
      }
      break;
    }
    case EventKind::retraction: {
      const auto& r = std::get<RetractionBody>(ev.body);
      if (r.claim_seq != 0) {
        append(out.blocks, engine.on_retraction(ev.origin.node, r.claim_seq, now).changes);
      }
      if (r.prefix) {
        // trust::Engine retracts by seq only: find this origin's stored claims on the prefix.
        std::vector<std::uint64_t> claim_seqs;
        for (const StoredEvent& s : origins[oi].store)
          if (s.kind == EventKind::claim) claim_seqs.push_back(s.seq);
        std::vector<Envelope> envs;
        envelopes_of(origins[oi], claim_seqs, envs);
        std::vector<std::uint64_t> seqs;
        for (std::size_t k = 0; k < claim_seqs.size(); ++k) {
          if (!envs[k]) continue;
          auto c = opener.open_evidence(*envs[k], now);
          if (c && std::get_if<trust::ClaimFacts>(&c->body) &&
              std::get<trust::ClaimFacts>(c->body).prefix == *r.prefix) {
            seqs.push_back(claim_seqs[k]);
          }
        }
        for (std::uint64_t seq : seqs) {
          append(out.blocks, engine.on_retraction(ev.origin.node, seq, now).changes);
        }
      }
      break;
    }
    case EventKind::operator_decision: {
      auto r = engine.on_operator_decision(std::get<trust::OperatorDecision>(ev.body), now);
      if (r) {
        append(out.blocks, std::move(*r));
      } else {
        ++stats.rejected;  // e.g. a block on a prefix protected here; other nodes decide
      }
      break;
    }
    case EventKind::misbehaviour_proof:
      on_proof(from, id, env, ev, oi, src, now, out);
      return;
  }
  accept(from, id, env, ev, oi, src, now, out);
}

void Node::Impl::accept(PeerState* from, const EventId& id, const Envelope& env,
                        const SignedEvent& ev, std::uint32_t oi, Source src, TimeMs now,
                        Actions& out) {
  mark_held(origins[oi], ev.seq);
  const TimeMs expires = store(oi, ev, env, now, out);
  ++stats.events_new;
  if (src == Source::sync) ++stats.events_from_sync;
  if (src == Source::restore) {
    ++stats.restored;
    return;
  }
  out.persist.push_back(Persist{id, origins[oi].id, ev.seq, ev.kind, env, expires, ev.issued_at,
                                src == Source::sync});
  forward(from, env, out);
}

void Node::Impl::forward(PeerState* from, const Envelope& env, Actions& out) {
  for (PeerState& p : peers) {
    if (!p.connected || &p == from) continue;
    emit(out, p.id, Push{env});
    ++stats.forwarded;
  }
}

std::uint32_t Node::Impl::intern(const std::string& origin) {
  const std::uint32_t found = origin_of(origin);
  if (found != kNoOrigin) return found;
  const auto idx = static_cast<std::uint32_t>(origins.size());
  origin_index.insert(origin, idx);
  {
    origins.emplace_back();
    origins.back().id = origin;
    // A quarantine the engine already holds (e.g. a ledger restored after a restart).
    if (const trust::LedgerEntry* e = engine.ledger().find(origin)) {
      origins.back().quarantined_until = e->quarantine_until;
    }
  }
  return idx;
}

const OriginState* Node::Impl::find_origin(std::string_view origin) const {
  const std::uint32_t oi = origin_of(origin);
  return oi == kNoOrigin ? nullptr : &origins[oi];
}

std::uint32_t Node::Impl::origin_of(std::string_view origin) const {
  const std::uint32_t oi = origin_index.find(
      origin, [this](std::uint32_t i) -> std::string_view { return origins[i].id; });
  return oi == OriginIndex::kMissing ? kNoOrigin : oi;
}

void Node::Impl::finish(TimeMs now, Actions& out) {
  // Something advanced while the anti-entropy rounds were idle: owe the peers a delta.
  if (ae_idle && vv_gen != idle_gen && connected_count > 0) schedule_anti_entropy(now);
  stats.peers = connected_count;
  stats.seen_size = seen.size();
  stats.store_size = stored;
  stats.origins = origins.size();
  stats.deferred = deferred_total;
  next_deadline = compute_deadline();
  out.next_deadline = next_deadline;
}

TimeMs Node::Impl::compute_deadline() {
  TimeMs d = std::min(next_anti_entropy, seen.next_rotation());
  d = std::min(d, expiry_front);
  if (engine_dirty) {
    engine_deadline = engine.next_deadline().value_or(kNoDeadline);
    engine_dirty = false;
  }
  d = std::min(d, engine_deadline);
  for (std::uint32_t oi : deferred_origins)
    d = std::min(d, origins[oi].tokens.ready_at(origin_rate(), 1));
  for (std::uint32_t oi : proof_origins) d = std::min(d, origins[oi].extra->proof_due);
  return d;
}

}  // namespace meshd::core

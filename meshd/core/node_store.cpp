// Held seqs (the version vector), the bounded store of envelopes and the per-origin rate
// limit with its queue of deferred events.
#include <algorithm>
#include <utility>

#include "meshd/core/detail/node_impl.hpp"

namespace meshd::core {

bool Node::Impl::held(const OriginState& o, std::uint64_t seq) const {
  return seq <= o.contiguous || std::binary_search(o.above.begin(), o.above.end(), seq);
}

void Node::Impl::mark_held(OriginState& o, std::uint64_t seq) {
  if (seq <= o.contiguous) return;
  if (seq != o.contiguous + 1) {
    auto it = std::lower_bound(o.above.begin(), o.above.end(), seq);
    if (it == o.above.end() || *it != seq) o.above.insert(it, seq);
    return;
  }
  if (o.contiguous == 0) ++nonzero_origins;
  o.contiguous = seq;
  std::size_t k = 0;
  while (k < o.above.size() && o.above[k] == o.contiguous + 1) {
    ++o.contiguous;
    ++k;
  }
  o.above.erase(o.above.begin(), o.above.begin() + static_cast<std::ptrdiff_t>(k));
  note_advanced(o, static_cast<std::uint32_t>(&o - origins.data()));
}

bool Node::Impl::beyond_window(OriginState& o, std::uint64_t seq, Source src, TimeMs now) {
  OriginExtra& x = o.ext();
  if (x.stalled_since == kUnset || x.stalled_at != o.contiguous) {
    x.stalled_since = now;  // the contiguous mark moved (or this is the first refusal)
    x.stalled_at = o.contiguous;
  }
  // Restored events are our own persisted history: never refused. Otherwise the gaps below
  // are given up only when anti-entropy made no progress on them for gap_give_up_ms.
  if (src != Source::restore && now - x.stalled_since < config.gap_give_up_ms) return false;
  slide_window(o, seq);
  x.stalled_since = kUnset;
  return true;
}

void Node::Impl::slide_window(OriginState& o, std::uint64_t seq) {
  // Give up on gaps more than out_of_order_window below the newest seq: nobody served them
  // for gap_give_up_ms (an honest origin's events that old are expired and forgotten
  // everywhere); an adversary only hurts its own sequence space.
  const std::uint64_t floor = seq - config.out_of_order_window;
  if (floor <= o.contiguous) return;
  if (o.contiguous == 0) ++nonzero_origins;
  o.contiguous = floor;
  auto it = std::upper_bound(o.above.begin(), o.above.end(), floor);
  o.above.erase(o.above.begin(), it);
  std::size_t k = 0;
  while (k < o.above.size() && o.above[k] == o.contiguous + 1) {
    ++o.contiguous;
    ++k;
  }
  o.above.erase(o.above.begin(), o.above.begin() + static_cast<std::ptrdiff_t>(k));
  note_advanced(o, static_cast<std::uint32_t>(&o - origins.data()));
}

const StoredEvent* Node::Impl::find_stored(const OriginState& o, std::uint64_t seq) const {
  auto it = std::lower_bound(o.store.begin(), o.store.end(), seq,
                             [](const StoredEvent& s, std::uint64_t v) { return s.seq < v; });
  return (it != o.store.end() && it->seq == seq) ? &*it : nullptr;
}

Envelope Node::Impl::envelope_of(const OriginState& o, const StoredEvent& s) {
  if (const Envelope& mine = envelope_at(s)) return mine;
  std::vector<Envelope> one;
  archive->load(o.id, std::span<const std::uint64_t>(&s.seq, 1), one);
  Envelope env = one.empty() ? nullptr : std::move(one.front());
  if (!env) ++stats.archive_misses;
  return env;
}

void Node::Impl::envelopes_of(const OriginState& o, std::span<const std::uint64_t> seqs,
                              std::vector<Envelope>& out) {
  const std::size_t base = out.size();
  if (archive == nullptr) {
    for (std::uint64_t seq : seqs) {
      const StoredEvent* s = find_stored(o, seq);
      out.push_back(s ? envelope_at(*s) : nullptr);
    }
    return;
  }
  archive->load(o.id, seqs, out);
  out.resize(base + seqs.size());  // an archive that returned too few: the rest are misses
  // Envelopes still in memory (stored during the latest call, not yet persisted) win.
  for (std::size_t k = 0; k < seqs.size(); ++k) {
    const StoredEvent* s = find_stored(o, seqs[k]);
    if (s != nullptr && s->slot != detail::kNoSlot) out[base + k] = envelope_at(*s);
    if (!out[base + k]) ++stats.archive_misses;
  }
}

void Node::Impl::release_persisted() {
  for (const auto& [oi, seq] : unreleased) {
    OriginState& o = origins[oi];
    auto it = std::lower_bound(o.store.begin(), o.store.end(), seq,
                               [](const StoredEvent& s, std::uint64_t v) { return s.seq < v; });
    if (it != o.store.end() && it->seq == seq) drop_envelope(*it);
  }
  unreleased.clear();
  // All released (archive mode): return the slot table of a big call (a restore) at once.
  if (free_slots.size() == envelopes.size()) {
    std::vector<Envelope>().swap(envelopes);
    std::vector<std::uint32_t>().swap(free_slots);
  }
}

std::uint32_t Node::Impl::add_envelope(const Envelope& env) {
  if (!free_slots.empty()) {
    const std::uint32_t slot = free_slots.back();
    free_slots.pop_back();
    envelopes[slot] = env;
    return slot;
  }
  envelopes.push_back(env);
  return static_cast<std::uint32_t>(envelopes.size() - 1);
}

void Node::Impl::drop_envelope(StoredEvent& s) {
  if (s.slot == detail::kNoSlot) return;
  envelopes[s.slot].reset();
  free_slots.push_back(s.slot);
  s.slot = detail::kNoSlot;
}

TimeMs Node::Impl::store(std::uint32_t oi, const SignedEvent& ev, const Envelope& env, TimeMs now,
                         Actions& out) {
  TimeMs life = config.store_retention_ms;
  if (const auto* c = std::get_if<trust::ClaimFacts>(&ev.body)) {
    life = std::clamp<DurationMs>(c->requested_ttl, 0, config.claim_ttl_cap_ms);
  }
  // issued_at is the origin's clock: bound it by ours so a wild value cannot pin an envelope
  // in the store for ever or expire it before it could be served.
  const TimeMs issued = std::clamp<TimeMs>(ev.issued_at, now - life, now);
  const TimeMs expires = issued + life;
  OriginState& o = origins[oi];
  auto it = std::lower_bound(o.store.begin(), o.store.end(), ev.seq,
                             [](const StoredEvent& s, std::uint64_t v) { return s.seq < v; });
  o.store.insert(it, StoredEvent{ev.seq, expires, add_envelope(env), ev.kind});
  if (archive != nullptr) unreleased.emplace_back(oi, ev.seq);
  expiry.push_back(ExpiryEntry{expires, oi, ev.seq});
  std::push_heap(expiry.begin(), expiry.end(), std::greater<>{});
  expiry_front = expiry.front().at;
  ++stored;
  while (stored > config.store_capacity) evict_top(out);
  return expires;
}

void Node::Impl::evict_top(Actions& out) {
  std::pop_heap(expiry.begin(), expiry.end(), std::greater<>{});
  const ExpiryEntry e = expiry.back();
  expiry.pop_back();
  expiry_front = expiry.empty() ? kNoDeadline : expiry.front().at;
  OriginState& o = origins[e.origin];
  auto it = std::lower_bound(o.store.begin(), o.store.end(), e.seq,
                             [](const StoredEvent& s, std::uint64_t v) { return s.seq < v; });
  if (it == o.store.end() || it->seq != e.seq) return;
  if (archive == nullptr) out.forget.push_back(opener.event_id(*envelope_at(*it)));
  drop_envelope(*it);
  o.store.erase(it);
  --stored;
  ++stats.forgotten;
}

void Node::Impl::expire_store(TimeMs now, Actions& out) {
  while (!expiry.empty() && expiry.front().at <= now) evict_top(out);
}

bool Node::Impl::take_origin_token(OriginState& o, TimeMs now) {
  return o.tokens.try_take(origin_rate(), 1, now);
}

std::size_t Node::Impl::queue_room(const OriginState& o) const {
  const std::size_t queued = o.extra ? o.extra->deferred.size() : 0;
  return std::min(config.origin_queue_max - std::min(config.origin_queue_max, queued),
                  config.deferred_total_max - std::min(config.deferred_total_max, deferred_total));
}

void Node::Impl::defer(PeerState* from, const EventId& id, const Envelope& env, SignedEvent&& ev,
                       std::uint32_t oi, Source src, TimeMs now) {
  (void)now;
  OriginState& o = origins[oi];
  if (!o.extra) o.extra = std::make_unique<OriginExtra>();
  auto& q = o.extra->deferred;
  if (queue_room(o) == 0) {
    // Dropped without marking the seq held, and forgotten by the seen-set, so a later copy
    // (anti-entropy) is considered again: honest bursts converge, floods cost one open per
    // copy and stay bounded by the per-peer limit.
    ++stats.origin_dropped;
    seen.erase(id);
    return;
  }
  if (q.empty()) deferred_origins.push_back(oi);
  q.push_back(Deferred{id, env, std::move(ev), from ? from->id : 0, from != nullptr, src});
  ++deferred_total;
  ++stats.rate_limited_origin;
}

void Node::Impl::run_deferred(TimeMs now, Actions& out) {
  for (std::size_t k = 0; k < deferred_origins.size();) {
    const std::uint32_t oi = deferred_origins[k];
    while (!origins[oi].extra->deferred.empty() && take_origin_token(origins[oi], now)) {
      Deferred d = std::move(origins[oi].extra->deferred.front());
      origins[oi].extra->deferred.pop_front();
      --deferred_total;
      OriginState& o = origins[oi];
      if (held(o, d.event.seq)) {
        ++stats.duplicates;
        continue;
      }
      if (o.quarantined_until > now) {
        ++stats.from_quarantined;
        mark_held(o, d.event.seq);
        continue;
      }
      PeerState* from = d.has_from ? find_peer(d.from) : nullptr;
      apply(from, d.id, d.envelope, d.event, oi, d.source, now, out);
    }
    if (origins[oi].extra->deferred.empty()) {
      deferred_origins[k] = deferred_origins.back();
      deferred_origins.pop_back();
    } else {
      ++k;
    }
  }
}

}  // namespace meshd::core

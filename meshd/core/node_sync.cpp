// Anti-entropy: version vectors, range requests and responses.
#include <algorithm>

#include "meshd/core/detail/node_impl.hpp"

namespace meshd::core {

// Built for each full vector (every anti_entropy_full_period_ms, and at peer-up), not kept:
// a cached copy would hold one entry per origin per node between rounds (in a simulator of
// thousands of nodes, ~40 bytes per (node, origin)), while building it is one pass over the
// origins, far cheaper than what the receiver does with it.
std::shared_ptr<const std::vector<VersionEntry>> Node::Impl::vector_snapshot() const {
  auto v = std::make_shared<std::vector<VersionEntry>>();
  v->reserve(nonzero_origins);
  for (const OriginState& o : origins) {
    if (o.contiguous > 0) v->push_back(VersionEntry{o.id, o.contiguous});
  }
  return v;
}

void Node::Impl::send_vector(PeerState& p, Actions& out) {
  emit(out, p.id, VersionVector{vector_snapshot()});
  p.vv_sent_gen = vv_gen;
  ++stats.vectors_sent;
}

void Node::Impl::note_advanced(OriginState& o, std::uint32_t oi) {
  o.log_gen = ++vv_gen;
  vv_log.emplace_back(o.log_gen, oi);
  if (vv_log.size() > 2 * origins.size() + 64) {
    // Superseded entries carry nothing a delta needs: every peer that has not seen them is
    // also owed the origin's newer entry, which stays.
    std::erase_if(vv_log, [this](const auto& e) { return origins[e.second].log_gen != e.first; });
  }
}

std::shared_ptr<const std::vector<VersionEntry>> Node::Impl::delta_since(std::uint64_t gen) {
  auto v = std::make_shared<std::vector<VersionEntry>>();
  auto it = std::upper_bound(vv_log.begin(), vv_log.end(), gen,
                             [](std::uint64_t g, const auto& e) { return g < e.first; });
  for (; it != vv_log.end(); ++it) {
    const OriginState& o = origins[it->second];
    if (o.log_gen == it->first) v->push_back(VersionEntry{o.id, o.contiguous});
  }
  return v;
}

TimeMs Node::Impl::jittered(TimeMs now, DurationMs period) {
  const double u = static_cast<double>(rng.next_u64() >> 11) * 0x1.0p-53;  // [0, 1)
  const double j = config.anti_entropy_jitter;
  const double factor = 1.0 - j + 2.0 * j * u;
  return now + std::max<TimeMs>(1, static_cast<TimeMs>(static_cast<double>(period) * factor));
}

void Node::Impl::schedule_anti_entropy(TimeMs now) {
  next_anti_entropy = jittered(now, config.anti_entropy_period_ms);
  ae_idle = false;
  if (next_full_vector == kNoDeadline) {
    next_full_vector = jittered(now, full_period());
  }
}

void Node::Impl::anti_entropy_round(TimeMs now, Actions& out) {
  scratch_peers.clear();
  std::vector<Outstanding> expired;
  bool waiting = false;  // some request is still unanswered: keep the rounds going
  for (PeerState& p : peers) {
    if (!p.connected) continue;
    scratch_peers.push_back(&p);
    // Unanswered requests (lost, or the peer is slow): ask the same peer again for what is
    // still missing; it said it holds it.
    std::size_t n = 0;
    while (n < p.outstanding.size() &&
           p.outstanding[n].sent_at + config.request_timeout_ms <= now) {
      ++n;
    }
    if (n > 0) {
      expired.assign(p.outstanding.begin(), p.outstanding.begin() + static_cast<std::ptrdiff_t>(n));
      p.outstanding.erase(p.outstanding.begin(),
                          p.outstanding.begin() + static_cast<std::ptrdiff_t>(n));
      for (const Outstanding& r : expired) {
        if (r.origin == kNoOrigin) {
          const std::uint32_t known = origin_of(r.unknown_origin);  // learned meanwhile?
          const std::uint64_t have = known == kNoOrigin ? 0 : origins[known].contiguous;
          if (have < r.to)
            request(p, known, r.unknown_origin, std::max(r.from, have + 1), r.to, r.theirs, now,
                    out);
          continue;
        }
        OriginState& o = origins[r.origin];
        if (o.extra) o.extra->requested_until = 0;
        const std::uint64_t from = std::max(r.from, o.contiguous + 1);
        if (from <= r.to) request(p, r.origin, o.id, from, r.to, r.theirs, now, out);
      }
    }
    waiting |= !p.outstanding.empty();
  }
  if (scratch_peers.empty()) {
    next_anti_entropy = kNoDeadline;  // re-armed by the next on_peer_up
    next_full_vector = kNoDeadline;
    return;
  }
  // Backstop: the full vector to a few random peers now and then.
  if (now >= next_full_vector) {
    const std::size_t n = std::min(config.anti_entropy_fanout, scratch_peers.size());
    for (std::size_t i = 0; i < n; ++i) {  // partial Fisher-Yates: n distinct random peers
      const std::size_t k =
          i + static_cast<std::size_t>(rng.next_u64() % (scratch_peers.size() - i));
      std::swap(scratch_peers[i], scratch_peers[k]);
      send_vector(*scratch_peers[i], out);
    }
    next_full_vector = jittered(now, full_period());
  }
  // Deltas: what advanced since each peer's last vector; peers at the same point share one.
  std::uint64_t built_for = UINT64_MAX;
  std::shared_ptr<const std::vector<VersionEntry>> delta;
  for (PeerState* p : scratch_peers) {
    if (p->vv_sent_gen >= vv_gen) continue;
    if (p->vv_sent_gen != built_for) {
      delta = delta_since(p->vv_sent_gen);
      built_for = p->vv_sent_gen;
    }
    p->vv_sent_gen = vv_gen;
    if (delta->empty()) continue;
    emit(out, p->id, VersionVector{delta});
    ++stats.vectors_sent;
  }
  if (waiting) {
    schedule_anti_entropy(now);
  } else {
    // Idle: nothing to tell anyone until something advances (finish() re-arms then).
    next_anti_entropy = next_full_vector;
    ae_idle = true;
    idle_gen = vv_gen;
  }
}

void Node::Impl::on_vector(PeerState& p, const VersionVector& vv, TimeMs now, Actions& out) {
  ++stats.vectors_received;
  if (!vv.entries) {
    ++stats.malformed;
    penalize(p, config.penalty_malformed, Cause::malformed, now, out);
    return;
  }
  std::vector<VersionEntry> ahead;  // listed entries where we hold more than the peer
  bool behind = false;              // some listed entry is ahead of what we hold
  const std::vector<VersionEntry>& entries = *vv.entries;
  // A full vector lists every origin of the fleet; each lookup would wait for a miss into the
  // index and then one into the origin's record. Cache hints only (no effect on the result):
  // the index slot is fetched kSlotAhead entries ahead, the record kRecordAhead ahead.
  constexpr std::size_t kSlotAhead = 8, kRecordAhead = 4, kRing = 16;
  std::uint32_t tags[kRing];
  const std::size_t n = entries.size();
  const auto fetch_record = [this](std::uint32_t oi) { __builtin_prefetch(&origins[oi]); };
  for (std::size_t j = 0; j < std::min(n, kSlotAhead); ++j) {
    tags[j] = OriginIndex::hash(entries[j].origin);
    origin_index.prefetch_slot(tags[j]);
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kSlotAhead < n) {
      const std::uint32_t t = OriginIndex::hash(entries[i + kSlotAhead].origin);
      tags[(i + kSlotAhead) % kRing] = t;
      origin_index.prefetch_slot(t);
    }
    if (i + kRecordAhead < n)
      origin_index.prefetch_record(tags[(i + kRecordAhead) % kRing], fetch_record);
    const VersionEntry& e = entries[i];
    const std::uint32_t found =
        origin_index.find(tags[i % kRing], e.origin,
                          [this](std::uint32_t k) -> std::string_view { return origins[k].id; });
    const std::uint32_t oi = found == OriginIndex::kMissing ? kNoOrigin : found;
    const std::uint64_t ours = oi == kNoOrigin ? 0 : origins[oi].contiguous;
    if (e.max_contiguous_seq < ours) ahead.push_back(VersionEntry{e.origin, ours});
    if (e.max_contiguous_seq > ours && !e.origin.empty()) behind = true;
  }
  // The newest vector of this peer replaces an unfinished older one. When it lists nothing
  // we lack (the usual case: pushes outrun vectors), there is nothing to pull, now or later
  // (what we hold only grows), so it is not walked a second time.
  if (behind) {
    p.wants = vv.entries;
    p.wants_pos = 0;
    pull_wants(p, now, out);
  } else {
    p.wants.reset();
    p.wants_pos = 0;
  }
  // Push-pull: tell the peer what it lacks among what it listed (rate-limited per peer so
  // two nodes with an unfillable difference do not ping-pong).
  if (!ahead.empty() && p.connected && now - p.last_vv_reply >= config.vv_reply_min_interval_ms) {
    p.last_vv_reply = now;
    emit(out, p.id,
         VersionVector{std::make_shared<const std::vector<VersionEntry>>(std::move(ahead))});
    ++stats.vectors_sent;
  }
}

void Node::Impl::pull_wants(PeerState& p, TimeMs now, Actions& out) {
  if (!p.wants) return;
  const std::vector<VersionEntry>& v = *p.wants;
  std::size_t requests = 0;
  while (p.wants_pos < v.size()) {
    if (!p.connected || requests >= config.max_requests_per_vector ||
        p.outstanding.size() >= config.max_outstanding_requests) {
      return;  // continued when answers come in
    }
    const VersionEntry& e = v[p.wants_pos++];
    if (e.origin.empty()) continue;
    const std::uint32_t oi = origin_of(e.origin);
    const std::uint64_t ours = oi == kNoOrigin ? 0 : origins[oi].contiguous;
    if (e.max_contiguous_seq > ours)
      requests += request_gaps(p, e.origin, e.max_contiguous_seq, now, out);
  }
  p.wants.reset();
}

std::size_t Node::Impl::request_gaps(PeerState& p, const std::string& origin, std::uint64_t theirs,
                                     TimeMs now, Actions& out) {
  const std::uint32_t oi = origin_of(origin);
  std::uint64_t cur = 1;
  // Seqs not to ask for: held above the contiguous mark, or waiting in the origin's queue.
  static const std::vector<std::uint64_t> none;
  const std::vector<std::uint64_t>* skip = &none;
  std::vector<std::uint64_t> held_or_queued;
  std::uint64_t budget = config.max_range_span;
  if (oi != kNoOrigin) {
    const OriginState& o = origins[oi];
    // Already being fetched from some peer: wait for that answer (or its timeout).
    if (o.extra && o.extra->requested_until > o.contiguous &&
        now - o.extra->requested_at < config.request_timeout_ms) {
      return 0;
    }
    cur = o.contiguous + 1;
    skip = &o.above;
    if (o.extra && !o.extra->deferred.empty()) {
      // An origin over its rate limit: ask for no more than its queue can still take. More
      // would be opened (an Ed25519 verify in the daemon) only to be dropped, and what waits
      // in the queue would be served again each round and dropped as a duplicate.
      budget = std::min<std::uint64_t>(budget, queue_room(o));
      held_or_queued = o.above;
      for (const Deferred& d : o.extra->deferred) held_or_queued.push_back(d.event.seq);
      std::sort(held_or_queued.begin(), held_or_queued.end());
      skip = &held_or_queued;
    }
  }
  // One request per gap below `theirs`, at most `budget` seqs in total per origin and per
  // vector, skipping the seqs above.
  std::size_t sent = 0;
  std::size_t idx = 0;
  while (cur <= theirs && budget > 0) {
    while (idx < skip->size() && (*skip)[idx] < cur) ++idx;
    if (idx < skip->size() && (*skip)[idx] == cur) {
      ++cur;
      continue;
    }
    std::uint64_t end = std::min(theirs, cur + budget - 1);
    if (idx < skip->size()) end = std::min(end, (*skip)[idx] - 1);
    if (!request(p, oi, origin, cur, end, theirs, now, out)) break;
    ++sent;
    budget -= end - cur + 1;
    cur = end + 1;
  }
  return sent;
}

bool Node::Impl::request(PeerState& p, std::uint32_t oi, const std::string& origin,
                         std::uint64_t from, std::uint64_t to, std::uint64_t theirs, TimeMs now,
                         Actions& out) {
  if (p.outstanding.size() >= config.max_outstanding_requests) return false;
  p.outstanding.push_back(
      Outstanding{oi, from, to, now, theirs, oi == kNoOrigin ? origin : std::string()});
  if (oi != kNoOrigin) {
    OriginExtra& x = origins[oi].ext();
    x.requested_until = std::max(x.requested_until, to);
    x.requested_at = now;
  }
  emit(out, p.id, RangeRequest{origin, from, to});
  ++stats.requests_sent;
  return true;
}

void Node::Impl::release_requests(PeerState& p) {
  for (const Outstanding& r : p.outstanding) {
    if (r.origin != kNoOrigin && origins[r.origin].extra)
      origins[r.origin].extra->requested_until = 0;
  }
  p.outstanding.clear();
}

void Node::Impl::on_request(PeerState& p, const RangeRequest& rq, TimeMs now, Actions& out) {
  ++stats.requests_received;
  if (rq.from_seq == 0 || rq.to_seq < rq.from_seq ||
      rq.to_seq - rq.from_seq >= config.max_range_span) {
    ++stats.malformed;
    penalize(p, config.penalty_malformed, Cause::malformed, now, out);
    return;
  }
  RangeResponse rs;
  if (const OriginState* o = find_origin(rq.origin)) {
    auto it = std::lower_bound(o->store.begin(), o->store.end(), rq.from_seq,
                               [](const StoredEvent& s, std::uint64_t v) { return s.seq < v; });
    if (archive == nullptr) {
      for (; it != o->store.end() && it->seq <= rq.to_seq; ++it) {
        if (rs.envelopes.size() == config.max_range_envelopes) {
          rs.truncated = true;
          break;
        }
        rs.envelopes.push_back(envelope_at(*it));
      }
    } else {
      // The same selection, read back from the archive in one batch; what it cannot return
      // is left out (and counted).
      scratch_seqs.clear();
      for (; it != o->store.end() && it->seq <= rq.to_seq; ++it) {
        if (scratch_seqs.size() == config.max_range_envelopes) {
          rs.truncated = true;
          break;
        }
        scratch_seqs.push_back(it->seq);
      }
      scratch_envelopes.clear();
      envelopes_of(*o, scratch_seqs, scratch_envelopes);
      rs.envelopes.reserve(scratch_envelopes.size());
      for (Envelope& e : scratch_envelopes)
        if (e) rs.envelopes.push_back(std::move(e));
      scratch_envelopes.clear();
    }
  }
  // Always answer, also with nothing: the requester's outstanding count must drop.
  if (!rs.envelopes.empty()) {
    ++stats.requests_served;
    stats.envelopes_served += rs.envelopes.size();
  }
  emit(out, p.id, std::move(rs));
}

void Node::Impl::on_response(PeerState& p, const RangeResponse& rs, TimeMs now, Actions& out) {
  ++stats.responses_received;
  if (p.outstanding.empty() || rs.envelopes.size() > config.max_range_envelopes) {
    // Unsolicited or oversized: not processed (it would bypass the per-peer rate limit).
    ++stats.malformed;
    penalize(p, config.penalty_malformed, Cause::malformed, now, out);
    return;
  }
  const Outstanding req = p.outstanding.front();
  p.outstanding.erase(p.outstanding.begin());
  for (const Envelope& env : rs.envelopes) {
    if (!p.connected) break;  // disconnected while processing (bad envelopes)
    if (!env) {
      ++stats.malformed;
      penalize(p, config.penalty_malformed, Cause::malformed, now, out);
      continue;
    }
    ingest(&p, env, Source::sync, now, out);
  }
  if (!p.connected) return;
  const std::uint32_t oi = req.origin != kNoOrigin ? req.origin : origin_of(req.unknown_origin);
  const bool more_pending =
      std::any_of(p.outstanding.begin(), p.outstanding.end(), [&](const Outstanding& r) {
        return r.origin == req.origin && r.unknown_origin == req.unknown_origin;
      });
  if (oi != kNoOrigin && !more_pending) {  // the last answer for this origin
    OriginState& o = origins[oi];
    if (o.extra) o.extra->requested_until = 0;
    // The peer holds more of this origin than one request covers: continue, but only if
    // this answer made progress (an empty answer means it cannot serve the range).
    if (o.contiguous >= req.from && o.contiguous < req.theirs) {
      const std::string name = o.id;
      request_gaps(p, name, req.theirs, now, out);
    }
  }
  pull_wants(p, now, out);
}

}  // namespace meshd::core

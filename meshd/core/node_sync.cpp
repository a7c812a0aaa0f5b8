// Anti-entropy: version vectors, range requests and responses.
#include <algorithm>

#include "meshd/core/detail/node_impl.hpp"

namespace meshd::core {

const std::shared_ptr<const std::vector<VersionEntry>>& Node::Impl::vector_snapshot() {
  if (vv_dirty || !vv_cache) {
    auto v = std::make_shared<std::vector<VersionEntry>>();
    v->reserve(nonzero_origins);
    for (const OriginState& o : origins) {
      if (o.contiguous > 0) v->push_back(VersionEntry{o.id, o.contiguous});
    }
    vv_cache = std::move(v);
    vv_dirty = false;
  }
  return vv_cache;
}

void Node::Impl::send_vector(PeerState& p, Actions& out) {
  emit(out, p.id, VersionVector{vector_snapshot()});
  ++stats.vectors_sent;
}

void Node::Impl::schedule_anti_entropy(TimeMs now) {
  const double u = static_cast<double>(rng.next_u64() >> 11) * 0x1.0p-53;  // [0, 1)
  const double j = config.anti_entropy_jitter;
  const double factor = 1.0 - j + 2.0 * j * u;
  next_anti_entropy =
      now + std::max<TimeMs>(1, static_cast<TimeMs>(
                                    static_cast<double>(config.anti_entropy_period_ms) * factor));
}

void Node::Impl::anti_entropy_round(TimeMs now, Actions& out) {
  scratch_peers.clear();
  for (PeerState& p : peers) {
    if (!p.connected) continue;
    // Requests that were never answered (lost, or the peer is slow) stop blocking new ones.
    std::size_t expired = 0;
    while (expired < p.outstanding.size() &&
           p.outstanding[expired].sent_at + config.request_timeout_ms <= now) {
      const Outstanding& r = p.outstanding[expired++];
      if (r.origin != kNoOrigin && origins[r.origin].extra)
        origins[r.origin].extra->requested_until = 0;
    }
    p.outstanding.erase(p.outstanding.begin(),
                        p.outstanding.begin() + static_cast<std::ptrdiff_t>(expired));
    scratch_peers.push_back(&p);
  }
  if (scratch_peers.empty()) {
    next_anti_entropy = kNoDeadline;  // re-armed by the next on_peer_up
    return;
  }
  const std::size_t n = std::min(config.anti_entropy_fanout, scratch_peers.size());
  for (std::size_t i = 0; i < n; ++i) {  // partial Fisher-Yates: n distinct random peers
    const std::size_t k = i + static_cast<std::size_t>(rng.next_u64() % (scratch_peers.size() - i));
    std::swap(scratch_peers[i], scratch_peers[k]);
    send_vector(*scratch_peers[i], out);
  }
  schedule_anti_entropy(now);
}

void Node::Impl::on_vector(PeerState& p, const VersionVector& vv, TimeMs now, Actions& out) {
  ++stats.vectors_received;
  if (!vv.entries) {
    ++stats.malformed;
    penalize(p, config.penalty_malformed, Cause::malformed, now, out);
    return;
  }
  std::size_t requests = 0;
  std::size_t listed = 0;  // of our non-zero origins, how many the peer listed
  bool peer_behind = false;
  for (const VersionEntry& e : *vv.entries) {
    const std::uint32_t oi = origin_of(e.origin);
    const std::uint64_t ours = oi == kNoOrigin ? 0 : origins[oi].contiguous;
    if (ours > 0) ++listed;
    if (e.max_contiguous_seq < ours) peer_behind = true;
    if (e.max_contiguous_seq > ours && !e.origin.empty() &&
        requests < config.max_requests_per_vector && p.connected) {
      requests += request_gaps(p, e.origin, e.max_contiguous_seq, now, out);
    }
  }
  // Push-pull: if the peer lacks something we hold, answer with our vector (rate-limited per
  // peer so two nodes with an unfillable difference do not ping-pong).
  if ((peer_behind || listed < nonzero_origins) && p.connected &&
      now - p.last_vv_reply >= config.vv_reply_min_interval_ms) {
    p.last_vv_reply = now;
    send_vector(p, out);
  }
}

std::size_t Node::Impl::request_gaps(PeerState& p, const std::string& origin, std::uint64_t theirs,
                                     TimeMs now, Actions& out) {
  const std::uint32_t oi = origin_of(origin);
  std::uint64_t cur = 1;
  const std::vector<std::uint64_t>* above = nullptr;
  if (oi != kNoOrigin) {
    const OriginState& o = origins[oi];
    // Already being fetched from some peer: wait for that answer (or its timeout).
    if (o.extra && o.extra->requested_until > o.contiguous &&
        now - o.extra->requested_at < config.request_timeout_ms) {
      return 0;
    }
    cur = o.contiguous + 1;
    above = &o.above;
  }
  // One request per gap below `theirs`, at most max_range_span seqs in total per origin and
  // per vector, skipping seqs held above the contiguous mark.
  std::size_t sent = 0;
  std::uint64_t budget = config.max_range_span;
  std::size_t idx = 0;
  while (cur <= theirs && budget > 0) {
    if (above != nullptr) {
      while (idx < above->size() && (*above)[idx] < cur) ++idx;
      if (idx < above->size() && (*above)[idx] == cur) {
        ++cur;
        continue;
      }
    }
    std::uint64_t end = std::min(theirs, cur + budget - 1);
    if (above != nullptr && idx < above->size()) end = std::min(end, (*above)[idx] - 1);
    if (!request(p, oi, origin, cur, end, now, out)) break;
    ++sent;
    budget -= end - cur + 1;
    cur = end + 1;
  }
  return sent;
}

bool Node::Impl::request(PeerState& p, std::uint32_t oi, const std::string& origin,
                         std::uint64_t from, std::uint64_t to, TimeMs now, Actions& out) {
  if (p.outstanding.size() >= config.max_outstanding_requests) return false;
  p.outstanding.push_back(Outstanding{oi, from, to, now});
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
    for (; it != o->store.end() && it->seq <= rq.to_seq; ++it) {
      if (rs.envelopes.size() == config.max_range_envelopes) {
        rs.truncated = true;
        break;
      }
      rs.envelopes.push_back(it->envelope);
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
  if (req.origin == kNoOrigin) return;
  OriginState& o = origins[req.origin];
  if (o.extra) o.extra->requested_until = 0;  // the next vector may ask again
  // Truncated: continue where the responder stopped, only if this answer made progress.
  if (rs.truncated && p.connected && o.contiguous + 1 > req.from && o.contiguous < req.to) {
    request(p, req.origin, o.id, o.contiguous + 1, req.to, now, out);
  }
}

}  // namespace meshd::core

// Peers: connection state, per-peer rate limit, transport-level scoring and back-off.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "meshd/core/detail/node_impl.hpp"

namespace meshd::core {

void Node::on_peer_up(PeerId peer, TimeMs now, Actions& out) {
  Impl& I = *impl_;
  PeerState& p = I.peer_slot(peer);
  if (p.banned_until > now) {
    I.set_connected(p, false);
    ++I.stats.refused_banned;
    out.disconnects.push_back(Disconnect{peer, "peer is banned (back-off)", p.banned_until});
    I.finish(now, out);
    return;
  }
  if (!p.connected) {
    if (I.connected_count >= I.config.max_peers) {
      out.disconnects.push_back(Disconnect{peer, "max_peers reached", now});
      I.finish(now, out);
      return;
    }
  }
  I.set_connected(p, true);
  p.tokens.fill(I.peer_rate(), now);
  I.release_requests(p);
  p.dup_window_start = now;
  p.dup_news_base = p.dup_news_mark = I.stats.events_new;
  p.dups = 0;
  p.last_vv_reply = now;
  I.send_vector(p, out);
  if (I.next_anti_entropy == kNoDeadline) I.schedule_anti_entropy(now);
  I.finish(now, out);
}

void Node::on_peer_down(PeerId peer, TimeMs now, Actions& out) {
  Impl& I = *impl_;
  if (PeerState* p = I.find_peer(peer)) {
    I.set_connected(*p, false);
    I.release_requests(*p);
  }
  I.finish(now, out);
}

PeerState* Node::Impl::find_peer(PeerId id) {
  for (std::size_t i = 0; i < peer_ids.size(); ++i)
    if (peer_ids[i] == id) return &peers[i];
  return nullptr;
}

const PeerState* Node::Impl::find_peer(PeerId id) const {
  for (std::size_t i = 0; i < peer_ids.size(); ++i)
    if (peer_ids[i] == id) return &peers[i];
  return nullptr;
}

PeerState& Node::Impl::peer_slot(PeerId id) {
  if (PeerState* p = find_peer(id)) return *p;
  peers.emplace_back();
  peers.back().id = id;
  peer_ids.push_back(id);
  return peers.back();
}

void Node::Impl::set_connected(PeerState& p, bool connected) {
  if (p.connected == connected) return;
  p.connected = connected;
  if (connected) {
    ++connected_count;
  } else {
    --connected_count;
  }
}

double Node::Impl::decayed_penalty(const PeerState& p, TimeMs now) const {
  if (p.penalty == 0 || now <= p.penalty_at) return p.penalty;
  const double halves =
      static_cast<double>(now - p.penalty_at) / static_cast<double>(config.score_half_life_ms);
  return p.penalty * std::exp2(-halves);
}

void Node::Impl::penalize(PeerState& p, double amount, Cause cause, TimeMs now, Actions& out) {
  if (amount <= 0) return;
  const double decayed = decayed_penalty(p, now);
  const double factor = p.penalty > 0 ? decayed / p.penalty : 1.0;
  p.by_invalid *= factor;
  p.by_malformed *= factor;
  p.by_rate *= factor;
  p.by_dup *= factor;
  p.penalty = decayed + amount;
  p.penalty_at = std::max(p.penalty_at, now);
  switch (cause) {
    case Cause::invalid:
      p.by_invalid += amount;
      break;
    case Cause::malformed:
      p.by_malformed += amount;
      break;
    case Cause::rate:
      p.by_rate += amount;
      break;
    case Cause::duplicate:
      p.by_dup += amount;
      break;
  }
  if (!p.connected || p.penalty < config.score_threshold) return;
  ++p.bans;
  DurationMs ban = config.ban_base_ms;
  for (std::uint32_t i = 1; i < p.bans && ban < config.ban_max_ms; ++i) ban *= 2;
  ban = std::min(ban, config.ban_max_ms);
  p.banned_until = now + ban;
  set_connected(p, false);
  release_requests(p);
  char reason[200];
  std::snprintf(reason, sizeof reason,
                "peer penalty %.1f reached %.1f (invalid %.1f, malformed %.1f, rate limit %.1f, "
                "duplicates %.1f); ban #%u for %lld ms",
                p.penalty, config.score_threshold, p.by_invalid, p.by_malformed, p.by_rate,
                p.by_dup, p.bans, static_cast<long long>(ban));
  out.disconnects.push_back(Disconnect{p.id, reason, p.banned_until});
  ++stats.disconnects;
}

bool Node::Impl::take_peer_token(PeerState& p, TimeMs now) {
  return p.tokens.try_take(peer_rate(), 1, now);
}

void Node::Impl::note_duplicate(PeerState& p, Source src, TimeMs now, Actions& out) {
  // Only pushes: duplicates inside range responses we asked for are our own doing.
  if (src != Source::push) return;
  if (now - p.dup_window_start >= config.dup_window_ms) {
    p.dup_window_start = now;
    p.dup_news_base = p.dup_news_mark;
    p.dup_news_mark = stats.events_new;
    p.dups = 0;
  }
  p.dups += 1;
  // An honest peer duplicates each event we learned at most once; events learned in the
  // previous window count too, so a burst at a window boundary is not punished.
  const double allowance =
      config.dup_tolerance + static_cast<double>(stats.events_new - p.dup_news_base);
  if (p.dups <= allowance) return;
  ++stats.useless_duplicates;
  penalize(p, config.penalty_duplicate, Cause::duplicate, now, out);
}

void Node::Impl::open_failed(PeerState* from, const Error& e, TimeMs now, Actions& out) {
  if (e.code == open_error::malformed) {
    ++stats.malformed;
    if (from != nullptr) penalize(*from, config.penalty_malformed, Cause::malformed, now, out);
  } else if (e.code == open_error::stale) {
    ++stats.stale;  // timing differs between nodes: not the forwarder's fault
  } else {
    ++stats.invalid;
    if (from != nullptr) penalize(*from, config.penalty_invalid, Cause::invalid, now, out);
  }
}

void Node::Impl::prune_peers(TimeMs now) {
  // Forget disconnected peers whose ban is over and whose penalty has decayed away; keep
  // the ban count otherwise so back-off keeps growing for a peer that keeps misbehaving.
  std::erase_if(peers, [&](const PeerState& p) {
    return !p.connected && p.banned_until <= now && decayed_penalty(p, now) < 1.0 &&
           p.outstanding.empty() && p.bans == 0;
  });
  if (peer_ids.size() != peers.size()) {
    peer_ids.clear();
    for (const PeerState& p : peers) peer_ids.push_back(p.id);
  }
}

PeerInfo Node::Impl::info(const PeerState& p, TimeMs now) const {
  return PeerInfo{p.id, p.connected, decayed_penalty(p, now), p.banned_until, p.bans};
}

}  // namespace meshd::core

// Engine::Impl bookkeeping: interning, claim/target storage, protection lookups, trust
// caches, budgets, batched feedback and deadlines.
#include <algorithm>
#include <cmath>

#include "trust/detail/engine_impl.hpp"

namespace meshd::trust {

using detail::ClaimRec;
using detail::kNone;

namespace {

Prefix masked(const Prefix& p, int len) {
  Prefix q = p;
  q.len = static_cast<std::uint8_t>(len);
  for (int i = len; i < 128; ++i) q.addr[i / 8] &= static_cast<std::uint8_t>(~(1u << (7 - i % 8)));
  return q;
}

std::size_t len_slot(const Prefix& p) {
  return p.family == Family::v4 ? p.len : 33u + p.len;
}

}  // namespace

std::vector<ProtectedPrefix> builtin_protected() {
  // Parsed once: the simulator constructs thousands of engines.
  static const std::vector<ProtectedPrefix> list = [] {
    std::vector<ProtectedPrefix> out;
    for (auto [text, why] : {std::pair{"127.0.0.0/8", "loopback"},
                             {"::1/128", "loopback"},
                             {"169.254.0.0/16", "link-local"},
                             {"fe80::/10", "link-local"},
                             {"0.0.0.0/32", "unspecified address"},
                             {"::/128", "unspecified address"}})
      out.push_back(ProtectedPrefix{*Prefix::parse(text), std::string("builtin: ") + why, true});
    return out;
  }();
  return list;
}

Engine::Impl::Impl(const Params& p, LocalContext c, TimeMs now)
    : params(p), ctx(std::move(c)), ledger(p), last_now(now) {
  if (params.mode == PolicyMode::trust) protected_list = builtin_protected();
  for (auto& pp : ctx.protected_prefixes) protected_list.push_back(pp);
  if (!ctx.self.node.empty()) {
    ledger.pin(ctx.self.node, ctx.self.domain, now);
    std::uint32_t o = origin_of(ctx.self.node, ctx.self.domain, now);
    origins[o].self = true;
    set_trust_cache(o, now);
  }
}

TimeMs Engine::Impl::clamp(TimeMs now) {
  if (now < last_now) {
    ++stats.clock_regressions;
    return last_now;
  }
  last_now = now;
  return now;
}

// --- interning -----------------------------------------------------------------------------

std::uint32_t Engine::Impl::domain_of(const DomainId& d) {
  const std::uint64_t h = detail::string_hash(d);
  const std::uint32_t found =
      domain_index.find(h, [&](std::uint32_t i) { return domains[i] == d; });
  if (found != kNone) return found;
  const auto id = static_cast<std::uint32_t>(domains.size());
  domains.push_back(d);
  domain_index.insert(h, id, [&](std::uint32_t i) { return detail::string_hash(domains[i]); });
  if (!d.empty()) {
    ++named_domains;
    domains_grew = true;
  }
  return id;
}

std::uint16_t Engine::Impl::detector_of(const std::string& d) {
  if (last_detector < detectors.size() && detectors[last_detector] == d) return last_detector;
  auto it = detector_index.find(d);
  if (it != detector_index.end()) return last_detector = it->second;
  if (detectors.size() >= 0xffff) return 0xffff;  // "other": the table is bounded
  auto id = static_cast<std::uint16_t>(detectors.size());
  detectors.push_back(d);
  detector_index.emplace(d, id);
  return last_detector = id;
}

std::uint32_t Engine::Impl::find_origin(const NodeId& node) const {
  return origin_index.find(detail::string_hash(node),
                           [&](std::uint32_t o) { return origins[o].node == node; });
}

std::uint32_t Engine::Impl::origin_of(const NodeId& node, const DomainId& domain, TimeMs now) {
  const std::uint64_t h = detail::string_hash(node);
  const std::uint32_t found =
      origin_index.find(h, [&](std::uint32_t o) { return origins[o].node == node; });
  if (found != kNone) {
    auto& o = origins[found];
    // Same domain as last time (the common case) costs one string compare, no hashing.
    if (domains[o.domain] != domain) {  // the certificate moved the node: its claims now
      o.domain = domain_of(domain);     // count there
      ledger.ensure(node, domain, now);
    }
    return found;
  }
  ledger.ensure(node, domain, now);
  auto id = static_cast<std::uint32_t>(origins.size());
  detail::OriginRec o;
  o.node = node;
  o.domain = domain_of(domain);
  origins.push_back(std::move(o));
  origin_index.insert(h, id, [&](std::uint32_t i) { return detail::string_hash(origins[i].node); });
  set_trust_cache(id, now);
  origins[id].tokens = capacity(origins[id]);  // a new origin starts with a full bucket
  origins[id].tokens_at = now;
  return id;
}

// --- claims and targets --------------------------------------------------------------------

std::uint64_t Engine::Impl::claim_hash(std::uint32_t origin, std::uint64_t seq) const {
  return detail::mix64(seq * 0x9e3779b97f4a7c15ull ^ origin);
}

std::uint32_t Engine::Impl::find_claim(std::uint32_t origin, std::uint64_t seq) const {
  return claim_index.find(claim_hash(origin, seq), [&](std::uint32_t c) {
    return claims[c].origin == origin && claims[c].seq == seq;
  });
}

std::uint32_t Engine::Impl::find_target(const Prefix& p) const {
  return target_index.find(PrefixHash{}(p),
                           [&](std::uint32_t t) { return targets[t].prefix == p; });
}

std::uint32_t Engine::Impl::get_target(const Prefix& p) {
  std::uint32_t t = find_target(p);
  if (t != kNone) return t;
  if (!free_targets.empty()) {
    t = free_targets.back();
    free_targets.pop_back();
    targets[t] = detail::TargetRec{};
  } else {
    t = static_cast<std::uint32_t>(targets.size());
    detail::grow_gently(targets);
    targets.emplace_back();
  }
  targets[t].prefix = p;
  targets[t].flags = detail::kTargetLive;
  target_index.insert(PrefixHash{}(p), t,
                      [&](std::uint32_t s) { return PrefixHash{}(targets[s].prefix); });
  ++target_len_count[len_slot(p)];
  return t;
}

void Engine::Impl::maybe_free_target(std::uint32_t t) {
  auto& T = targets[t];
  if (!(T.flags & detail::kTargetLive) || T.head != kNone) return;
  if (T.flags & (detail::kEnforced | detail::kPending | detail::kOperator)) return;
  target_index.erase(PrefixHash{}(T.prefix), t);
  --target_len_count[len_slot(T.prefix)];
  T.flags = 0;
  free_targets.push_back(t);
}

std::uint32_t Engine::Impl::add_claim(const ClaimFacts& f, const Digest& dg, std::uint32_t origin,
                                      std::uint32_t target, TimeMs now) {
  std::uint32_t c;
  if (!free_claims.empty()) {
    c = free_claims.back();
    free_claims.pop_back();
  } else {
    c = static_cast<std::uint32_t>(claims.size());
    detail::grow_gently(claims);
    claims.emplace_back();
  }
  ClaimRec& cr = claims[c];
  cr = ClaimRec{};
  cr.digest = dg;
  cr.seq = f.seq;
  cr.issued_at = f.issued_at;
  TimeMs by_request = f.requested_ttl > params.ttl_max_ms ? f.issued_at + params.ttl_max_ms
                                                          : f.issued_at + f.requested_ttl;
  cr.expires_at = std::min(by_request, now + params.ttl_max_ms);
  cr.target = target;
  cr.origin = origin;
  cr.confidence = static_cast<float>(f.confidence);
  cr.detector = detector_of(f.detector);
  cr.severity = f.severity;
  cr.direction = f.direction;
  cr.flags = detail::kLive;
  auto& T = targets[target];
  cr.epoch = T.epoch;
  cr.t_next = T.head;
  T.head = c;
  auto& o = origins[origin];
  cr.o_next = o.head;
  cr.o_prev = o.head == kNone ? c : claims[o.head].o_prev;  // the head's o_prev is the tail
  if (o.head != kNone) claims[o.head].o_prev = c;
  o.head = c;
  ++o.nclaims;
  claim_index.insert(claim_hash(origin, f.seq), c,
                     [&](std::uint32_t s) { return claim_hash(claims[s].origin, claims[s].seq); });
  ++stats.active_claims;  // the caller settles the target, which arms its wake-up
  return c;
}

// A target's list: its active claims, newest first, then its superseded ones, the first of
// which expires earliest (rearm needs only that one), the rest in no order. An origin's list:
// its active claims, newest first, then its superseded ones; the head's o_prev is the tail.
// Decisions and drain() stop at the first superseded claim: a target re-claimed often by the
// same origins made them wade through all the replaced claims (96 % of the claims walked in
// a 150-node milking run).
void Engine::Impl::unlink_from_target(std::uint32_t c) {
  auto& cr = claims[c];
  std::uint32_t* link = &targets[cr.target].head;
  bool after_superseded = false;
  while (*link != kNone && *link != c) {
    after_superseded = claims[*link].flags & detail::kSuperseded;
    link = &claims[*link].t_next;
  }
  if (*link == kNone) return;
  *link = cr.t_next;
  cr.t_next = kNone;
  if ((cr.flags & detail::kSuperseded) && !after_superseded) bring_earliest_forward(link);
}

void Engine::Impl::bring_earliest_forward(std::uint32_t* front) {
  if (*front == kNone) return;
  std::uint32_t* best = front;
  for (std::uint32_t* l = &claims[*front].t_next; *l != kNone; l = &claims[*l].t_next)
    if (claims[*l].expires_at < claims[*best].expires_at) best = l;
  if (best == front) return;
  std::uint32_t m = *best;
  *best = claims[m].t_next;
  claims[m].t_next = *front;
  *front = m;
}

void Engine::Impl::unlink_from_origin(std::uint32_t c) {
  auto& cr = claims[c];
  auto& o = origins[cr.origin];
  if (c == o.head) {
    o.head = cr.o_next;
    if (o.head != kNone) claims[o.head].o_prev = cr.o_prev;  // the tail
  } else {
    claims[cr.o_prev].o_next = cr.o_next;
    claims[cr.o_next != kNone ? cr.o_next : o.head].o_prev = cr.o_prev;
  }
  cr.o_prev = cr.o_next = kNone;
}

void Engine::Impl::supersede(std::uint32_t c) {
  auto& cr = claims[c];
  // Out of the target's active front; in before the first superseded claim if it expires
  // earlier than that one, else right behind it.
  std::uint32_t* link = &targets[cr.target].head;
  while (*link != kNone && !(claims[*link].flags & detail::kSuperseded)) {
    if (*link == c)
      *link = cr.t_next;
    else
      link = &claims[*link].t_next;
  }
  if (*link != kNone && claims[*link].expires_at <= cr.expires_at) link = &claims[*link].t_next;
  cr.flags |= detail::kSuperseded;
  cr.t_next = *link;
  *link = c;
  // To the origin's tail.
  unlink_from_origin(c);
  auto& o = origins[cr.origin];
  if (o.head == kNone) {
    o.head = c;
    cr.o_prev = c;
  } else {
    std::uint32_t tail = claims[o.head].o_prev;
    claims[tail].o_next = c;
    cr.o_prev = tail;
    claims[o.head].o_prev = c;
  }
}

void Engine::Impl::free_claim(std::uint32_t c) {
  auto& cr = claims[c];
  unlink_from_target(c);
  unlink_from_origin(c);
  --origins[cr.origin].nclaims;
  claim_index.erase(claim_hash(cr.origin, cr.seq), c);
  cr.flags = 0;
  cr.expires_at = 0;
  free_claims.push_back(c);
  --stats.active_claims;
}

bool Engine::Impl::tombstoned(std::uint32_t origin, std::uint64_t seq) const {
  auto it = tombstone_set.find(origin);
  return it != tombstone_set.end() &&
         std::find(it->second.begin(), it->second.end(), seq) != it->second.end();
}

void Engine::Impl::add_tombstone(std::uint32_t origin, std::uint64_t seq, TimeMs now) {
  if (tombstoned(origin, seq)) return;
  tombstone_set[origin].push_back(seq);
  tombstones.push_back(detail::Tombstone{origin, seq, now + params.ttl_max_ms});
  if (tombstones.size() == 1)
    schedule(now + params.ttl_max_ms, 0, detail::DeadlineKind::tombstones);
}

std::vector<std::uint32_t> Engine::Impl::overlapping_targets(const Prefix& p) const {
  std::vector<std::uint32_t> out;
  const std::size_t base = p.family == Family::v4 ? 0 : 33;
  for (int len = p.len; len >= 0; --len) {  // targets containing p (incl. p), most specific first
    if (!target_len_count[base + static_cast<std::size_t>(len)]) continue;
    std::uint32_t t = find_target(masked(p, len));
    if (t != kNone) out.push_back(t);
  }
  bool any_longer = false;
  for (int len = p.len + 1; len <= p.max_len(); ++len)
    any_longer |= target_len_count[base + static_cast<std::size_t>(len)] > 0;
  if (any_longer) {  // targets inside p: rare (p broader than a host), so a scan is fine
    std::vector<std::uint32_t> inner;
    for (std::uint32_t t = 0; t < targets.size(); ++t) {
      const auto& T = targets[t];
      if ((T.flags & detail::kTargetLive) && T.prefix.len > p.len && p.contains(T.prefix))
        inner.push_back(t);
    }
    std::sort(inner.begin(), inner.end(), [&](std::uint32_t a, std::uint32_t b) {
      return targets[a].prefix.len != targets[b].prefix.len
                 ? targets[a].prefix.len > targets[b].prefix.len
                 : targets[a].prefix < targets[b].prefix;
    });
    out.insert(out.begin(), inner.begin(), inner.end());
  }
  return out;
}

ClaimFacts Engine::Impl::facts_of(std::uint32_t c) const {
  const ClaimRec& cr = claims[c];
  const auto& o = origins[cr.origin];
  ClaimFacts f;
  f.origin = Origin{o.node, domains[o.domain]};
  f.seq = cr.seq;
  f.prefix = targets[cr.target].prefix;
  f.direction = cr.direction;
  f.detector = cr.detector < detectors.size() ? detectors[cr.detector] : "other";
  f.severity = cr.severity;
  f.confidence = cr.confidence;
  f.issued_at = cr.issued_at;
  f.requested_ttl = cr.expires_at - cr.issued_at;  // the effective (capped) TTL
  return f;
}

// --- protection ----------------------------------------------------------------------------

const ProtectedPrefix* Engine::Impl::protected_overlap(const Prefix& p) const {
  for (const auto& pp : protected_list)
    if (pp.prefix.overlaps(p)) return &pp;
  return nullptr;
}

const ProtectedPrefix* Engine::Impl::protected_container(const Prefix& p) const {
  for (const auto& pp : protected_list)
    if (pp.prefix.contains(p)) return &pp;
  return nullptr;
}

const detail::OpAllow* Engine::Impl::allow_overlap(const Prefix& p, TimeMs now) const {
  for (const auto& a : allows)
    if (a.expires_at > now && a.prefix.overlaps(p)) return &a;
  return nullptr;
}

// --- trust and budgets ---------------------------------------------------------------------

double Engine::Impl::capacity(const detail::OriginRec& o) const {
  return params.budget_burst * o.trust / params.t_cap;
}

double Engine::Impl::rate_per_ms(const detail::OriginRec& o) const {
  return params.budget_rate_per_min / static_cast<double>(kMinute) * o.trust / params.t_cap;
}

double Engine::Impl::tokens_at(const detail::OriginRec& o, TimeMs now) const {
  double t =
      o.tokens + rate_per_ms(o) * static_cast<double>(std::max<TimeMs>(0, now - o.tokens_at));
  return std::min(t, capacity(o));
}

void Engine::Impl::set_trust_cache(std::uint32_t oi, TimeMs now) {
  auto& o = origins[oi];
  o.tokens = tokens_at(o, now);  // bank what was earned at the old trust
  o.tokens_at = now;
  const LedgerEntry* e = ledger.find(o.node);
  o.trust = e ? ledger.trust(*e, now) : 0.0;
  o.quarantine_until = e && !e->pinned ? e->quarantine_until : 0;
  o.tokens = std::min(o.tokens, capacity(o));
}

void Engine::Impl::trust_changed(std::uint32_t oi, TimeMs now) {
  double before = origins[oi].trust;
  set_trust_cache(oi, now);
  if (origins[oi].trust == before || origins[oi].dirty) return;
  origins[oi].dirty = true;
  dirty_origins.push_back(oi);
  if (!refresh_scheduled) {
    refresh_scheduled = true;
    schedule(now + params.trust_refresh_ms, 0, detail::DeadlineKind::refresh);
  }
}

void Engine::Impl::queue_gain(std::uint32_t oi, double weight, TimeMs now) {
  auto& o = origins[oi];
  if (o.self || !(weight > 0)) return;
  o.pending_gain += weight;
  if (!o.gain_queued) {
    o.gain_queued = true;
    gain_origins.push_back(oi);
  }
  if (params.feedback_flush_ms > 0 && !flush_scheduled) {
    flush_scheduled = true;
    schedule(now + params.feedback_flush_ms, 0, detail::DeadlineKind::flush);
  }
}

void Engine::Impl::flush_gains(TimeMs now) {
  auto list = std::move(gain_origins);
  gain_origins.clear();
  for (std::uint32_t oi : list) {
    auto& o = origins[oi];
    o.gain_queued = false;
    double w = o.pending_gain;
    o.pending_gain = 0;
    if (!(w > 0) || ledger.quarantined(o.node, now)) continue;
    ledger.add_gain(o.node, w, now);
    ++stats.trust_gains;
    trust_changed(oi, now);
  }
}

void Engine::Impl::drain(TimeMs now, std::vector<BlockChange>& out) {
  for (int round = 0; round < 1000; ++round) {
    if (dirty_origins.empty() && params.feedback_flush_ms == 0 && !gain_origins.empty())
      flush_gains(now);
    if (dirty_origins.empty()) return;
    auto list = std::move(dirty_origins);
    dirty_origins.clear();
    std::vector<std::uint32_t> ts;
    for (std::uint32_t oi : list) {
      origins[oi].dirty = false;
      for (std::uint32_t c = origins[oi].head; c != kNone; c = claims[c].o_next) {
        if (claims[c].flags & detail::kSuperseded) break;  // the rest are superseded too
        ts.push_back(claims[c].target);
      }
    }
    std::sort(ts.begin(), ts.end());
    ts.erase(std::unique(ts.begin(), ts.end()), ts.end());
    for (std::uint32_t t : ts) settle(t, now, ChangeCause::trust, out);
  }
}

void Engine::Impl::quarantine(std::uint32_t oi, TimeMs now, std::vector<BlockChange>& out) {
  auto& o = origins[oi];
  if (o.self) return;
  ledger.quarantine(o.node, now);
  set_trust_cache(oi, now);
  o.tokens = 0;
  o.pending_gain = 0;
  o.recent.clear();
  // Its claims go: a proven liar's evidence is worthless, also after the quarantine.
  std::vector<std::uint32_t> ts;
  while (o.head != kNone) {
    std::uint32_t c = o.head;
    if (!(claims[c].flags & detail::kSuperseded)) ts.push_back(claims[c].target);
    std::uint32_t t = claims[c].target;
    free_claim(c);
    if (std::find(ts.begin(), ts.end(), t) == ts.end()) maybe_free_target(t);
  }
  std::sort(ts.begin(), ts.end());
  ts.erase(std::unique(ts.begin(), ts.end()), ts.end());
  for (std::uint32_t t : ts) settle(t, now, ChangeCause::trust, out);
  schedule(o.quarantine_until, oi, detail::DeadlineKind::quarantine_end);
  drain(now, out);
}

std::optional<MisbehaviourRecord> Engine::Impl::overrun_check(std::uint32_t oi, TimeMs issued,
                                                              TimeMs now) {
  auto& o = origins[oi];
  auto& r = o.recent;
  r.insert(std::upper_bound(r.begin(), r.end(), issued), issued);
  // Keep only what a window ending at the newest claim can still contain.
  TimeMs horizon = r.back() - params.overrun_window_ms;
  auto keep = std::lower_bound(r.begin(), r.end(), horizon);
  r.erase(r.begin(), keep);
  auto limit = static_cast<std::size_t>(params.overrun_max_claims);
  if (r.size() <= limit) return std::nullopt;
  // Find a window of overrun_window_ms holding more than the limit, around the new claim.
  for (TimeMs lo : {issued - params.overrun_window_ms, issued}) {
    TimeMs hi = lo + params.overrun_window_ms;
    auto n = static_cast<std::size_t>(std::upper_bound(r.begin(), r.end(), hi) -
                                      std::lower_bound(r.begin(), r.end(), lo));
    if (n <= limit) continue;
    MisbehaviourRecord rec;
    rec.kind = MisbehaviourKind::budget_overrun;
    rec.origin = Origin{o.node, domains[o.domain]};
    rec.detected_at = now;
    for (std::uint32_t c = o.head; c != kNone; c = claims[c].o_next)
      if (claims[c].issued_at >= lo && claims[c].issued_at <= hi)
        rec.claims.push_back(OffendingClaim{facts_of(c), claims[c].digest});
    if (rec.claims.size() <= limit) break;  // some were dropped since: not provable now
    std::sort(
        rec.claims.begin(), rec.claims.end(),
        [](const OffendingClaim& a, const OffendingClaim& b) { return a.facts.seq < b.facts.seq; });
    rec.reason = o.node + " issued " + std::to_string(rec.claims.size()) + " claims within " +
                 std::to_string(params.overrun_window_ms) + " ms (limit " + std::to_string(limit) +
                 ")";
    return rec;
  }
  r.clear();  // not provable with the claims still held: start counting afresh
  return std::nullopt;
}

void Engine::Impl::requorum(TimeMs now, std::vector<BlockChange>& out) {
  if (!domains_grew) return;
  domains_grew = false;
  if (params.mode == PolicyMode::trust) settle_all(now, ChangeCause::evidence, out);
}

// --- deadlines -----------------------------------------------------------------------------

void Engine::Impl::schedule(TimeMs at, std::uint32_t id, detail::DeadlineKind k) {
  deadlines.push(detail::Deadline{at, id, k});
}

void Engine::Impl::wake_target(std::uint32_t t, TimeMs at) {
  auto& T = targets[t];
  if (T.wake_at != 0 && T.wake_at <= at) return;  // an earlier wake re-checks anyway
  T.wake_at = at;
  schedule(at, t, detail::DeadlineKind::target_wake);
}

void Engine::Impl::rearm(std::uint32_t t) {
  auto& T = targets[t];
  if (!(T.flags & detail::kTargetLive)) return;
  TimeMs at = 0;
  auto take = [&](TimeMs x) {
    if (x > 0 && (at == 0 || x < at)) at = x;
  };
  // Superseded claims follow the active ones in order of expiry: the first of them is enough.
  for (std::uint32_t c = T.head; c != kNone; c = claims[c].t_next) {
    take(claims[c].expires_at);
    if (claims[c].flags & detail::kSuperseded) break;
  }
  if (T.flags & (detail::kEnforced | detail::kPending)) take(T.expires_at);
  if (T.flags & detail::kOperator)
    if (auto it = op_blocks.find(t); it != op_blocks.end()) take(it->second.expires_at);
  if (at > 0) wake_target(t, at);
}

void Engine::Impl::process_deadline(const detail::Deadline& d, TimeMs now,
                                    std::vector<BlockChange>& out) {
  using K = detail::DeadlineKind;
  switch (d.kind) {
    case K::target_wake: {
      if (d.id >= targets.size()) return;
      auto& T = targets[d.id];
      if (!(T.flags & detail::kTargetLive) || T.wake_at != d.at) return;  // stale
      T.wake_at = 0;
      bool due = false;
      // Expired claims go (superseded ones silently: they no longer counted).
      // free_claim() may bring the earliest of the superseded ones to *link: look at it again.
      for (std::uint32_t* link = &T.head; *link != kNone;) {
        std::uint32_t c = *link;
        if (claims[c].expires_at <= now) {
          due |= !(claims[c].flags & detail::kSuperseded);
          free_claim(c);
        } else {
          link = &claims[c].t_next;
        }
      }
      if (T.flags & detail::kOperator) {
        auto it = op_blocks.find(d.id);
        if (it != op_blocks.end() && it->second.expires_at <= now) {
          op_blocks.erase(it);
          T.flags &= static_cast<std::uint8_t>(~detail::kOperator);
          due = true;  // the claims decide again (they may enforce it themselves)
        }
      }
      if ((T.flags & detail::kEnforced) && T.expires_at <= now) due = true;
      bool retry = (T.flags & detail::kPending) && T.expires_at > 0 && T.expires_at <= now;
      if (due || retry) {
        settle(d.id, now, retry && !due ? ChangeCause::budget : ChangeCause::expiry, out);
        return;
      }
      rearm(d.id);
      maybe_free_target(d.id);
      return;
    }
    case K::quarantine_end: {
      auto& o = origins[d.id];
      if (o.quarantine_until == 0 || o.quarantine_until > now) return;
      ledger.refresh(o.node, now);
      trust_changed(d.id, now);
      o.tokens = 0;  // a fresh start earns its budget again
      o.tokens_at = now;
      return;
    }
    case K::allow_expiry: {
      std::vector<Prefix> gone;
      std::erase_if(allows, [&](const detail::OpAllow& a) {
        if (a.expires_at > now) return false;
        gone.push_back(a.prefix);
        return true;
      });
      for (const auto& p : gone)
        for (std::uint32_t t : overlapping_targets(p))
          settle(t, now, ChangeCause::operator_decision, out);
      return;
    }
    case K::flush:
      flush_scheduled = false;
      flush_gains(now);
      return;
    case K::refresh: {
      refresh_scheduled = false;
      bool any = false;
      for (std::uint32_t oi = 0; oi < origins.size(); ++oi) {
        auto& o = origins[oi];
        if (o.self) continue;
        ledger.refresh(o.node, now);
        trust_changed(oi, now);
        const LedgerEntry* e = ledger.find(o.node);
        any |= e && (e->pos > 1e-3 || e->neg > 1e-3);
      }
      if (any && !refresh_scheduled) {
        refresh_scheduled = true;
        schedule(now + params.trust_refresh_ms, 0, K::refresh);
      }
      return;
    }
    case K::requorum:
      requorum(now, out);
      return;
    case K::tombstones: {
      while (!tombstones.empty() && tombstones.front().expires_at <= now) {
        auto& ts = tombstones.front();
        auto it = tombstone_set.find(ts.origin);
        if (it != tombstone_set.end()) {
          std::erase(it->second, ts.seq);
          if (it->second.empty()) tombstone_set.erase(it);
        }
        tombstones.pop_front();
      }
      if (!tombstones.empty()) schedule(tombstones.front().expires_at, 0, K::tombstones);
      return;
    }
  }
}

}  // namespace meshd::trust

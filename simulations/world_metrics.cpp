// World's measurements: harm and true-positive coverage from block changes, delivery from
// Persist actions, quarantine from the engines' ledgers, time series samples.
#include <algorithm>
#include <cmath>

#include "simulations/world.hpp"

namespace meshd::sim {

namespace {

double seconds(SimTimeUs t) {
  return double(t) * 1e-6;
}

bool is_protected(TargetKind k) {
  return k == TargetKind::protected_fleet || k == TargetKind::protected_local;
}

// Nearest-rank quantile of an unsorted sample (copied).
double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = std::max<std::size_t>(1, std::size_t(std::ceil(q * double(v.size()))));
  return v[std::min(v.size(), rank) - 1];
}

}  // namespace

void World::on_block_change(SimNode& sn, const trust::BlockChange& c, SimTimeUs now) {
  auto it = m_.target_of.find(c.prefix);
  if (it == m_.target_of.end()) return;  // never claimed by the plan: cannot happen
  const std::uint32_t t = it->second;
  auto pos = std::find_if(sn.blocks.begin(), sn.blocks.end(),
                          [&](const ActiveBlock& b) { return b.target == t; });
  const SimTimeUs expires = from_unix_ms(c.expires_at);
  switch (c.kind) {
    case trust::BlockChange::Kind::enforce:
    case trust::BlockChange::Kind::retime:
      if (pos != sn.blocks.end()) {
        pos->expires = expires;
        return;
      }
      break;
    case trust::BlockChange::Kind::lift:
      if (pos != sn.blocks.end()) close_block(sn, std::size_t(pos - sn.blocks.begin()), now);
      return;
  }
  // Harm counts at honest nodes: a compromised node's own losses are not the fleet's.
  const bool honest = !m_.compromised[sn.id];
  const double rate = honest ? m_.target_rate(sn.id, t) : 0;
  sn.blocks.push_back(ActiveBlock{t, now, expires, rate});
  open_rate_ += rate;
  open_rate_since_ += rate * seconds(now);
  const Target& tg = m_.targets[t];
  if (is_protected(tg.kind)) {
    open_prot_rate_ += rate;
    open_prot_since_ += rate * seconds(now);
    ++enforced_protected_;
  } else if (tg.kind == TargetKind::benign) {
    ++enforced_benign_;
  } else {
    ++enforced_malicious_;
    const std::size_t cell = std::size_t(sn.id) * m_.malicious + tg.index;
    const SimTimeUs first = m_.first_detection[tg.index];
    if (honest && first >= 0 && tp_first_enforce_[cell] < 0) {
      tp_first_enforce_[cell] = now;
      r_.tp_latency.add(double(std::max<SimTimeUs>(0, now - first)) / 1000.0);
    }
  }
}

void World::close_block(SimNode& sn, std::size_t i, SimTimeUs now) {
  const ActiveBlock b = sn.blocks[i];
  sn.blocks[i] = sn.blocks.back();
  sn.blocks.pop_back();
  // The kernel drops an expired block by itself (I4), even if no lift came.
  const SimTimeUs end = std::max(b.since, std::min(now, b.expires));
  const double harm = b.rate * seconds(end - b.since);
  closed_harm_ += harm;
  open_rate_ -= b.rate;
  open_rate_since_ -= b.rate * seconds(b.since);
  const Target& tg = m_.targets[b.target];
  if (is_protected(tg.kind)) {
    closed_protected_ += harm;
    open_prot_rate_ -= b.rate;
    open_prot_since_ -= b.rate * seconds(b.since);
    --enforced_protected_;
  } else if (tg.kind == TargetKind::benign) {
    --enforced_benign_;
  } else {
    --enforced_malicious_;
    const SimTimeUs first = m_.first_detection[tg.index];
    if (!m_.compromised[sn.id] && first >= 0) {
      const SimTimeUs from = std::max(first, b.since);
      if (end > from) r_.tp_enforced_ms += double(end - from) / 1000.0;
    }
  }
}

void World::on_emitted(std::uint32_t i, SimTimeUs) {
  const PlannedClaim& c = m_.claims[i];
  if (!c.valid) return;
  // Pairs: honest nodes up at issue time, the producer itself excluded.
  std::uint64_t pairs = honest_up_;
  if (!m_.compromised[c.producer] && pairs > 0) --pairs;
  r_.delivery_pairs_all += pairs;
  if (c.honest) r_.delivery_pairs += pairs;
}

void World::on_persist(SimNode& sn, const core::Persist& p, SimTimeUs now) {
  BlobRef ref;
  if (!p.envelope || !parse_blob(*p.envelope, ref) || ref.kind != 'C') return;
  const PlannedClaim& c = m_.claims[ref.index];
  const std::size_t bit = std::size_t(ref.index) * m_.nodes + sn.id;
  if (received_[bit / 64] & (1ULL << (bit % 64))) return;
  received_[bit / 64] |= 1ULL << (bit % 64);
  if (!c.valid || m_.compromised[sn.id] || sn.id == c.producer) return;
  // Catch-up after a restart: anything issued before the restart (also while the node was
  // down) that arrives afterwards.
  if (sn.restarted_at >= 0 && c.at < sn.restarted_at && c.honest)
    r_.restart_catchup_max_ms =
        std::max(r_.restart_catchup_max_ms, double(now - sn.restarted_at) / 1000.0);
  // Only pairs whose node was up when the claim was issued are counted.
  for (const auto& cr : m_.crashes)
    if (c.at >= cr.at && c.at < cr.restart &&
        std::binary_search(cr.nodes.begin(), cr.nodes.end(), sn.id))
      return;
  const double latency_ms = double(now - c.at) / 1000.0;
  ++r_.delivered_all;
  if (!c.honest) return;
  ++r_.delivered;
  r_.delivery_latency.add(latency_ms);
  for (std::size_t k = 0; k < heal_at_.size(); ++k) {
    if (c.at < heal_at_[k] && now >= heal_at_[k]) {
      r_.heal_max_ms = std::max(r_.heal_max_ms, double(now - heal_at_[k]) / 1000.0);
      if (heal_pending_[k] > 0) --heal_pending_[k];
    }
  }
}

void World::on_heal(std::size_t k, SimTimeUs now) {
  // Pairs (honest claim issued before the heal, honest node up) still missing at the heal.
  std::uint64_t pending = 0;
  for (std::uint32_t i = 0; i < m_.claims.size(); ++i) {
    const PlannedClaim& c = m_.claims[i];
    if (c.at >= now) break;
    if (!issued_[i] || !c.valid || !c.honest) continue;
    for (int n = 0; n < m_.nodes; ++n) {
      if (m_.compromised[n] || !nodes_[n].up || std::uint32_t(n) == c.producer) continue;
      const std::size_t bit = std::size_t(i) * m_.nodes + n;
      if (!(received_[bit / 64] & (1ULL << (bit % 64)))) ++pending;
    }
  }
  heal_pending_[k] = pending;
  r_.heal_pairs += pending;
}

void World::check_quarantine(SimNode& sn, SimTimeUs now) {
  sn.quarantines_seen = sn.node->stats().quarantines;
  if (m_.compromised[sn.id]) return;
  const TimeMs ms = to_unix_ms(now);
  for (std::size_t k = 0; k < adversary_ids_.size(); ++k) {
    if (quarantined_at_[k][sn.id] >= 0) continue;
    if (sn.node->ledger().quarantined(m_.node_ids[adversary_ids_[k]], ms))
      quarantined_at_[k][sn.id] = now;
  }
}

void World::take_sample(SimTimeUs now) {
  Sample s;
  s.t_s = seconds(now);
  s.harm_rate = open_rate_;
  s.harm_cum = closed_harm_ + open_rate_ * s.t_s - open_rate_since_;
  s.protected_cum = closed_protected_ + open_prot_rate_ * s.t_s - open_prot_since_;
  s.enforced_benign = enforced_benign_;
  s.enforced_malicious = enforced_malicious_;
  s.enforced_protected = enforced_protected_;
  for (const auto& n : nodes_) s.nodes_up += n.up ? 1 : 0;
  s.links_up = links_up_;
  r_.samples.push_back(s);
}

void World::count_claim_envelopes(const core::Message& msg) {
  BlobRef ref;
  if (const auto* p = std::get_if<core::Push>(&msg)) {
    if (p->envelope && parse_blob(*p->envelope, ref) && ref.kind == 'C') ++r_.claim_envelopes_sent;
  } else if (const auto* rr = std::get_if<core::RangeResponse>(&msg)) {
    for (const auto& e : rr->envelopes)
      if (e && parse_blob(*e, ref) && ref.kind == 'C') ++r_.claim_envelopes_sent;
  }
}

void World::add_counters(const SimNode& sn) {
  const core::Stats& s = sn.node->stats();
  const std::pair<const char*, std::uint64_t> rows[] = {
      {"events_new", s.events_new},
      {"duplicates", s.duplicates},
      {"useless_duplicates", s.useless_duplicates},
      {"invalid", s.invalid},
      {"malformed", s.malformed},
      {"stale", s.stale},
      {"rejected", s.rejected},
      {"rate_limited_peer", s.rate_limited_peer},
      {"rate_limited_origin", s.rate_limited_origin},
      {"origin_dropped", s.origin_dropped},
      {"from_quarantined", s.from_quarantined},
      {"equivocations", s.equivocations},
      {"proofs_requested", s.proofs_requested},
      {"proofs_suppressed", s.proofs_suppressed},
      {"proofs_valid", s.proofs_valid},
      {"proofs_invalid", s.proofs_invalid},
      {"quarantines", s.quarantines},
      {"requests_sent", s.requests_sent},
      {"events_from_sync", s.events_from_sync},
      {"disconnects", s.disconnects},
      {"restored", s.restored},
      {"blocks_enforced", sn.node->engine_stats().blocks_enforced},
      {"budget_deferrals", sn.node->engine_stats().budget_deferrals},
      {"contradictions", sn.node->engine_stats().contradictions},
      {"domains_short", sn.node->engine_stats().domains_short},
      {"misbehaviour_detected", sn.node->engine_stats().misbehaviour_detected},
  };
  if (counters_.empty())
    for (const auto& [k, v] : rows) counters_.emplace_back(k, 0);
  for (std::size_t i = 0; i < std::size(rows); ++i) counters_[i].second += rows[i].second;
}

void World::finish(SimTimeUs end) {
  for (auto& sn : nodes_) {
    while (!sn.blocks.empty()) close_block(sn, sn.blocks.size() - 1, end);
    if (sn.up) add_counters(sn);
  }
  r_.harm_total = closed_harm_;
  r_.harm_protected = closed_protected_;
  for (std::uint32_t m = 0; m < m_.malicious; ++m)
    if (m_.first_detection[m] >= 0 && m_.first_detection[m] < end)
      r_.tp_possible_ms += double(end - m_.first_detection[m]) / 1000.0 * double(honest_nodes_);
  for (std::uint64_t p : heal_pending_)
    if (p > 0) r_.heal_all_reached = false;
  for (std::size_t k = 0; k < adversary_ids_.size(); ++k) {
    QuarantineResult q;
    q.origin = m_.node_ids[adversary_ids_[k]];
    q.honest_nodes = honest_nodes_;
    std::vector<double> lat;
    for (int n = 0; n < m_.nodes; ++n) {
      if (m_.compromised[n] || quarantined_at_[k][n] < 0) continue;
      ++q.nodes_quarantined;
      const SimTimeUs from = first_offence_[k] >= 0 ? first_offence_[k] : 0;
      lat.push_back(double(std::max<SimTimeUs>(0, quarantined_at_[k][n] - from)) / 1000.0);
    }
    if (first_offence_[k] < 0 && q.nodes_quarantined == 0) continue;  // never offended
    q.detected = q.nodes_quarantined == q.honest_nodes;
    q.p99_ms = quantile(lat, 0.99);
    q.max_ms = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end());
    r_.quarantine.push_back(std::move(q));
  }
  r_.counters = counters_;
}

}  // namespace meshd::sim

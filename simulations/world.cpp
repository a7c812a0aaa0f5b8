#include "simulations/world.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "simulations/report.hpp"

namespace meshd::sim {

std::uint64_t World::Usage::flows(const Prefix& target, TimeMs) const {
  return static_cast<std::uint64_t>(
      std::llround(m_.flow_rate(n_, target) * m_.scenario.traffic.window_s));
}

// The traffic model's benign evidence (README.md "Traffic"): f = rate x window flows, each
// from one of the node's `workloads` at random, so the expected number of distinct sources is
// W (1 - (1 - 1/W)^f); steady (Poisson) flows span (f - 1)/(f + 1) of the window on average.
// Benign services are never flagged by a local detector (malicious targets carry no benign
// flows at all).
trust::BenignEvidence World::Usage::evidence(const Prefix& target, TimeMs now) const {
  trust::BenignEvidence ev;
  ev.flows = flows(target, now);
  if (ev.flows == 0) return ev;
  const double w = m_.scenario.traffic.workloads, f = static_cast<double>(ev.flows);
  ev.sources = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::llround(w * (1.0 - std::pow(1.0 - 1.0 / w, f)))));
  ev.span_ms =
      static_cast<DurationMs>(m_.scenario.traffic.window_s * 1000.0 * (f - 1.0) / (f + 1.0));
  return ev;
}

World::World(std::shared_ptr<const Model> model, const trust::Params& params,
             const core::Config& config)
    : model_(std::move(model)),
      m_(*model_),
      params_(params),
      config_(config),
      opener_(m_),
      link_rng_(m_.seed, "links", static_cast<std::uint64_t>(params.mode)) {
  const auto& g = m_.overlay;
  canonical_.resize(g.directed_edges());
  edges_.resize(g.directed_edges());
  last_arrival_.assign(g.directed_edges(), 0);
  for (int a = 0; a < m_.nodes; ++a) {
    auto nb = g.neighbours(a);
    for (int i = 0; i < int(nb.size()); ++i) {
      const std::uint32_t b = nb[i];
      const std::uint32_t d = g.edge_id(a, i);
      if (std::uint32_t(a) < b) {
        canonical_[d] = d;
        edges_[d].a = std::uint32_t(a);
        edges_[d].b = b;
      } else {
        canonical_[d] = g.edge_id(int(b), g.index_of(int(b), std::uint32_t(a)));
      }
    }
  }
  nodes_.reserve(m_.nodes);
  for (int n = 0; n < m_.nodes; ++n) {
    nodes_.emplace_back(m_, std::uint32_t(n));  // reserved: never moves (engines point into it)
    make_node(std::uint32_t(n), 0);
  }
  for (const auto& c : m_.crashes)
    for (auto n : c.nodes) nodes_[n].keeps_store = true;
  next_seq_.assign(std::size_t(m_.nodes) + m_.sybil_ids.size(), 0);
  claim_seq_.assign(m_.claims.size(), 0);
  claim_env_.resize(m_.claims.size());
  issued_.assign(m_.claims.size(), 0);
  received_.assign((m_.claims.size() * std::size_t(m_.nodes) + 63) / 64, 0);
  for (int n = 0; n < m_.nodes; ++n) honest_nodes_ += m_.compromised[n] ? 0 : 1;
  honest_up_ = honest_nodes_;
  heal_pending_.assign(m_.partitions.size(), 0);
  tp_first_enforce_.assign(std::size_t(m_.nodes) * m_.malicious, -1);
  for (int n = 0; n < m_.nodes; ++n)
    if (m_.compromised[n]) adversary_ids_.push_back(std::uint32_t(n));
  quarantined_at_.assign(adversary_ids_.size(), std::vector<SimTimeUs>(m_.nodes, -1));
  first_offence_.assign(adversary_ids_.size(), -1);
  // First provably offending claim per adversary: a protected target / second equivocation
  // body, or the claim that makes its issue rate exceed the gross-overrun bound.
  for (std::size_t k = 0; k < adversary_ids_.size(); ++k) {
    std::vector<SimTimeUs> times;
    for (const auto& c : m_.claims) {
      if (c.origin != adversary_ids_[k] || !c.valid || c.variant == 1) {
        if (c.origin == adversary_ids_[k] && c.offending && first_offence_[k] < 0)
          first_offence_[k] = c.at;
        continue;
      }
      if (c.offending && first_offence_[k] < 0) first_offence_[k] = c.at;
      times.push_back(c.at);
    }
    const auto limit = static_cast<std::size_t>(params_.overrun_max_claims);
    const SimTimeUs window = params_.overrun_window_ms * 1000;
    for (std::size_t j = limit, i = 0; j < times.size(); ++j) {
      while (times[j] - times[i] >= window) ++i;
      if (j - i + 1 > limit) {
        if (first_offence_[k] < 0 || times[j] < first_offence_[k]) first_offence_[k] = times[j];
        break;
      }
    }
  }
  heal_at_.reserve(m_.partitions.size());
  for (const auto& p : m_.partitions) heal_at_.push_back(p.heal);
  r_.policy = trust::policy_to_string(params_);
  r_.had_partition = !m_.partitions.empty();
}

World::~World() = default;

void World::make_node(std::uint32_t n, SimTimeUs now) {
  SimNode& sn = nodes_[n];
  trust::LocalContext ctx;
  ctx.self = trust::Origin{m_.node_ids[n], m_.domain_ids[m_.domain_of[n]]};
  ctx.protected_prefixes = {
      {m_.fleet_protected[0], "fleet peers", true},
      {m_.fleet_protected[1], "kubernetes api", true},
      {m_.fleet_protected[2], "cluster dns", true},
      {m_.gateway_of_domain(m_.domain_of[n]), "default gateway", false},
  };
  ctx.usage = &sn.usage;
  sn.node.reset();
  sn.engine.reset();
  sn.engine.emplace(params_, std::move(ctx), to_unix_ms(now));
  sn.rng = core::SplitMix64(mix64(m_.seed ^ purpose_hash("core")) ^ mix64(n + 1));
  // The config was validated with the scenario: creating the node cannot fail.
  sn.node.emplace(core::Node::create(config_, *sn.engine, opener_, sn.rng).value());
  sn.tick_at = -1;
  sn.quarantines_seen = 0;
}

std::uint32_t World::edge_of(std::uint32_t a, std::uint32_t b) const {
  const int i = m_.overlay.index_of(int(a), b);
  return canonical_[m_.overlay.edge_id(int(a), i)];
}

std::uint32_t World::alloc_slot() {
  if (!free_slots_.empty()) {
    auto s = free_slots_.back();
    free_slots_.pop_back();
    return s;
  }
  slots_.emplace_back();
  return std::uint32_t(slots_.size() - 1);
}

RunResult World::run() {
  const auto wall_start = std::chrono::steady_clock::now();
  const SimTimeUs end = static_cast<SimTimeUs>(std::llround(m_.scenario.duration_s * 1e6));
  queue_.reserve(std::size_t(m_.nodes) * 16);
  for (std::uint32_t c = 0; c < edges_.size(); ++c)
    if (canonical_[c] == c) refresh_edge(c, 0);
  schedule_static_events();
  progress_start_ = progress_last_ = wall_start;
  while (!queue_.empty() && queue_.top().at <= end) {
    const Event e = queue_.pop();
    ++r_.events;
    prefetch_ahead();
    handle(e);
    if (progress_every_s_ > 0 && (r_.events & 0xfff) == 0) report_progress(e.at, end, false);
  }
  finish(end);
  if (progress_every_s_ > 0) report_progress(end, end, true);
  r_.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return std::move(r_);
}

// Each delivery starts with a chain of cache misses (node record -> core state -> peer table
// and seen-set slot) spread over a multi-gigabyte heap. The events due next are known (the
// queue's current bucket is sorted), so the chain is walked one link per event ahead: the
// node record three events ahead, its core state two ahead, what the message will touch
// one ahead. Hints only: nothing here changes state.
void World::prefetch_ahead() {
  if (const Event* n = queue_.peek(2)) {
    __builtin_prefetch(&nodes_[n->node]);
    if (n->kind == kDeliver) __builtin_prefetch(&slots_[n->a]);
  }
  if (const Event* n = queue_.peek(1)) {
    const SimNode& sn = nodes_[n->node];
    if (sn.node) sn.node->prefetch();
  }
  if (queue_.empty()) return;
  const Event& n = queue_.top();
  if (n.kind != kDeliver) return;
  const SimNode& sn = nodes_[n.node];
  if (sn.node) sn.node->prefetch(slots_[n.a].message);
}

// One line per interval (and one at the end): simulated time, the event rate since the last
// line and the process's RSS (both policy runs share the process).
void World::report_progress(SimTimeUs now, SimTimeUs end, bool last) {
  const auto t = std::chrono::steady_clock::now();
  const double since_last = std::chrono::duration<double>(t - progress_last_).count();
  if (!last && since_last < progress_every_s_) return;
  const double total = std::chrono::duration<double>(t - progress_start_).count();
  const std::uint64_t events = r_.events - progress_events_;
  const double rate = last ? (total > 0 ? double(r_.events) / total : 0)
                           : (since_last > 0 ? double(events) / since_last : 0);
  std::fprintf(
      stderr,
      "meshsim: progress %s %s sim %.1f/%.1f s, %llu events, %.0f events/s%s, RSS %.0f MB, "
      "wall %.1f s\n",
      r_.policy.c_str(), last ? "done" : "at", double(now) / 1e6, double(end) / 1e6,
      static_cast<unsigned long long>(r_.events), rate, last ? " (mean)" : "", rss_mb(), total);
  progress_last_ = t;
  progress_events_ = r_.events;
}

void World::schedule_static_events() {
  if (!m_.claims.empty()) queue_.push(m_.claims[0].at, kEmit, m_.claims[0].producer, 0);
  const SimTimeUs step = std::max<SimTimeUs>(1, SimTimeUs(m_.scenario.sample_s * 1e6));
  const SimTimeUs end = SimTimeUs(std::llround(m_.scenario.duration_s * 1e6));
  for (SimTimeUs t = 0; t <= end; t += step) queue_.push(t, kSample, 0);
  for (std::uint32_t p = 0; p < m_.partitions.size(); ++p) {
    queue_.push(m_.partitions[p].at, kPartition, 0, p);
    queue_.push(m_.partitions[p].heal, kHeal, 0, p);
  }
  for (std::uint32_t c = 0; c < m_.crashes.size(); ++c) {
    queue_.push(m_.crashes[c].at, kCrash, 0, c);
    queue_.push(m_.crashes[c].restart, kRestart, 0, c);
  }
}

void World::handle(const Event& e) {
  switch (e.kind) {
    case kDeliver:
      deliver(e);
      break;
    case kTick: {
      SimNode& sn = nodes_[e.node];
      if (!sn.up || sn.tick_at != e.at) {  // superseded
        ++r_.stale_ticks;
        break;
      }
      ++r_.ticks;
      sn.tick_at = -1;
      core::Actions acts = take_actions();
      sn.node->tick(to_unix_ms(e.at), acts);
      apply(sn, acts, e.at, true);
      give_back(std::move(acts));
      break;
    }
    case kEmit:
      emit(e.a, e.at);
      if (e.a + 1 < m_.claims.size())
        queue_.push(m_.claims[e.a + 1].at, kEmit, m_.claims[e.a + 1].producer, e.a + 1);
      break;
    case kPublishProof:
      publish_proof(e.node, e.a, e.at);
      break;
    case kSample:
      take_sample(e.at);
      break;
    case kPartition:
    case kHeal: {
      const auto& p = m_.partitions[e.a];
      for (std::uint32_t c = 0; c < edges_.size(); ++c) {
        if (canonical_[c] != c || p.side[edges_[c].a] == p.side[edges_[c].b]) continue;
        edges_[c].cut += e.kind == kPartition ? 1 : -1;
        refresh_edge(c, e.at);
      }
      if (e.kind == kHeal) on_heal(e.a, e.at);
      break;
    }
    case kCrash:
      for (auto n : m_.crashes[e.a].nodes) crash(n, e.at);
      break;
    case kRestart:
      for (auto n : m_.crashes[e.a].nodes) restart(n, e.at);
      break;
    case kReconnect:
      refresh_edge(e.a, e.at);
      break;
  }
}

core::Actions World::take_actions() {
  if (spare_actions_.empty()) return core::Actions{};
  core::Actions a = std::move(spare_actions_.back());
  spare_actions_.pop_back();
  return a;
}

void World::give_back(core::Actions&& a) {
  a.clear();
  spare_actions_.push_back(std::move(a));
}

void World::apply(SimNode& sn, core::Actions& acts, SimTimeUs now, bool from_tick) {
  for (auto& s : acts.sends) send(sn.id, std::uint32_t(s.peer), std::move(s.message), now);
  for (const auto& c : acts.blocks) on_block_change(sn, c, now);
  for (const auto& p : acts.persist) {
    on_persist(sn, p, now);
    if (sn.keeps_store) sn.store.emplace_back(p.id, p.envelope);
  }
  if (sn.keeps_store && !acts.forget.empty())
    std::erase_if(sn.store, [&](const auto& kv) {
      return std::find(acts.forget.begin(), acts.forget.end(), kv.first) != acts.forget.end();
    });
  for (auto& p : acts.proofs) {
    const auto idx = opener_.add_proof(
        sn.id, core::ProofBody{p.accused, p.kind, std::move(p.evidence), std::move(p.detail)},
        to_unix_ms(now));
    queue_.push(now, kPublishProof, sn.id, idx);
  }
  if (sn.node->stats().quarantines != sn.quarantines_seen) check_quarantine(sn, now);
  schedule_tick(sn, acts.next_deadline, now, from_tick);
  for (const auto& d : acts.disconnects) {
    const std::uint32_t peer = std::uint32_t(d.peer);
    if (m_.overlay.index_of(int(sn.id), peer) < 0) continue;
    ++r_.disconnects;
    if (!m_.compromised[sn.id] && !m_.compromised[peer]) ++r_.honest_disconnects;
    const std::uint32_t c = edge_of(sn.id, peer);
    edges_[c].banned_until = std::max(edges_[c].banned_until, from_unix_ms(d.ban_until));
    refresh_edge(c, now);
  }
}

void World::schedule_tick(SimNode& sn, TimeMs deadline, SimTimeUs now, bool from_tick) {
  if (deadline == core::kNoDeadline || !sn.up) return;
  SimTimeUs t = std::max(from_unix_ms(deadline), now);
  // A tick that leaves a deadline at or before now would spin: move it to the next ms.
  if (from_tick && t <= now) {
    t = (now / 1000 + 1) * 1000;
    ++r_.spin_ticks;
  }
  if (sn.tick_at >= 0 && sn.tick_at <= t) return;
  sn.tick_at = t;
  queue_.push(t, kTick, sn.id);
}

void World::send(std::uint32_t from, std::uint32_t to, core::Message&& msg, SimTimeUs now) {
  ++r_.messages_sent;
  count_claim_envelopes(msg);
  const int i = m_.overlay.index_of(int(from), to);
  if (i < 0) {
    ++r_.messages_lost;
    return;
  }
  const std::uint32_t directed = m_.overlay.edge_id(int(from), i);
  const std::uint32_t c = canonical_[directed];
  const auto& link = m_.scenario.link;
  if (!edges_[c].connected || (link.loss > 0 && link_rng_.chance(link.loss))) {
    ++r_.messages_lost;
    return;
  }
  const double delay_ms =
      link.latency_ms + (link.jitter_ms > 0 ? link_rng_.uniform() * link.jitter_ms : 0);
  // Per-connection FIFO (TCP): a message never overtakes an earlier one on the same link.
  const SimTimeUs at =
      std::max(now + SimTimeUs(std::llround(delay_ms * 1000)), last_arrival_[directed]);
  last_arrival_[directed] = at;
  const std::uint32_t slot = alloc_slot();
  InFlight& f = slots_[slot];
  // Free slots hold an empty Push: moving a Push in is a pointer move, not a variant visit.
  auto* in = std::get_if<core::Push>(&msg);
  auto* held = std::get_if<core::Push>(&f.message);
  if (in != nullptr && held != nullptr)
    held->envelope = std::move(in->envelope);
  else
    f.message = std::move(msg);
  f.from = from;
  f.edge = c;
  f.epoch = edges_[c].epoch;
  queue_.push(at, kDeliver, to, slot);
}

void World::deliver(const Event& e) {
  InFlight& f = slots_[e.a];
  SimNode& sn = nodes_[e.node];
  const bool live = sn.up && edges_[f.edge].connected && edges_[f.edge].epoch == f.epoch;
  auto release = [&] {  // the slot and its envelope reference, before apply() sends again
    if (auto* push = std::get_if<core::Push>(&f.message))
      push->envelope.reset();
    else
      f.message = core::Push{};
    free_slots_.push_back(e.a);
  };
  if (!live) {
    ++r_.messages_lost;
    release();
    return;
  }
  core::Actions acts = take_actions();
  // The message is read in its slot: on_message does not call back into the World, so the
  // slab cannot move under it.
  sn.node->on_message(f.from, f.message, to_unix_ms(e.at), acts);
  release();
  apply(sn, acts, e.at, false);
  give_back(std::move(acts));
}

void World::emit(std::uint32_t i, SimTimeUs now) {
  const PlannedClaim& c = m_.claims[i];
  SimNode& sn = nodes_[c.producer];
  if (!sn.up) return;  // a crashed node issues nothing
  std::uint64_t seq;
  if (c.variant == 1)
    seq = next_seq_[c.origin];  // the equivocating twin reuses the seq
  else if (c.origin < std::uint32_t(m_.nodes) && c.origin != c.producer)
    seq = next_seq_[c.origin] + 1;  // a forger guesses the victim's next seq
  else
    seq = ++next_seq_[c.origin];
  claim_seq_[i] = seq;
  core::Envelope env = core::make_envelope(make_blob('C', i, seq));
  issued_[i] = 1;
  on_emitted(i, now);
  if (c.route == Route::local_event) {
    core::Actions acts = take_actions();
    auto r = sn.node->on_local_event(env, to_unix_ms(now), acts);
    apply(sn, acts, now, false);
    give_back(std::move(acts));
    if (r) {
      // The daemon's own sensor saw it: corroboration feedback for the origins that
      // claimed the same target.
      core::Actions feedback = take_actions();
      sn.node->on_local_corroboration(m_.targets[c.target].prefix, to_unix_ms(now), feedback);
      apply(sn, feedback, now, false);
      give_back(std::move(feedback));
    }
    return;
  }
  auto nb = m_.overlay.neighbours(int(c.producer));
  for (std::size_t k = 0; k < nb.size(); ++k) {
    if (c.route == Route::push_even && k % 2 != 0) continue;
    if (c.route == Route::push_odd && k % 2 != 1) continue;
    if (!edges_[edge_of(c.producer, nb[k])].connected) continue;
    send(c.producer, nb[k], core::Message{core::Push{env}}, now);
  }
}

void World::publish_proof(std::uint32_t n, std::uint32_t proof, SimTimeUs now) {
  SimNode& sn = nodes_[n];
  if (!sn.up) return;
  const std::uint64_t seq = ++next_seq_[n];
  core::Actions acts = take_actions();
  (void)sn.node->on_local_event(core::make_envelope(make_blob('P', proof, seq)), to_unix_ms(now),
                                acts);
  apply(sn, acts, now, false);
  give_back(std::move(acts));
}

void World::refresh_edge(std::uint32_t c, SimTimeUs now) {
  Edge& e = edges_[c];
  const bool want = e.cut == 0 && nodes_[e.a].up && nodes_[e.b].up && now >= e.banned_until;
  if (want == e.connected) return;
  e.connected = want;
  if (!want) {
    ++e.epoch;
    --links_up_;
    if (e.cut == 0 && nodes_[e.a].up && nodes_[e.b].up)
      queue_.push(e.banned_until, kReconnect, 0, c);
  } else {
    ++links_up_;
  }
  for (auto [self, other] : {std::pair{e.a, e.b}, std::pair{e.b, e.a}}) {
    SimNode& sn = nodes_[self];
    if (!sn.up) continue;
    core::Actions acts = take_actions();
    // As the daemon does on a peer's handshake: the peer's certified identity and failure
    // domain become known to the engine (the domain quorum counts the domains it knows); a
    // newly known domain re-decides at the engine's next tick, which acts.next_deadline covers.
    if (want)
      sn.node->register_origin(m_.node_ids[other], m_.domain_ids[m_.domain_of[other]],
                               to_unix_ms(now), acts);
    if (want)
      sn.node->on_peer_up(other, to_unix_ms(now), acts);
    else
      sn.node->on_peer_down(other, to_unix_ms(now), acts);
    apply(sn, acts, now, false);
    give_back(std::move(acts));
  }
}

void World::crash(std::uint32_t n, SimTimeUs now) {
  SimNode& sn = nodes_[n];
  if (!sn.up) return;
  // The daemon persists its ledger; the kernel keeps enforcing pinned blocks until expiry.
  sn.saved_ledger = sn.node->ledger().serialize();
  add_counters(sn);
  sn.up = false;
  if (!m_.compromised[n]) --honest_up_;
  for (int i = 0; i < int(m_.overlay.neighbours(int(n)).size()); ++i)
    refresh_edge(canonical_[m_.overlay.edge_id(int(n), i)], now);
  sn.node.reset();
  sn.engine.reset();
  sn.tick_at = -1;
}

void World::restart(std::uint32_t n, SimTimeUs now) {
  SimNode& sn = nodes_[n];
  if (sn.up) return;
  ++r_.restarts;
  // Reconcile: blocks the kernel still holds end now; the restored engine re-enforces what
  // it still supports.
  while (!sn.blocks.empty()) close_block(sn, sn.blocks.size() - 1, now);
  make_node(n, now);
  sn.up = true;
  if (!m_.compromised[n]) ++honest_up_;
  sn.restarted_at = now;
  const TimeMs ms = to_unix_ms(now);
  if (auto ledger = trust::TrustLedger::deserialize(sn.saved_ledger, params_)) {
    core::Actions restored = take_actions();
    sn.node->restore_ledger(std::move(*ledger), ms, restored);
    // Only the block changes: restore() below arms the tick with the deadline of both.
    for (const auto& ch : restored.blocks) on_block_change(sn, ch, now);
    give_back(std::move(restored));
  }
  std::vector<core::Envelope> envs;
  envs.reserve(sn.store.size());
  for (const auto& kv : sn.store) envs.push_back(kv.second);
  core::Actions acts = take_actions();
  sn.node->restore(envs, ms, acts);
  apply(sn, acts, now, false);
  give_back(std::move(acts));
  for (int i = 0; i < int(m_.overlay.neighbours(int(n)).size()); ++i)
    refresh_edge(canonical_[m_.overlay.edge_id(int(n), i)], now);
}

}  // namespace meshd::sim

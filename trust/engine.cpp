// Engine: the public entry points. Each one clamps `now`, updates state, settles the targets
// it touched and drains trust changes, so every consequence is returned by the same call (I6).
#include "trust/engine.hpp"

#include <algorithm>
#include <stdexcept>

#include "trust/detail/engine_impl.hpp"

namespace meshd::trust {

using detail::kNone;

Engine::Engine(const Params& params, LocalContext ctx, TimeMs now) {
  if (auto v = params.validate(); !v) throw std::invalid_argument(v.error().message);
  impl_ = std::make_unique<Impl>(params, std::move(ctx), now);
}

Result<Engine> Engine::create(const Params& params, LocalContext ctx, TimeMs now) {
  if (auto v = params.validate(); !v) return std::unexpected(v.error());
  return Engine(params, std::move(ctx), now);
}

Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

void Engine::register_origin(const NodeId& node, const DomainId& domain, TimeMs now) {
  now = impl_->clamp(now);
  if (node.empty()) return;
  impl_->origin_of(node, domain, now);
  // A new failure domain raises the quorum: re-decide everything at the next tick().
  if (impl_->domains_grew) impl_->schedule(now, 0, detail::DeadlineKind::requorum);
}

Outcome Engine::on_claim(const ClaimFacts& f, const Digest& digest, TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  ++m.stats.claims_received;
  Outcome out;
  auto reject = [&](std::string code, std::string msg, std::uint64_t& counter) {
    out.status = ClaimStatus::rejected;
    out.error = Error{std::move(code), std::move(msg)};
    ++m.stats.claims_rejected;
    ++counter;
    return out;
  };
  // Only error paths name the claim: built on demand, not for every accepted claim.
  auto who = [&f] { return "claim " + f.origin.node + "/" + std::to_string(f.seq); };
  if (auto v = validate(f); !v)
    return reject(v.error().code, v.error().message, m.stats.rejected_bad_input);
  if (f.issued_at > now + m.params.max_future_ms)
    return reject("from_future",
                  who() + ": issued " + std::to_string(f.issued_at - now) +
                      " ms in the future (limit " + std::to_string(m.params.max_future_ms) + ")",
                  m.stats.rejected_future);
  TimeMs exp = std::min(f.issued_at + std::min(f.requested_ttl, m.params.ttl_max_ms),
                        now + m.params.ttl_max_ms);
  if (exp <= now)
    return reject("expired", who() + ": expired " + std::to_string(now - exp) + " ms ago",
                  m.stats.rejected_expired);

  const bool trust_mode = m.params.mode == PolicyMode::trust;
  std::uint32_t oi = m.origin_of(f.origin.node, f.origin.domain, now);
  m.requorum(now, out.changes);
  const bool self = m.origins[oi].self;
  if (trust_mode && !self && m.origins[oi].quarantine_until > now)
    return reject("quarantined", who() + ": origin is quarantined for misbehaviour",
                  m.stats.rejected_quarantined);

  auto misbehave = [&](MisbehaviourRecord rec) {
    out.status = ClaimStatus::misbehaviour;
    ++m.stats.misbehaviour_detected;
    m.quarantine(oi, now, out.changes);
    out.misbehaviour = std::move(rec);
    return out;
  };

  if (std::uint32_t c = m.find_claim(oi, f.seq); c != kNone) {
    if (m.claims[c].digest == digest) {
      out.status = ClaimStatus::duplicate;
      ++m.stats.claims_duplicate;
      return out;
    }
    if (!trust_mode || self)
      return reject("equivocation", who() + ": a different body with this sequence is known",
                    m.stats.rejected_bad_input);
    MisbehaviourRecord rec;
    rec.kind = MisbehaviourKind::equivocation;
    rec.origin = Origin{f.origin.node, f.origin.domain};
    rec.detected_at = now;
    rec.claims.push_back(OffendingClaim{m.facts_of(c), m.claims[c].digest});
    rec.claims.push_back(OffendingClaim{f, digest});
    rec.reason = who() + ": two different bodies signed with the same sequence number";
    return misbehave(std::move(rec));
  }
  if (m.tombstoned(oi, f.seq)) {
    out.status = ClaimStatus::retracted;
    ++m.stats.claims_retracted;
    return out;
  }
  if (trust_mode) {
    if (const ProtectedPrefix* pp = m.protected_container(f.prefix)) {
      std::string why = who() + ": targets " + f.prefix.to_string() + ", inside protected " +
                        pp->prefix.to_string() + " (" + pp->reason + ")";
      if (!pp->fleet_wide || self) return reject("protected", why, m.stats.rejected_protected);
      ++m.stats.rejected_protected;
      MisbehaviourRecord rec;
      rec.kind = MisbehaviourKind::protected_target;
      rec.origin = Origin{f.origin.node, f.origin.domain};
      rec.detected_at = now;
      rec.claims.push_back(OffendingClaim{f, digest});
      rec.reason = why;
      return misbehave(std::move(rec));
    }
  }

  std::uint32_t t = m.get_target(f.prefix);
  for (std::uint32_t c = m.targets[t].head; c != kNone; c = m.claims[c].t_next) {
    if (m.claims[c].flags & detail::kSuperseded) break;
    if (m.claims[c].origin != oi) continue;
    if (m.claims[c].seq > f.seq) {
      out.status = ClaimStatus::stale;
      ++m.stats.claims_stale;
      m.maybe_free_target(t);
      return out;
    }
    m.supersede(c);  // the newer claim of the same origin replaces it
    break;
  }
  const std::uint32_t c = m.add_claim(f, digest, oi, t, now);
  ++m.stats.claims_accepted;
  if (trust_mode && !self) {
    if (auto rec = m.overrun_check(oi, f.issued_at, now)) return misbehave(std::move(*rec));
    // A claim on what this node sees working (strong benign evidence) costs its origin trust
    // before it is weighed (the drain below re-decides the origin's other targets: I6).
    out.contradicted = m.check_contradiction(c, now);
  }
  m.settle(t, now, ChangeCause::evidence, out.changes);
  m.drain(now, out.changes);
  return out;
}

RetractionOutcome Engine::on_retraction(const NodeId& origin, std::uint64_t claim_seq, TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  RetractionOutcome out;
  ++m.stats.retractions;
  std::uint32_t oi = m.find_origin(origin);
  if (oi == kNone) {
    const LedgerEntry* e = m.ledger.find(origin);
    oi = m.origin_of(origin, e ? e->domain : DomainId{}, now);
  }
  m.requorum(now, out.changes);
  if (m.tombstoned(oi, claim_seq)) {
    out.status = RetractionStatus::duplicate;
    return out;
  }
  m.add_tombstone(oi, claim_seq, now);
  std::uint32_t c = m.find_claim(oi, claim_seq);
  if (c == kNone) {
    out.status = RetractionStatus::remembered;
    ++m.stats.retractions_early;
    return out;
  }
  std::uint32_t t = m.claims[c].target;
  bool active = !(m.claims[c].flags & detail::kSuperseded);
  m.free_claim(c);
  if (active)
    m.settle(t, now, ChangeCause::retraction, out.changes);
  else
    m.maybe_free_target(t);
  m.drain(now, out.changes);
  return out;
}

Result<std::vector<BlockChange>> Engine::on_operator_decision(const OperatorDecision& d,
                                                              TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  using A = OperatorDecision::Action;
  std::vector<BlockChange> out;
  TimeMs cap = now + m.params.operator_ttl_max_ms;
  TimeMs until = d.expires_at <= now || d.expires_at > cap ? cap : d.expires_at;
  switch (d.action) {
    case A::block: {
      if (const ProtectedPrefix* pp = m.protected_overlap(d.prefix))
        return fail("protected", "operator block of " + d.prefix.to_string() +
                                     " refused: overlaps protected " + pp->prefix.to_string() +
                                     " (" + pp->reason + ")");
      std::uint32_t t = m.get_target(d.prefix);
      m.op_blocks[t] = detail::OpBlock{d.direction, until, d.reason};
      m.targets[t].flags |= detail::kOperator;
      m.wake_target(t, until);
      m.settle(t, now, ChangeCause::operator_decision, out);
      break;
    }
    case A::unblock: {
      std::uint32_t t = m.find_target(d.prefix);
      if (t == kNone) break;
      if (m.targets[t].flags & detail::kOperator) {
        m.op_blocks.erase(t);
        m.targets[t].flags &= static_cast<std::uint8_t>(~detail::kOperator);
      }
      // Drop the claims (remembered as retracted so gossip does not bring them back).
      std::vector<std::uint32_t> blamed;
      while (m.targets[t].head != kNone) {
        std::uint32_t c = m.targets[t].head;
        blamed.push_back(m.claims[c].origin);
        m.add_tombstone(m.claims[c].origin, m.claims[c].seq, now);
        m.free_claim(c);
      }
      m.settle(t, now, ChangeCause::operator_decision, out);
      if (d.false_positive && m.params.mode == PolicyMode::trust) {
        std::sort(blamed.begin(), blamed.end());
        blamed.erase(std::unique(blamed.begin(), blamed.end()), blamed.end());
        for (std::uint32_t oi : blamed) {
          if (m.origins[oi].self) continue;
          m.ledger.add_loss(m.origins[oi].node, m.params.weight_false_positive, now);
          ++m.stats.trust_losses;
          m.trust_changed(oi, now);
        }
      }
      m.maybe_free_target(t);
      break;
    }
    case A::allow: {
      m.allows.push_back(detail::OpAllow{d.prefix, until, d.reason});
      m.schedule(until, 0, detail::DeadlineKind::allow_expiry);
      for (std::uint32_t t : m.overlapping_targets(d.prefix))
        m.settle(t, now, ChangeCause::operator_decision, out);
      break;
    }
    case A::clear: {
      std::erase_if(m.allows, [&](const detail::OpAllow& a) { return a.prefix == d.prefix; });
      if (std::uint32_t t = m.find_target(d.prefix);
          t != kNone && (m.targets[t].flags & detail::kOperator)) {
        m.op_blocks.erase(t);
        m.targets[t].flags &= static_cast<std::uint8_t>(~detail::kOperator);
      }
      for (std::uint32_t t : m.overlapping_targets(d.prefix))
        m.settle(t, now, ChangeCause::operator_decision, out);
      break;
    }
    default:
      return fail("bad_operator_decision",
                  "unknown operator action " + std::to_string(static_cast<int>(d.action)));
  }
  ++m.stats.operator_decisions;
  m.drain(now, out);
  return out;
}

Result<void> Engine::check_misbehaviour(const MisbehaviourRecord& r) const {
  const auto& m = *impl_;
  auto bad = [&](const std::string& why) {
    return fail("bad_proof", "misbehaviour record for " + r.origin.node + " (" +
                                 std::string(to_string(r.kind)) + "): " + why);
  };
  if (r.origin.node.empty()) return bad("no origin");
  if (r.claims.empty()) return bad("lists no claims");
  for (const auto& c : r.claims) {
    if (c.facts.origin.node != r.origin.node) return bad("lists a claim of another origin");
    if (auto v = validate(c.facts); !v) return bad(v.error().message);
  }
  switch (r.kind) {
    case MisbehaviourKind::equivocation: {
      for (std::size_t i = 0; i < r.claims.size(); ++i)
        for (std::size_t j = i + 1; j < r.claims.size(); ++j)
          if (r.claims[i].facts.seq == r.claims[j].facts.seq &&
              r.claims[i].digest != r.claims[j].digest)
            return {};
      return bad("no two claims share a sequence number with different bodies");
    }
    case MisbehaviourKind::protected_target: {
      auto list = builtin_protected();
      for (const auto& pp : m.ctx.protected_prefixes) list.push_back(pp);
      for (const auto& c : r.claims)
        for (const auto& pp : list)
          if (pp.fleet_wide && pp.prefix.contains(c.facts.prefix)) return {};
      return bad("no listed claim targets a fleet-wide protected prefix");
    }
    case MisbehaviourKind::budget_overrun: {
      std::vector<std::pair<TimeMs, std::uint64_t>> v;
      for (const auto& c : r.claims) v.emplace_back(c.facts.issued_at, c.facts.seq);
      std::sort(v.begin(), v.end(), [](auto& a, auto& b) {
        return a.second != b.second ? a.second < b.second : a < b;
      });
      v.erase(
          std::unique(v.begin(), v.end(), [](auto& a, auto& b) { return a.second == b.second; }),
          v.end());
      if (v.size() <= static_cast<std::size_t>(m.params.overrun_max_claims))
        return bad(std::to_string(v.size()) + " distinct claims do not exceed the limit of " +
                   std::to_string(static_cast<std::size_t>(m.params.overrun_max_claims)));
      auto [lo, hi] = std::minmax_element(v.begin(), v.end());
      if (hi->first - lo->first > m.params.overrun_window_ms)
        return bad("the claims span more than overrun_window_ms");
      return {};
    }
  }
  return bad("unknown kind");
}

std::vector<BlockChange> Engine::apply_proof(const NodeId& origin, TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  std::vector<BlockChange> out;
  if (m.params.mode != PolicyMode::trust || origin.empty()) return out;
  std::uint32_t oi = m.find_origin(origin);
  if (oi == kNone) {
    const LedgerEntry* e = m.ledger.find(origin);
    oi = m.origin_of(origin, e ? e->domain : DomainId{}, now);
  }
  m.requorum(now, out);
  if (m.origins[oi].self) return out;
  ++m.stats.proofs_applied;
  m.quarantine(oi, now, out);
  return out;
}

std::vector<BlockChange> Engine::on_local_corroboration(const Prefix& prefix, TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  std::vector<BlockChange> out;
  if (m.params.mode != PolicyMode::trust) return out;
  for (std::uint32_t t : m.overlapping_targets(prefix))
    for (std::uint32_t c = m.targets[t].head; c != kNone; c = m.claims[c].t_next) {
      auto& cr = m.claims[c];
      if (cr.flags & detail::kSuperseded) break;
      if (cr.flags & detail::kCreditLocal) continue;
      cr.flags |= detail::kCreditLocal;
      m.queue_gain(cr.origin, m.params.weight_local, now);
    }
  m.drain(now, out);
  return out;
}

std::vector<BlockChange> Engine::on_local_contradiction(const Prefix& prefix, TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  std::vector<BlockChange> out;
  if (m.params.mode != PolicyMode::trust) return out;
  for (std::uint32_t t : m.overlapping_targets(prefix))
    for (std::uint32_t c = m.targets[t].head; c != kNone; c = m.claims[c].t_next) {
      auto& cr = m.claims[c];
      if (cr.flags & detail::kSuperseded) break;
      if ((cr.flags & detail::kDebitLocal) || m.origins[cr.origin].self) continue;
      cr.flags |= detail::kDebitLocal;
      m.ledger.add_loss(m.origins[cr.origin].node, m.params.weight_contradiction, now);
      ++m.stats.trust_losses;
      m.trust_changed(cr.origin, now);
    }
  m.drain(now, out);
  return out;
}

std::vector<BlockChange> Engine::on_usage_changed(const Prefix& prefix, TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  std::vector<BlockChange> out;
  if (m.params.mode != PolicyMode::trust) return out;
  m.recheck_targets(m.overlapping_targets(prefix), now, out);
  m.drain(now, out);
  return out;
}

std::vector<BlockChange> Engine::recheck_usage(TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  std::vector<BlockChange> out;
  if (m.params.mode != PolicyMode::trust) return out;
  std::vector<std::uint32_t> ts;
  for (std::uint32_t t = 0; t < m.targets.size(); ++t)
    if (m.targets[t].flags & detail::kTargetLive) ts.push_back(t);
  m.recheck_targets(ts, now, out);
  m.drain(now, out);
  return out;
}

std::vector<BlockChange> Engine::tick(TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  std::vector<BlockChange> out;
  while (!m.deadlines.empty() && m.deadlines.top().at <= now) {
    detail::Deadline d = m.deadlines.top();
    m.deadlines.pop();
    m.process_deadline(d, now, out);
  }
  m.drain(now, out);
  return out;
}

std::optional<TimeMs> Engine::next_deadline() const {
  if (impl_->deadlines.empty()) return std::nullopt;
  return impl_->deadlines.top().at;
}

std::vector<BlockChange> Engine::reevaluate(const Prefix& prefix, TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  std::vector<BlockChange> out;
  if (std::uint32_t t = m.find_target(prefix); t != kNone)
    m.settle(t, now, ChangeCause::evidence, out);
  m.drain(now, out);
  return out;
}

std::vector<BlockChange> Engine::reevaluate_all(TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  std::vector<BlockChange> out;
  m.settle_all(now, ChangeCause::evidence, out);
  m.drain(now, out);
  return out;
}

Decision Engine::decide(const Prefix& prefix, TimeMs now) const {
  now = impl_->view(now);
  return impl_->evaluate(impl_->find_target(prefix), prefix, now).d;
}

Explanation Engine::explain(const Prefix& prefix, TimeMs now) const {
  now = impl_->view(now);
  return impl_->explain(impl_->find_target(prefix), prefix, now);
}

std::vector<Explanation> Engine::explain_overlapping(const Prefix& prefix, TimeMs now) const {
  now = impl_->view(now);
  std::vector<Explanation> out;
  for (std::uint32_t t : impl_->overlapping_targets(prefix))
    out.push_back(impl_->explain(t, impl_->targets[t].prefix, now));
  return out;
}

std::vector<EnforcedBlock> Engine::enforced() const {
  std::vector<EnforcedBlock> out;
  for (std::uint32_t t = 0; t < impl_->targets.size(); ++t)
    if (auto b = enforced(impl_->targets[t].prefix);
        b && (impl_->targets[t].flags & detail::kTargetLive))
      out.push_back(*b);
  std::sort(out.begin(), out.end(),
            [](const EnforcedBlock& a, const EnforcedBlock& b) { return a.prefix < b.prefix; });
  return out;
}

std::optional<EnforcedBlock> Engine::enforced(const Prefix& prefix) const {
  std::uint32_t t = impl_->find_target(prefix);
  if (t == kNone || !(impl_->targets[t].flags & detail::kEnforced)) return std::nullopt;
  const auto& T = impl_->targets[t];
  return EnforcedBlock{T.prefix,     T.direction, T.since,
                       T.expires_at, T.score,     (T.flags & detail::kOperator) != 0};
}

const TrustLedger& Engine::ledger() const {
  return impl_->ledger;
}

std::vector<BlockChange> Engine::restore_ledger(TrustLedger ledger, TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  m.ledger = std::move(ledger);
  m.ledger.set_params(m.params);
  if (!m.ctx.self.node.empty()) m.ledger.pin(m.ctx.self.node, m.ctx.self.domain, now);
  for (std::uint32_t oi = 0; oi < m.origins.size(); ++oi) {
    m.ledger.ensure(m.origins[oi].node, m.domains[m.origins[oi].domain], now);
    m.set_trust_cache(oi, now);
    if (m.origins[oi].quarantine_until > now)
      m.schedule(m.origins[oi].quarantine_until, oi, detail::DeadlineKind::quarantine_end);
  }
  std::vector<BlockChange> out;
  m.domains_grew = false;  // settle_all below re-decides everything
  m.settle_all(now, ChangeCause::trust, out);
  m.drain(now, out);
  return out;
}

std::vector<BlockChange> Engine::set_protected(std::vector<ProtectedPrefix> list, TimeMs now) {
  auto& m = *impl_;
  now = m.clamp(now);
  m.ctx.protected_prefixes = std::move(list);
  m.protected_list.clear();
  if (m.params.mode == PolicyMode::trust) m.protected_list = builtin_protected();
  for (const auto& pp : m.ctx.protected_prefixes) m.protected_list.push_back(pp);
  std::vector<BlockChange> out;
  m.settle_all(now, ChangeCause::protected_list, out);
  m.drain(now, out);
  return out;
}

Result<std::vector<BlockChange>> Engine::set_params(const Params& params, TimeMs now) {
  if (auto v = params.validate(); !v) return std::unexpected(v.error());
  auto& m = *impl_;
  now = m.clamp(now);
  m.params = params;
  m.ledger.set_params(params);
  m.protected_list.clear();
  if (params.mode == PolicyMode::trust) m.protected_list = builtin_protected();
  for (const auto& pp : m.ctx.protected_prefixes) m.protected_list.push_back(pp);
  for (std::uint32_t oi = 0; oi < m.origins.size(); ++oi) m.set_trust_cache(oi, now);
  std::vector<BlockChange> out;
  m.settle_all(now, ChangeCause::params, out);
  m.drain(now, out);
  return out;
}

const Params& Engine::params() const {
  return impl_->params;
}
const EngineStats& Engine::stats() const {
  return impl_->stats;
}

}  // namespace meshd::trust

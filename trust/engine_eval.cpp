// The decision for one target (evaluate, pure) and applying it (settle).
#include <algorithm>
#include <cmath>
#include <limits>

#include "trust/detail/engine_impl.hpp"
#include "trust/policy.hpp"

namespace meshd::trust {

using detail::ClaimRec;
using detail::DomainAcc;
using detail::Eval;
using detail::kNone;

namespace {

Direction unite(Direction a, Direction b) {
  return static_cast<Direction>(static_cast<std::uint8_t>(a) | static_cast<std::uint8_t>(b));
}

}  // namespace

detail::Eval Engine::Impl::evaluate(std::uint32_t t, const Prefix& p, TimeMs now) const {
  Eval e;
  Decision& d = e.d;
  const detail::TargetRec* T = t == kNone ? nullptr : &targets[t];
  const bool enforced = T && (T->flags & detail::kEnforced);
  const bool trust_mode = params.mode == PolicyMode::trust;

  // Operator block: authoritative, but never on a protected prefix (I1, all modes).
  if (T && (T->flags & detail::kOperator)) {
    auto it = op_blocks.find(t);
    if (it != op_blocks.end() && it->second.expires_at > now) {
      if ((e.prot = protected_overlap(p))) {
        d.verdict = Verdict::protected_prefix;
        d.cost = std::numeric_limits<double>::infinity();
        return e;
      }
      d.verdict = Verdict::operator_block;
      d.enforce = true;
      d.score = 1;
      d.threshold = 0;
      d.direction = it->second.direction;
      d.expires_at = it->second.expires_at;
      d.ttl = d.expires_at - now;
      e.since = enforced ? T->since : now;
      return e;
    }
  }

  // Gather the active claims: per-domain max of t*c, benefit weighted by contribution.
  auto& acc = scratch_domains;
  acc.clear();
  bool any_dir = false;
  Direction dir = Direction::egress;
  double b_num = 0, b_den = 0, b_max = 0, max_conf = 0;
  TimeMs max_exp = 0;
  std::size_t count = 0;
  if (T) {
    for (std::uint32_t c = T->head; c != kNone; c = claims[c].t_next) {
      const ClaimRec& cr = claims[c];
      if (cr.flags & detail::kSuperseded) break;  // the rest were replaced by newer claims
      if (cr.expires_at <= now) continue;         // expired, not yet collected
      ++count;
      dir = any_dir ? unite(dir, cr.direction) : cr.direction;
      any_dir = true;
      double b = benefit(cr.severity, params);
      b_max = std::max(b_max, b);
      max_conf = std::max(max_conf, static_cast<double>(cr.confidence));
      if (!trust_mode) continue;
      if (cr.epoch != T->epoch) continue;  // spent by an earlier block that ran out of time
      const auto& o = origins[cr.origin];
      double tc = o.trust * static_cast<double>(cr.confidence);
      if (!(tc > 0)) continue;
      if (o.self) d.self_claim = true;
      b_num += tc * b;
      b_den += tc;
      max_exp = std::max(max_exp, cr.expires_at);
      auto it = std::find_if(acc.begin(), acc.end(),
                             [&](const DomainAcc& a) { return a.domain == o.domain; });
      if (it == acc.end()) {
        acc.push_back(DomainAcc{o.domain, tc, cr.origin, c});
      } else if (tc > it->max_tc || (tc == it->max_tc && o.node < origins[it->lead].node)) {
        it->max_tc = tc;
        it->lead = cr.origin;
        it->lead_claim = c;
      }
    }
  }
  d.origins = count;
  d.direction = any_dir ? dir : Direction::both;

  // Cost (protected = infinite) and benefit.
  if (trust_mode && (e.prot = protected_overlap(p))) {
    d.cost = std::numeric_limits<double>::infinity();
  } else if (trust_mode) {
    if (ctx.usage) e.ev = ctx.usage->evidence(p, now);
    e.flows = e.ev.flows;
    d.benign = benign_flows(e.ev, params);
    d.strong_benign = strong_benign(e.ev, params);
    d.cost = cost(p, e.flows, d.benign, params);
  } else {
    e.flows = ctx.usage ? ctx.usage->flows(p, now) : 0;
    e.ev.flows = e.flows;
    d.cost = cost(p, e.flows, params);
  }
  d.benefit = b_den > 0 ? b_num / b_den : b_max;
  e.allow = allow_overlap(p, now);

  if (params.mode != PolicyMode::trust) {
    d.threshold = 0;
    std::uint32_t need = params.mode == PolicyMode::naive ? 1 : params.quorum_k;
    d.score = params.mode == PolicyMode::naive
                  ? max_conf
                  : std::min(1.0, static_cast<double>(count) / static_cast<double>(need));
    if (e.allow) {
      d.verdict = Verdict::operator_allow;
      return e;
    }
    if (count == 0) {
      d.verdict = Verdict::no_claims;
      return e;
    }
    if (count < need) {
      d.verdict = Verdict::quorum_not_met;
      return e;
    }
    // The block lasts while `need` claims remain: the need-th latest claim expiry.
    auto& times = scratch_times;
    times.clear();
    for (std::uint32_t c = T->head; c != kNone; c = claims[c].t_next) {
      if (claims[c].flags & detail::kSuperseded) break;
      if (claims[c].expires_at > now) times.push_back(claims[c].expires_at);
    }
    std::nth_element(times.begin(), times.begin() + (need - 1), times.end(), std::greater<>());
    d.expires_at = std::min(times[need - 1], now + params.ttl_max_ms);
    d.ttl = d.expires_at - now;
    d.verdict = Verdict::enforce;
    d.enforce = true;
    e.since = enforced ? T->since : now;
    return e;
  }

  double miss = 1.0;
  for (const auto& a : acc) {
    double s = domain_support(a.max_tc, params);
    if (s > 0) ++d.domains;
    miss *= 1.0 - s;
  }
  d.score = 1.0 - miss;
  d.single_domain = d.domains == 1;
  // Collusion resistance: the quorum the local benign evidence demands, and the benefit the
  // backing domains may invoke (severity is the claimants' own word).
  d.fleet_domains = std::max<std::size_t>(params.fleet_domains, named_domains);
  d.quorum_max = quorum_max(d.fleet_domains, params);
  // The quorum guards against REMOTE claims: this node's own detection needs none.
  d.domains_required =
      d.self_claim ? 1 : required_domains(d.benign, d.strong_benign, d.quorum_max, params);
  d.benefit_claimed = d.benefit;
  d.benefit_cap = benefit_cap(d.domains, d.quorum_max, params);
  d.benefit = std::min(d.benefit, d.benefit_cap);
  d.threshold = threshold(d.cost, d.benefit);

  if (e.prot) {
    d.verdict = Verdict::protected_prefix;
    return e;
  }
  if (e.allow) {
    d.verdict = Verdict::operator_allow;
    return e;
  }
  if (count == 0) {
    d.verdict = Verdict::no_claims;
    return e;
  }
  if (!(d.score > 0) || d.score < d.threshold) {
    d.verdict = Verdict::below_threshold;
    return e;
  }
  if (d.domains < d.domains_required) {
    d.verdict = Verdict::domains_short;
    return e;
  }
  d.ttl = ttl_for(d.score, d.threshold, d.single_domain, params);
  TimeMs since = enforced ? T->since : now;
  DurationMs cap = d.single_domain ? params.ttl_single_ms : params.ttl_max_ms;
  d.expires_at = std::min({since + d.ttl, since + cap, max_exp});
  if (d.expires_at <= now) {
    // This enforcement has used its time; the claims that paid for it are spent.
    e.used_up = true;
    d.verdict = Verdict::below_threshold;
    return e;
  }
  e.since = since;

  // Budget (I3): every pivotal domain of a new block pays one token: a domain without which
  // the decision would fail (fewer domains than required, or S below the threshold with the
  // benefit the remaining domains may invoke). One domain alone is always pivotal. The payer
  // is an origin of that domain with a token whose t*c, standing for the domain, still
  // carries the decision; the local node's own claims need no budget.
  if (!enforced) {
    for (const auto& a : acc) {
      const double s_a = domain_support(a.max_tc, params);
      if (!(s_a > 0)) continue;
      const double miss_wo = miss / (1.0 - s_a);  // s_a <= s_cap < 1
      const std::size_t d_wo = d.domains - 1;
      if (d_wo >= 1 && d_wo >= d.domains_required) {
        const double s_wo = 1.0 - miss_wo;
        const double b_wo = std::min(d.benefit_claimed, benefit_cap(d_wo, d.quorum_max, params));
        if (s_wo > 0 && s_wo >= threshold(d.cost, b_wo)) continue;  // not pivotal
      }
      detail::PayerRec pay;
      pay.domain = a.domain;
      std::uint32_t best = kNone;
      double best_tc = -1;
      TimeMs retry = 0;
      for (std::uint32_t c = T->head; c != kNone; c = claims[c].t_next) {
        const ClaimRec& cr = claims[c];
        if (cr.flags & detail::kSuperseded) break;
        if (cr.expires_at <= now || cr.epoch != T->epoch) continue;
        const auto& o = origins[cr.origin];
        if (o.domain != a.domain) continue;
        double tc = o.trust * static_cast<double>(cr.confidence);
        // Can it carry its domain's part alone?
        if (1.0 - miss_wo * (1.0 - domain_support(tc, params)) < d.threshold) continue;
        if (o.self) {
          pay.self = true;
          break;
        }
        double tokens = tokens_at(o, now);
        if (tokens >= 1.0) {
          if (tc > best_tc || (tc == best_tc && o.node < origins[best].node)) {
            best = cr.origin;
            best_tc = tc;
          }
        } else {
          double rate = rate_per_ms(o);
          if (rate > 0 && capacity(o) >= 1.0) {
            auto wait = static_cast<TimeMs>(std::ceil((1.0 - tokens) / rate));
            TimeMs at = now + std::max<TimeMs>(wait, 1);
            retry = retry == 0 ? at : std::min(retry, at);
          }
        }
      }
      if (!pay.self) {
        pay.origin = best;
        if (best == kNone) pay.retry_at = retry;
      }
      e.payers.push_back(pay);
    }
    bool pending = false;
    TimeMs retry = 0;
    for (const auto& pay : e.payers) {
      if (pay.self || pay.origin != kNone) continue;
      pending = true;
      // Every pending domain must have a token: retry when the last of them can.
      if (pay.retry_at == 0) {
        retry = -1;
      } else if (retry >= 0) {
        retry = std::max(retry, pay.retry_at);
      }
    }
    if (pending) {
      d.verdict = Verdict::pending_budget;
      e.retry_at = retry < 0 ? 0 : retry;
      return e;
    }
  }
  d.verdict = Verdict::enforce;
  d.enforce = true;
  return e;
}

void Engine::Impl::settle(std::uint32_t t, TimeMs now, ChangeCause cause,
                          std::vector<BlockChange>& out) {
  auto& T = targets[t];
  Eval e = evaluate(t, T.prefix, now);
  bool was = T.flags & detail::kEnforced;
  if (e.used_up) {
    out.push_back(BlockChange{BlockChange::Kind::lift, T.prefix, T.direction, 0, e.d.score,
                              ChangeCause::expiry});
    ++stats.blocks_lifted;
    --stats.active_blocks;
    T.flags &= static_cast<std::uint8_t>(~detail::kEnforced);
    ++T.epoch;
    was = false;
    e = evaluate(t, T.prefix, now);
  }
  if (e.d.enforce) {
    for (const auto& pay : e.payers) {
      if (pay.origin == kNone) continue;
      auto& o = origins[pay.origin];
      o.tokens = tokens_at(o, now) - 1.0;
      o.tokens_at = now;
    }
    // Small extensions are not worth a kernel update each time trust creeps up; they are
    // applied when the current expiry comes (shortening is always applied at once).
    TimeMs exp = e.d.expires_at;
    if (was && T.expires_at > now && exp > T.expires_at &&
        exp - T.expires_at < params.retime_min_ms && T.direction == e.d.direction &&
        e.d.verdict != Verdict::operator_block)
      exp = T.expires_at;
    bool changed = !was || T.expires_at != exp || T.direction != e.d.direction;
    if (!was) {
      T.since = now;
      T.flags |= detail::kEnforced;
      out.push_back(
          BlockChange{BlockChange::Kind::enforce, T.prefix, e.d.direction, exp, e.d.score, cause});
      ++stats.blocks_enforced;
      ++stats.active_blocks;
    } else if (changed) {
      out.push_back(
          BlockChange{BlockChange::Kind::retime, T.prefix, e.d.direction, exp, e.d.score, cause});
      ++stats.blocks_retimed;
    }
    T.expires_at = exp;
    T.direction = e.d.direction;
    T.score = static_cast<float>(e.d.score);
    if (T.flags & detail::kPending) --stats.pending_blocks;
    T.flags &= static_cast<std::uint8_t>(~detail::kPending);
  } else {
    if (was) {
      out.push_back(
          BlockChange{BlockChange::Kind::lift, T.prefix, T.direction, 0, e.d.score, cause});
      ++stats.blocks_lifted;
      --stats.active_blocks;
      T.flags &= static_cast<std::uint8_t>(~detail::kEnforced);
    }
    if (e.d.verdict == Verdict::pending_budget) {
      if (!(T.flags & detail::kPending)) {
        ++stats.budget_deferrals;
        ++stats.pending_blocks;
      }
      T.flags |= detail::kPending;
      T.expires_at = e.retry_at;
    } else {
      if (T.flags & detail::kPending) --stats.pending_blocks;
      T.flags &= static_cast<std::uint8_t>(~detail::kPending);
    }
    T.score = static_cast<float>(e.d.score);
  }
  ++stats.decisions[static_cast<std::size_t>(e.d.verdict)];
  if (e.d.verdict == Verdict::domains_short) ++stats.domains_short;
  // Corroboration by other domains earns trust only where this node has no benign evidence
  // against the target (colluders must not earn trust by agreeing on what this node uses).
  if (params.mode == PolicyMode::trust && e.d.domains >= 2 && !(e.d.benign > 0))
    credit_corroboration(t, now);
  rearm(t);
  maybe_free_target(t);
}

void Engine::Impl::settle_all(TimeMs now, ChangeCause cause, std::vector<BlockChange>& out) {
  for (std::uint32_t t = 0; t < targets.size(); ++t)
    if (targets[t].flags & detail::kTargetLive) settle(t, now, cause, out);
}

// Corroboration by another failure domain is worth as much as that domain's best origin is
// trusted here (EigenTrust's lesson: a group of colluders only holds the trust honest nodes
// send into it, so low-trust colluders agreeing with each other earn next to nothing).
void Engine::Impl::credit_corroboration(std::uint32_t t, TimeMs now) {
  auto& T = targets[t];
  // The two most trusted supporting domains: the corroborator of a claim is the best other.
  std::uint32_t dom1 = kNone;
  double best1 = 0, best2 = 0;
  for (std::uint32_t c = T.head; c != kNone; c = claims[c].t_next) {
    const auto& cr = claims[c];
    if (cr.flags & detail::kSuperseded) break;
    if (cr.expires_at <= now || cr.epoch != T.epoch) continue;
    const auto& o = origins[cr.origin];
    if (!(o.trust * cr.confidence > 0)) continue;
    if (o.domain == dom1) {
      best1 = std::max(best1, o.trust);
    } else if (o.trust > best1) {
      best2 = best1;
      best1 = o.trust;
      dom1 = o.domain;
    } else {
      best2 = std::max(best2, o.trust);
    }
  }
  for (std::uint32_t c = T.head; c != kNone; c = claims[c].t_next) {
    auto& cr = claims[c];
    if (cr.flags & detail::kSuperseded) break;
    if (cr.expires_at <= now || cr.epoch != T.epoch || (cr.flags & detail::kCreditDomain)) continue;
    const auto& o = origins[cr.origin];
    if (!(o.trust * cr.confidence > 0)) continue;
    const double other = o.domain == dom1 ? best2 : best1;
    if (!(other > 0)) continue;
    cr.flags |= detail::kCreditDomain;
    queue_gain(cr.origin, params.weight_domain * other / params.t_cap, now);
  }
}

}  // namespace meshd::trust

namespace meshd::trust {

bool Engine::Impl::check_contradiction(std::uint32_t c, TimeMs now) {
  auto& cr = claims[c];
  if (params.mode != PolicyMode::trust || !ctx.usage || cr.expires_at <= now ||
      (cr.flags & (detail::kDebitLocal | detail::kSuperseded)) || origins[cr.origin].self)
    return false;
  if (!strong_benign(ctx.usage->evidence(targets[cr.target].prefix, now), params)) return false;
  cr.flags |= detail::kDebitLocal;
  ledger.add_loss(origins[cr.origin].node, params.weight_contradiction, now);
  ++stats.trust_losses;
  ++stats.contradictions;
  trust_changed(cr.origin, now);
  return true;
}

void Engine::Impl::recheck_targets(const std::vector<std::uint32_t>& ts, TimeMs now,
                                   std::vector<BlockChange>& out) {
  for (std::uint32_t t : ts)
    for (std::uint32_t c = targets[t].head; c != kNone; c = claims[c].t_next)
      check_contradiction(c, now);
  for (std::uint32_t t : ts)
    if (targets[t].flags & detail::kTargetLive) settle(t, now, ChangeCause::evidence, out);
}

}  // namespace meshd::trust

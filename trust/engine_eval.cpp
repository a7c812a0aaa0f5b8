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
      // Expired (not yet collected by tick()) or replaced by a newer claim of its origin.
      if (cr.expires_at <= now || (cr.flags & detail::kSuperseded)) continue;
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
  } else {
    e.flows = ctx.usage ? ctx.usage->flows(p, now) : 0;
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
    for (std::uint32_t c = T->head; c != kNone; c = claims[c].t_next)
      if (claims[c].expires_at > now && !(claims[c].flags & detail::kSuperseded))
        times.push_back(claims[c].expires_at);
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
  if (d.single_domain) d.benefit = std::min(d.benefit, params.benefit_single_max);
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

  // Budget (I3): a new block resting on one domain is paid by an origin that alone clears
  // the threshold and has a token; the local node's own claims need no budget.
  if (d.single_domain && !enforced) {
    const DomainAcc* dom = nullptr;
    for (const auto& a : acc)
      if (domain_support(a.max_tc, params) > 0) dom = &a;
    std::uint32_t best = kNone;
    double best_tc = -1;
    TimeMs retry = 0;
    bool self_supports = false;
    for (std::uint32_t c = T->head; c != kNone; c = claims[c].t_next) {
      const ClaimRec& cr = claims[c];
      if (cr.expires_at <= now || cr.epoch != T->epoch || (cr.flags & detail::kSuperseded))
        continue;
      const auto& o = origins[cr.origin];
      if (o.domain != dom->domain) continue;
      double tc = o.trust * static_cast<double>(cr.confidence);
      if (domain_support(tc, params) < d.threshold) continue;  // cannot carry it alone
      if (o.self) {
        self_supports = true;
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
    if (!self_supports) {
      if (best == kNone) {
        d.verdict = Verdict::pending_budget;
        e.retry_at = retry;
        return e;
      }
      e.payer = best;
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
    if (e.payer != kNone) {
      auto& o = origins[e.payer];
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
  if (params.mode == PolicyMode::trust && e.d.domains >= 2) credit_corroboration(t, now);
  rearm(t);
  maybe_free_target(t);
}

void Engine::Impl::settle_all(TimeMs now, ChangeCause cause, std::vector<BlockChange>& out) {
  for (std::uint32_t t = 0; t < targets.size(); ++t)
    if (targets[t].flags & detail::kTargetLive) settle(t, now, cause, out);
}

void Engine::Impl::credit_corroboration(std::uint32_t t, TimeMs now) {
  auto& T = targets[t];
  for (std::uint32_t c = T.head; c != kNone; c = claims[c].t_next) {
    auto& cr = claims[c];
    if (cr.expires_at <= now || cr.epoch != T.epoch ||
        (cr.flags & (detail::kCreditDomain | detail::kSuperseded)))
      continue;
    if (!(origins[cr.origin].trust * cr.confidence > 0)) continue;
    cr.flags |= detail::kCreditDomain;
    queue_gain(cr.origin, params.weight_domain, now);
  }
}

}  // namespace meshd::trust

// explain(): the inputs and result of the decision function, and its text rendering.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "trust/detail/engine_impl.hpp"
#include "trust/policy.hpp"

namespace meshd::trust {

using detail::kNone;

std::string_view to_string(ChangeCause c) {
  switch (c) {
    case ChangeCause::evidence:
      return "evidence";
    case ChangeCause::expiry:
      return "expiry";
    case ChangeCause::retraction:
      return "retraction";
    case ChangeCause::trust:
      return "trust";
    case ChangeCause::operator_decision:
      return "operator";
    case ChangeCause::protected_list:
      return "protected";
    case ChangeCause::params:
      return "params";
    case ChangeCause::budget:
      return "budget";
  }
  return "invalid";
}

std::string_view to_string(BlockChange::Kind k) {
  switch (k) {
    case BlockChange::Kind::enforce:
      return "enforce";
    case BlockChange::Kind::retime:
      return "retime";
    case BlockChange::Kind::lift:
      return "lift";
  }
  return "invalid";
}

std::string_view to_string(ClaimStatus s) {
  switch (s) {
    case ClaimStatus::accepted:
      return "accepted";
    case ClaimStatus::duplicate:
      return "duplicate";
    case ClaimStatus::stale:
      return "stale";
    case ClaimStatus::retracted:
      return "retracted";
    case ClaimStatus::rejected:
      return "rejected";
    case ClaimStatus::misbehaviour:
      return "misbehaviour";
  }
  return "invalid";
}

std::string_view to_string(Verdict v) {
  switch (v) {
    case Verdict::enforce:
      return "enforce";
    case Verdict::below_threshold:
      return "below_threshold";
    case Verdict::protected_prefix:
      return "protected";
    case Verdict::operator_allow:
      return "operator_allow";
    case Verdict::operator_block:
      return "operator_block";
    case Verdict::pending_budget:
      return "pending_budget";
    case Verdict::no_claims:
      return "no_claims";
    case Verdict::quorum_not_met:
      return "quorum_not_met";
    case Verdict::domains_short:
      return "domains_short";
  }
  return "invalid";
}

Explanation Engine::Impl::explain(std::uint32_t t, const Prefix& p, TimeMs now) const {
  Explanation x;
  x.prefix = p;
  x.now = now;
  x.policy = policy_to_string(params);
  detail::Eval e = evaluate(t, p, now);
  x.decision = e.d;
  x.flows = e.flows;
  x.evidence = e.ev;
  x.cost_terms.base = params.cost_base;
  x.cost_terms.usage = params.cost_usage * std::log2(1.0 + static_cast<double>(e.flows));
  x.cost_terms.breadth = params.cost_breadth * effective_host_bits(p);
  if (params.mode == PolicyMode::trust)
    x.cost_terms.benign = params.cost_benign * std::max(0.0, e.d.benign);
  if (e.prot) {
    x.protected_reason = e.prot->reason;
    x.protected_by = e.prot->prefix;
  } else if (e.allow) {
    x.protected_reason = "operator allow" + (e.allow->reason.empty() ? "" : ": " + e.allow->reason);
    x.protected_by = e.allow->prefix;
  }
  x.refused_by = refusal_reasons(e.d, params.mode == PolicyMode::trust);
  if (t == kNone) return x;
  const auto& T = targets[t];
  x.enforced = T.flags & detail::kEnforced;
  x.enforced_since = x.enforced ? T.since : 0;
  x.enforced_until = x.enforced ? T.expires_at : 0;
  x.by_operator = T.flags & detail::kOperator;

  const bool trust_mode = params.mode == PolicyMode::trust;
  for (std::uint32_t c = T.head; c != kNone; c = claims[c].t_next) {
    const auto& cr = claims[c];
    if (cr.flags & detail::kSuperseded) break;  // the rest were replaced by newer claims
    if (cr.expires_at <= now) continue;
    const auto& o = origins[cr.origin];
    ClaimExplanation ce;
    ce.origin = Origin{o.node, domains[o.domain]};
    ce.seq = cr.seq;
    ce.detector = cr.detector < detectors.size() ? detectors[cr.detector] : "other";
    ce.severity = cr.severity;
    ce.direction = cr.direction;
    ce.trust = o.trust;
    ce.confidence = cr.confidence;
    ce.spent = trust_mode && cr.epoch != T.epoch;
    ce.contradicted = (cr.flags & detail::kDebitLocal) != 0;
    ce.contribution = ce.spent ? 0.0 : o.trust * static_cast<double>(cr.confidence);
    ce.quarantined = o.quarantine_until > now;
    ce.issued_at = cr.issued_at;
    ce.expires_at = cr.expires_at;
    x.claims.push_back(std::move(ce));
    if (!trust_mode || !(x.claims.back().contribution > 0)) continue;
    const auto& back = x.claims.back();
    auto it = std::find_if(x.domains.begin(), x.domains.end(), [&](const DomainExplanation& d) {
      return d.domain == back.origin.domain;
    });
    if (it == x.domains.end()) {
      x.domains.push_back(DomainExplanation{back.origin.domain, back.contribution, 0, o.node});
    } else if (back.contribution > it->max_contribution ||
               (back.contribution == it->max_contribution && o.node < it->lead)) {
      it->max_contribution = back.contribution;
      it->lead = o.node;
    }
  }
  for (auto& d : x.domains) d.support = domain_support(d.max_contribution, params);
  std::sort(x.claims.begin(), x.claims.end(), [](const auto& a, const auto& b) {
    return a.contribution != b.contribution ? a.contribution > b.contribution
                                            : a.origin.node < b.origin.node;
  });
  std::sort(x.domains.begin(), x.domains.end(), [](const auto& a, const auto& b) {
    return a.support != b.support ? a.support > b.support : a.domain < b.domain;
  });

  if (trust_mode) {
    auto describe = [&](std::uint32_t oi, const std::string& domain, bool pending,
                        TimeMs retry_at) {
      BudgetExplanation b;
      const auto& o = origins[oi];
      b.applies = !o.self;
      b.origin = o.node;
      b.domain = domain;
      b.tokens = tokens_at(o, now);
      b.capacity = capacity(o);
      b.rate_per_min = rate_per_ms(o) * static_cast<double>(kMinute);
      b.pending = pending;
      b.retry_at = pending ? retry_at : 0;
      return b;
    };
    for (const auto& pay : e.payers) {
      if (pay.self) continue;
      const std::string& dom = domains[pay.domain];
      std::uint32_t oi = pay.origin;
      if (oi == kNone) {  // pending: show the domain's lead origin
        auto it = std::find_if(x.domains.begin(), x.domains.end(),
                               [&](const DomainExplanation& d) { return d.domain == dom; });
        if (it != x.domains.end()) oi = find_origin(it->lead);
      }
      if (oi != kNone) x.payers.push_back(describe(oi, dom, pay.origin == kNone, pay.retry_at));
    }
    if (!x.payers.empty()) {
      x.budget = x.payers.front();
    } else if (x.decision.single_domain && !x.domains.empty()) {
      // Enforced already (or not decidable now): who would pay for it.
      if (std::uint32_t oi = find_origin(x.domains.front().lead); oi != kNone) {
        x.budget = describe(oi, x.domains.front().domain, false, 0);
      }
    }
  }
  return x;
}

namespace {

std::string num(double v, int prec = 3) {
  if (std::isinf(v)) return "inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

std::string dur(TimeMs ms) {
  if (ms < 0) return "-" + dur(-ms);
  char buf[64];
  if (ms < kMinute)
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  else if (ms < kHour)
    std::snprintf(buf, sizeof buf, "%.1fm", static_cast<double>(ms) / 60000.0);
  else
    std::snprintf(buf, sizeof buf, "%.1fh", static_cast<double>(ms) / 3600000.0);
  return buf;
}

}  // namespace

std::vector<Verdict> refusal_reasons(const Decision& d, bool trust_mode) {
  std::vector<Verdict> r;
  switch (d.verdict) {
    case Verdict::enforce:
    case Verdict::operator_block:
      return r;
    case Verdict::protected_prefix:
    case Verdict::operator_allow:
    case Verdict::no_claims:
    case Verdict::quorum_not_met:
      return {d.verdict};  // nothing else is weighed
    default:
      break;
  }
  // The same tests as evaluate(), all of them instead of the first that fails.
  if (trust_mode) {
    if (!(d.score > 0) || d.score < d.threshold) r.push_back(Verdict::below_threshold);
    if (d.domains < d.domains_required) r.push_back(Verdict::domains_short);
  }
  // pending_budget, or below_threshold for a block whose time is used up.
  if (std::find(r.begin(), r.end(), d.verdict) == r.end()) r.insert(r.begin(), d.verdict);
  return r;
}

std::string format_explanation(const Explanation& x) {
  const Decision& d = x.decision;
  std::string s;
  s += "target " + x.prefix.to_string() + "  (policy " + x.policy + ")\n";
  s += "decision: " + std::string(to_string(d.verdict));
  if (d.enforce)
    s += ", enforce " + std::string(to_string(d.direction)) + " for " + dur(d.expires_at - x.now);
  s += "\n";
  if (!x.refused_by.empty()) {
    // Every rule that refuses it: the verdict names only the first.
    s += "  refused by:";
    for (std::size_t i = 0; i < x.refused_by.size(); ++i) {
      const Verdict v = x.refused_by[i];
      s += (i ? ";  " : " ") + std::string(to_string(v));
      switch (v) {
        case Verdict::below_threshold:
          s += d.score >= d.threshold && d.score > 0
                   ? " (its enforcement used up its time; only fresh claims count)"
                   : " (S " + num(d.score) + " < C/(B+C) " + num(d.threshold) + ")";
          break;
        case Verdict::domains_short:
          s += " (" + std::to_string(d.domains) + " domain" + (d.domains == 1 ? "" : "s") +
               " back it, the local benign evidence requires " +
               std::to_string(d.domains_required) + ")";
          break;
        case Verdict::pending_budget:
          s += " (a pivotal domain has no budget token yet)";
          break;
        case Verdict::protected_prefix:
          s += " (overlaps a protected prefix)";
          break;
        case Verdict::operator_allow:
          s += " (overlaps an operator allow)";
          break;
        case Verdict::no_claims:
          s += " (no live claims)";
          break;
        case Verdict::quorum_not_met:
          s += " (fewer distinct origins than the quorum)";
          break;
        default:
          break;
      }
    }
    s += "\n";
  }
  s += "  S = " + num(d.score) + "   threshold C/(B+C) = " + num(d.threshold) +
       "   C = " + num(d.cost) + " (flows " + std::to_string(x.flows) +
       ")   B = " + num(d.benefit) + "\n";
  s += "  domains = " + std::to_string(d.domains) + (d.single_domain ? " (single domain)" : "") +
       "   origins = " + std::to_string(d.origins) + "   ttl = " + dur(d.ttl) + "\n";
  if (x.policy == "trust") {
    const CostTerms& k = x.cost_terms;
    s += "  C = base " + num(k.base) + " + usage " + num(k.usage) + " (log2(1 + " +
         std::to_string(x.flows) + " flows)) + breadth " + num(k.breadth) + " + benign " +
         num(k.benign) + " (cost_benign x E)" + (std::isinf(d.cost) ? ", protected: inf" : "") +
         "\n";
    s += "  local benign evidence: E = " + num(d.benign, 0) + " flows (" +
         std::to_string(x.evidence.flows) + " flows from " + std::to_string(x.evidence.sources) +
         " sources over " + dur(x.evidence.span_ms) +
         (x.evidence.flagged ? ", flagged by a local detector" : "") + ")" +
         (d.strong_benign ? ", STRONG: claims on it contradict this node" : "") + "\n";
    s += "  domains required = " + std::to_string(d.domains_required) + " (have " +
         std::to_string(d.domains) + "; full quorum " + std::to_string(d.quorum_max) +
         " of D = " + std::to_string(d.fleet_domains) + " known domains" +
         (d.self_claim ? "; waived: this node's own claim" : "") + ")\n";
    s += "  B = min(claimed " + num(d.benefit_claimed) + ", cap " + num(d.benefit_cap) + " for " +
         std::to_string(d.domains) + " domain" + (d.domains == 1 ? "" : "s") + ")\n";
  }
  if (!x.protected_reason.empty())
    s += "  protected: " + (x.protected_by ? x.protected_by->to_string() + " " : "") + "(" +
         x.protected_reason + ")\n";
  if (x.enforced)
    s += std::string("  enforced") + (x.by_operator ? " by operator" : "") + " since " +
         dur(x.now - x.enforced_since) + " ago, expires in " + dur(x.enforced_until - x.now) + "\n";
  auto budget_line = [&](const BudgetExplanation& b) {
    s += "  budget: " + b.origin + (b.domain.empty() ? "" : " [" + b.domain + "]") +
         " pays; tokens " + num(b.tokens, 2) + "/" + num(b.capacity, 2) + ", refill " +
         num(b.rate_per_min, 2) + "/min" +
         (b.pending ? (b.retry_at > 0 ? ", PENDING until +" + dur(b.retry_at - x.now)
                                      : std::string(", PENDING (no token foreseeable)"))
                    : "") +
         "\n";
  };
  if (!x.payers.empty()) {
    if (x.payers.size() > 1)
      s += "  pivotal domains: " + std::to_string(x.payers.size()) + " (each pays a token)\n";
    for (const auto& b : x.payers)
      if (b.applies) budget_line(b);
  } else if (x.budget.applies) {
    budget_line(x.budget);
  }
  if (!x.domains.empty()) {
    s += "  per domain (support = min(s_cap, max t*c)):\n";
    for (const auto& dm : x.domains)
      s += "    " + (dm.domain.empty() ? std::string("(none)") : dm.domain) + ": " +
           num(dm.support) + "  (max t*c " + num(dm.max_contribution) + " from " + dm.lead + ")\n";
  }
  if (!x.claims.empty()) {
    s += "  claims:\n";
    for (const auto& c : x.claims)
      s += "    " + c.origin.node + "#" + std::to_string(c.seq) + " [" +
           (c.origin.domain.empty() ? std::string("(none)") : c.origin.domain) + "] trust " +
           num(c.trust) + " x conf " + num(c.confidence) + " = " + num(c.contribution) + "  " +
           std::string(to_string(c.severity)) + " " + std::string(to_string(c.direction)) +
           " via " + c.detector + ", expires in " + dur(c.expires_at - x.now) +
           (c.spent ? " (spent)" : "") + (c.quarantined ? " (quarantined)" : "") +
           (c.contradicted ? " (contradicted local benign evidence)" : "") + "\n";
  }
  return s;
}

}  // namespace meshd::trust

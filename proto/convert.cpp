#include "proto/convert.hpp"

#include <cstring>

#include "proto/envelope.hpp"

namespace meshd::proto {

Result<Prefix> to_prefix(const v1::Cidr& cidr) {
  Prefix p;
  const std::string& a = cidr.addr();
  if (a.size() == 4) {
    p.family = Family::v4;
  } else if (a.size() == 16) {
    p.family = Family::v6;
  } else {
    return fail("bad_prefix",
                "prefix address is " + std::to_string(a.size()) + " bytes, expected 4 or 16");
  }
  if (cidr.prefix_len() > static_cast<std::uint32_t>(p.max_len())) {
    return fail("bad_prefix", "prefix length " + std::to_string(cidr.prefix_len()) + " exceeds " +
                                  std::to_string(p.max_len()));
  }
  p.len = static_cast<std::uint8_t>(cidr.prefix_len());
  std::memcpy(p.addr.data(), a.data(), a.size());
  // Host bits must be zero: the same prefix must have one byte form (dedup, quorum keys).
  for (std::size_t bit = p.len; bit < a.size() * 8; ++bit) {
    if (p.addr[bit / 8] & (0x80 >> (bit % 8))) {
      return fail("bad_prefix", "prefix " + p.to_string() + " has host bits set beyond /" +
                                    std::to_string(p.len));
    }
  }
  return p;
}

v1::Cidr to_cidr(const Prefix& prefix) {
  v1::Cidr c;
  std::size_t n = prefix.family == Family::v4 ? 4 : 16;
  c.set_addr(reinterpret_cast<const char*>(prefix.addr.data()), n);
  c.set_prefix_len(prefix.len);
  return c;
}

Result<Direction> to_direction(v1::Direction d) {
  switch (d) {
    case v1::DIRECTION_EGRESS:
      return Direction::egress;
    case v1::DIRECTION_INGRESS:
      return Direction::ingress;
    case v1::DIRECTION_BOTH:
      return Direction::both;
    default:
      return fail("bad_direction", "direction " + std::to_string(static_cast<int>(d)) +
                                       " is not egress/ingress/both");
  }
}

v1::Direction to_wire(Direction d) {
  return static_cast<v1::Direction>(d);
}

Result<Severity> to_severity(v1::Severity s) {
  switch (s) {
    case v1::SEVERITY_LOW:
      return Severity::low;
    case v1::SEVERITY_MEDIUM:
      return Severity::medium;
    case v1::SEVERITY_HIGH:
      return Severity::high;
    case v1::SEVERITY_CRITICAL:
      return Severity::critical;
    default:
      return fail("bad_severity", "severity " + std::to_string(static_cast<int>(s)) +
                                      " is not low/medium/high/critical");
  }
}

v1::Severity to_wire(Severity s) {
  switch (s) {
    case Severity::info:
    case Severity::low:
      return v1::SEVERITY_LOW;
    case Severity::medium:
      return v1::SEVERITY_MEDIUM;
    case Severity::high:
      return v1::SEVERITY_HIGH;
    case Severity::critical:
      return v1::SEVERITY_CRITICAL;
  }
  return v1::SEVERITY_MEDIUM;
}

Result<OperatorAction> to_action(v1::OperatorAction a) {
  switch (a) {
    case v1::OPERATOR_ACTION_BLOCK:
      return OperatorAction::block;
    case v1::OPERATOR_ACTION_UNBLOCK:
      return OperatorAction::unblock;
    case v1::OPERATOR_ACTION_ALLOW:
      return OperatorAction::allow;
    default:
      return fail("bad_action", "operator decision has no valid action");
  }
}

v1::OperatorAction to_wire(OperatorAction a) {
  switch (a) {
    case OperatorAction::block:
      return v1::OPERATOR_ACTION_BLOCK;
    case OperatorAction::unblock:
      return v1::OPERATOR_ACTION_UNBLOCK;
    case OperatorAction::allow:
      return v1::OPERATOR_ACTION_ALLOW;
    case OperatorAction::clear:
      break;
  }
  return v1::OPERATOR_ACTION_UNSPECIFIED;
}

Result<MisbehaviourKind> to_kind(v1::MisbehaviourKind k) {
  switch (k) {
    case v1::MISBEHAVIOUR_KIND_EQUIVOCATION:
      return MisbehaviourKind::equivocation;
    case v1::MISBEHAVIOUR_KIND_PROTECTED_TARGET:
      return MisbehaviourKind::protected_target;
    case v1::MISBEHAVIOUR_KIND_BUDGET_OVERRUN:
      return MisbehaviourKind::budget_overrun;
    default:
      return fail("bad_kind", "proof has no valid misbehaviour kind");
  }
}

v1::MisbehaviourKind to_wire(MisbehaviourKind k) {
  switch (k) {
    case MisbehaviourKind::equivocation:
      return v1::MISBEHAVIOUR_KIND_EQUIVOCATION;
    case MisbehaviourKind::protected_target:
      return v1::MISBEHAVIOUR_KIND_PROTECTED_TARGET;
    case MisbehaviourKind::budget_overrun:
      return v1::MISBEHAVIOUR_KIND_BUDGET_OVERRUN;
  }
  return v1::MISBEHAVIOUR_KIND_UNSPECIFIED;
}

namespace {

Result<ClaimContent> claim_content(const v1::Claim& c) {
  ClaimContent out;
  auto prefix = to_prefix(c.target());
  if (!prefix) return std::unexpected(prefix.error());
  auto direction = to_direction(c.direction());
  if (!direction) return std::unexpected(direction.error());
  auto severity = to_severity(c.severity());
  if (!severity) return std::unexpected(severity.error());
  out.prefix = *prefix;
  out.direction = *direction;
  out.detector = c.detector();
  out.severity = *severity;
  out.confidence = c.confidence();
  out.ttl = c.ttl_ms();
  return out;
}

Result<RetractionContent> retraction_content(const v1::Retraction& r) {
  RetractionContent out;
  out.reason = r.reason();
  if (r.has_prefix()) {
    auto prefix = to_prefix(r.prefix());
    if (!prefix) return std::unexpected(prefix.error());
    out.prefix = *prefix;
  } else if (r.claim_seq() > 0) {
    out.claim_seq = r.claim_seq();
  } else {
    return fail("bad_retraction", "retraction names neither a claim seq nor a prefix");
  }
  return out;
}

Result<DecisionContent> decision_content(const v1::OperatorDecision& d) {
  DecisionContent out;
  auto action = to_action(d.action());
  if (!action) return std::unexpected(action.error());
  auto prefix = to_prefix(d.target());
  if (!prefix) return std::unexpected(prefix.error());
  out.action = *action;
  out.prefix = *prefix;
  out.direction = to_direction(d.direction()).value_or(Direction::both);
  out.false_positive = d.false_positive();
  out.ttl = d.ttl_ms();
  out.reason = d.reason();
  return out;
}

Result<ProofContent> proof_content(const v1::MisbehaviourProof& p) {
  ProofContent out;
  auto kind = to_kind(p.kind());
  if (!kind) return std::unexpected(kind.error());
  if (p.evidence_size() == 0 || p.evidence_size() > 4096)
    return fail("bad_evidence", "proof evidence count out of range");
  out.accused = p.accused();
  out.kind = *kind;
  out.detail = p.detail();
  for (const auto& e : p.evidence()) out.evidence.push_back(e.SerializeAsString());
  return out;
}

// Fills the envelope fields every kind shares, then the kind's own content.
template <class Message, class Convert>
Result<DecodedEvent> decoded(const Result<Message>& m, SignKind kind, std::string signer,
                             Convert convert) {
  if (!m) return std::unexpected(m.error());
  auto content = convert(*m);
  if (!content) return std::unexpected(content.error());
  return DecodedEvent{kind, std::move(signer), m->seq(), m->issued_at_ms(), std::move(*content)};
}

}  // namespace

Result<DecodedEvent> decode_event(const v1::Envelope& env) {
  switch (env.kind()) {
    case v1::BODY_KIND_CLAIM: {
      auto c = decode_claim(env);
      return decoded(c, SignKind::claim, c ? c->origin() : "", claim_content);
    }
    case v1::BODY_KIND_RETRACTION: {
      auto r = decode_retraction(env);
      return decoded(r, SignKind::retraction, r ? r->origin() : "", retraction_content);
    }
    case v1::BODY_KIND_OPERATOR_DECISION: {
      auto d = decode_operator_decision(env);
      return decoded(d, SignKind::operator_decision, d ? d->operator_id() : "", decision_content);
    }
    case v1::BODY_KIND_MISBEHAVIOUR_PROOF: {
      auto p = decode_misbehaviour_proof(env);
      return decoded(p, SignKind::misbehaviour_proof, p ? p->reporter() : "", proof_content);
    }
    default:
      return fail("wrong_kind", "unknown envelope kind");
  }
}

}  // namespace meshd::proto

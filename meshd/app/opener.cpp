#include "meshd/app/opener.hpp"

#include <algorithm>

#include "proto/cert.hpp"
#include "proto/envelope.hpp"

namespace meshd::app {
namespace {

namespace oe = core::open_error;

Error err(std::string_view code, std::string message) {
  return Error{std::string(code), std::move(message)};
}

std::string who(const proto::SignerRef& s) {
  return s.signer + "/" + std::to_string(s.seq);
}

trust::Severity to_severity(v1::Severity s) {
  switch (s) {
    case v1::SEVERITY_LOW:
      return trust::Severity::low;
    case v1::SEVERITY_HIGH:
      return trust::Severity::high;
    case v1::SEVERITY_CRITICAL:
      return trust::Severity::critical;
    default:
      return trust::Severity::medium;
  }
}

std::optional<trust::OperatorDecision::Action> to_action(v1::OperatorAction a) {
  switch (a) {
    case v1::OPERATOR_ACTION_BLOCK:
      return trust::OperatorDecision::Action::block;
    case v1::OPERATOR_ACTION_UNBLOCK:
      return trust::OperatorDecision::Action::unblock;
    case v1::OPERATOR_ACTION_ALLOW:
      return trust::OperatorDecision::Action::allow;
    default:
      return std::nullopt;
  }
}

std::optional<trust::MisbehaviourKind> to_kind(v1::MisbehaviourKind k) {
  switch (k) {
    case v1::MISBEHAVIOUR_KIND_EQUIVOCATION:
      return trust::MisbehaviourKind::equivocation;
    case v1::MISBEHAVIOUR_KIND_PROTECTED_TARGET:
      return trust::MisbehaviourKind::protected_target;
    case v1::MISBEHAVIOUR_KIND_BUDGET_OVERRUN:
      return trust::MisbehaviourKind::budget_overrun;
    default:
      return std::nullopt;
  }
}

trust::Digest digest_of(const std::string& body) {
  return proto::blake2b_256(proto::as_bytes(body));
}

}  // namespace

ProductionOpener::ProductionOpener(proto::PublicKey ca, const trust::Params& params)
    : ca_(ca), params_(params) {}

Error ProductionOpener::count(Error e) {
  if (e.code == oe::malformed)
    ++stats_.malformed;
  else if (e.code == oe::stale)
    ++stats_.stale;
  else if (e.code == oe::unknown_signer)
    ++stats_.unknown_signer;
  else
    ++stats_.bad_signature;
  return e;
}

Result<v1::NodeCert> ProductionOpener::learn_cert(const v1::SignedCert& signed_cert,
                                                  trust::TimeMs now) {
  auto cert = proto::verify_cert(signed_cert, ca_, now);
  if (!cert) return std::unexpected(cert.error());
  auto key = proto::cert_public_key(*cert);
  if (!key) return std::unexpected(key.error());
  std::string bytes = signed_cert.cert_body() + signed_cert.ca_signature();
  auto [it, inserted] = by_bytes_.try_emplace(std::move(bytes), KnownCert{*cert, *key});
  auto& newest = by_node_[cert->node_id()];
  if (!newest || newest->cert.not_after_ms() <= cert->not_after_ms()) newest = &it->second;
  stats_.certs_cached = by_bytes_.size();
  return *cert;
}

void ProductionOpener::set_revoked_serials(std::unordered_set<std::uint64_t> serials) {
  revoked_ = std::move(serials);
}

core::EventId ProductionOpener::event_id(const std::string& envelope) const {
  return proto::event_id(proto::as_bytes(envelope));
}

Result<const ProductionOpener::KnownCert*> ProductionOpener::signer_cert(const v1::Envelope& env,
                                                                         const std::string& signer,
                                                                         trust::TimeMs at) {
  const KnownCert* known = nullptr;
  if (env.has_signer_cert()) {
    const auto& sc = env.signer_cert();
    auto it = by_bytes_.find(sc.cert_body() + sc.ca_signature());
    if (it == by_bytes_.end()) {
      // Verify the CA signature once; validity is checked below at `at` for every use.
      auto cert = proto::decode_cert(sc);
      if (!cert)
        return std::unexpected(err(oe::malformed, "attached cert: " + cert.error().message));
      auto learned = learn_cert(sc, std::clamp(at, cert->not_before_ms(), cert->not_after_ms()));
      if (!learned)
        return std::unexpected(
            err(oe::unknown_signer, "cert of " + signer + ": " + learned.error().message));
      it = by_bytes_.find(sc.cert_body() + sc.ca_signature());
    }
    known = &it->second;
  } else if (auto it = by_node_.find(signer); it != by_node_.end()) {
    known = it->second;
  }
  if (!known)
    return std::unexpected(err(oe::unknown_signer, "no certificate known for signer " + signer));
  if (known->cert.node_id() != signer)
    return std::unexpected(err(oe::unknown_signer, "attached cert is for " + known->cert.node_id() +
                                                       ", not for signer " + signer));
  if (revoked_.contains(known->cert.serial()))
    return std::unexpected(err(
        oe::unknown_signer,
        "cert serial " + std::to_string(known->cert.serial()) + " of " + signer + " is revoked"));
  if (at < known->cert.not_before_ms() || at > known->cert.not_after_ms())
    return std::unexpected(
        err(oe::stale, "cert of " + signer + " is not valid at " + std::to_string(at)));
  return known;
}

Result<core::SignedEvent> ProductionOpener::open(const std::string& envelope, trust::TimeMs now) {
  return open_impl(envelope, now, true);
}

Result<core::SignedEvent> ProductionOpener::open_evidence(const std::string& envelope,
                                                          trust::TimeMs now) {
  return open_impl(envelope, now, false);
}

Result<core::SignedEvent> ProductionOpener::open_impl(const std::string& bytes, trust::TimeMs now,
                                                      bool fresh) {
  v1::Envelope env;
  if (!env.ParseFromString(bytes))
    return std::unexpected(count(err(oe::malformed, "envelope of " + std::to_string(bytes.size()) +
                                                        " bytes is not a protobuf Envelope")));
  auto signer = proto::peek_signer(env);
  if (!signer) return std::unexpected(count(err(oe::malformed, signer.error().message)));
  // Decode before verifying only to learn issued_at (evidence is checked against the cert
  // valid at that time); nothing decoded is used unless the signature verifies.
  trust::TimeMs issued_at = 0;
  switch (signer->kind) {
    case proto::SignKind::claim:
      if (auto c = proto::decode_claim(env)) issued_at = c->issued_at_ms();
      break;
    case proto::SignKind::retraction:
      if (auto r = proto::decode_retraction(env)) issued_at = r->issued_at_ms();
      break;
    case proto::SignKind::operator_decision:
      if (auto d = proto::decode_operator_decision(env)) issued_at = d->issued_at_ms();
      break;
    case proto::SignKind::misbehaviour_proof:
      if (auto p = proto::decode_misbehaviour_proof(env)) issued_at = p->issued_at_ms();
      break;
    default:
      return std::unexpected(count(err(oe::malformed, "envelope kind cannot be gossiped")));
  }
  auto cert = signer_cert(env, signer->signer, fresh ? now : issued_at);
  if (!cert) return std::unexpected(count(cert.error()));
  const bool wants_operator = signer->kind == proto::SignKind::operator_decision;
  if (((*cert)->cert.role() == v1::ROLE_OPERATOR) != wants_operator)
    return std::unexpected(
        count(err(oe::unknown_signer,
                  who(*signer) + ": a " + std::string(proto::role_name((*cert)->cert.role())) +
                      " cert cannot sign a " + std::string(proto::to_string(signer->kind)))));
  if (auto v = proto::verify_envelope(env, (*cert)->key); !v)
    return std::unexpected(
        count(err(v.error().code == "bad_signature" ? oe::bad_signature : oe::malformed,
                  who(*signer) + ": " + v.error().message)));
  auto decoded = decode(env, **cert, now, fresh);
  if (!decoded) return std::unexpected(count(decoded.error()));
  ++stats_.opened;
  return decoded;
}

Result<core::SignedEvent> ProductionOpener::decode(const v1::Envelope& env, const KnownCert& signer,
                                                   trust::TimeMs now, bool fresh) {
  core::SignedEvent ev;
  ev.kind = static_cast<core::EventKind>(env.kind());
  ev.origin = trust::Origin{signer.cert.node_id(), signer.cert.failure_domain()};
  ev.body_digest = digest_of(env.body());
  auto malformed = [&](std::string why) {
    return std::unexpected(err(oe::malformed, ev.origin.node + ": " + why));
  };
  auto too_old = [&](trust::TimeMs until) { return fresh && until < now; };
  auto too_new = [&](trust::TimeMs at) { return fresh && at > now + params_.max_future_ms; };
  auto stale = [&](std::string why) {
    return std::unexpected(
        err(oe::stale, ev.origin.node + "/" + std::to_string(ev.seq) + ": " + why));
  };

  switch (env.kind()) {
    case v1::BODY_KIND_CLAIM: {
      auto c = proto::decode_claim(env);
      if (!c) return malformed(c.error().message);
      auto prefix = proto::to_prefix(c->target());
      if (!prefix) return malformed(prefix.error().message);
      auto dir = proto::to_direction(c->direction());
      if (!dir) return malformed(dir.error().message);
      trust::ClaimFacts f;
      f.origin = ev.origin;
      f.seq = c->seq();
      f.prefix = *prefix;
      f.direction = *dir;
      f.detector = c->detector();
      f.severity = to_severity(c->severity());
      f.confidence = c->confidence();
      f.issued_at = c->issued_at_ms();
      f.requested_ttl = c->ttl_ms();
      if (auto v = trust::validate(f); !v) return malformed(v.error().message);
      ev.seq = f.seq;
      ev.issued_at = f.issued_at;
      if (too_new(f.issued_at)) return stale("issued in the future");
      if (too_old(f.issued_at + std::min(f.requested_ttl, params_.ttl_max_ms)))
        return stale("expired");
      ev.body = std::move(f);
      break;
    }
    case v1::BODY_KIND_RETRACTION: {
      auto r = proto::decode_retraction(env);
      if (!r) return malformed(r.error().message);
      core::RetractionBody body;
      body.reason = r->reason();
      if (r->has_prefix()) {
        auto prefix = proto::to_prefix(r->prefix());
        if (!prefix) return malformed(prefix.error().message);
        body.prefix = *prefix;
      } else if (r->claim_seq() > 0) {
        body.claim_seq = r->claim_seq();
      } else {
        return malformed("retraction names neither a claim seq nor a prefix");
      }
      ev.seq = r->seq();
      ev.issued_at = r->issued_at_ms();
      if (too_new(ev.issued_at)) return stale("issued in the future");
      if (too_old(ev.issued_at + params_.ttl_max_ms)) return stale("older than ttl_max");
      ev.body = std::move(body);
      break;
    }
    case v1::BODY_KIND_OPERATOR_DECISION: {
      auto d = proto::decode_operator_decision(env);
      if (!d) return malformed(d.error().message);
      auto action = to_action(d->action());
      if (!action) return malformed("operator decision has no valid action");
      auto prefix = proto::to_prefix(d->target());
      if (!prefix) return malformed(prefix.error().message);
      trust::OperatorDecision od;
      od.action = *action;
      od.prefix = *prefix;
      od.direction = proto::to_direction(d->direction()).value_or(trust::Direction::both);
      od.false_positive = d->false_positive();
      od.reason = d->reason();
      const trust::DurationMs ttl = d->ttl_ms() > 0
                                        ? std::min(d->ttl_ms(), params_.operator_ttl_max_ms)
                                        : params_.operator_ttl_max_ms;
      od.expires_at = d->issued_at_ms() + ttl;
      ev.seq = d->seq();
      ev.issued_at = d->issued_at_ms();
      if (too_new(ev.issued_at)) return stale("issued in the future");
      if (too_old(od.expires_at)) return stale("expired");
      ev.body = std::move(od);
      break;
    }
    case v1::BODY_KIND_MISBEHAVIOUR_PROOF: {
      auto p = proto::decode_misbehaviour_proof(env);
      if (!p) return malformed(p.error().message);
      auto kind = to_kind(p->kind());
      if (!kind) return malformed("proof has no valid misbehaviour kind");
      if (p->evidence_size() == 0 || p->evidence_size() > 4096)
        return malformed("proof evidence count out of range");
      core::ProofBody body;
      body.accused = p->accused();
      body.kind = *kind;
      body.detail = p->detail();
      for (const auto& e : p->evidence())
        body.evidence.push_back(core::make_envelope(e.SerializeAsString()));
      ev.seq = p->seq();
      ev.issued_at = p->issued_at_ms();
      if (too_new(ev.issued_at)) return stale("issued in the future");
      if (too_old(ev.issued_at + params_.quarantine_ms))
        return stale("older than the quarantine period");
      ev.body = std::move(body);
      break;
    }
    default:
      return malformed("unknown envelope kind");
  }
  return ev;
}

}  // namespace meshd::app

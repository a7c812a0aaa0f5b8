#include "proto/envelope.hpp"

#include <limits>

namespace meshd::proto {

namespace {

template <class M>
Result<M> parse_body(const v1::Envelope& env) {
  M msg;
  const std::string& body = env.body();
  if (body.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      !msg.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    // The lite runtime has no descriptors: the message name is the type name's last part.
    std::string name = msg.GetTypeName();
    name.erase(0, name.rfind('.') + 1);
    return fail("undecodable_body",
                "envelope body of " + std::to_string(body.size()) + " bytes is not a " + name);
  }
  return msg;
}

Result<void> expect_kind(SignKind expected, const v1::Envelope& env) {
  auto got = sign_kind_of(env.kind());
  if (!got) return std::unexpected(got.error());
  if (*got != expected) {
    return fail("wrong_kind", "envelope holds a " + std::string(to_string(*got)) + ", expected a " +
                                  std::string(to_string(expected)));
  }
  return {};
}

template <class M>
Result<M> decode_as(SignKind kind, const v1::Envelope& env) {
  if (auto k = expect_kind(kind, env); !k) return std::unexpected(k.error());
  return parse_body<M>(env);
}

template <class M>
Result<M> open_as(SignKind kind, const v1::Envelope& env, const PublicKey& key) {
  if (auto body = open_envelope(kind, env, key); !body) return std::unexpected(body.error());
  return parse_body<M>(env);
}

}  // namespace

Result<SignKind> sign_kind_of(v1::BodyKind kind) {
  switch (kind) {
    case v1::BODY_KIND_CLAIM:
      return SignKind::claim;
    case v1::BODY_KIND_RETRACTION:
      return SignKind::retraction;
    case v1::BODY_KIND_OPERATOR_DECISION:
      return SignKind::operator_decision;
    case v1::BODY_KIND_MISBEHAVIOUR_PROOF:
      return SignKind::misbehaviour_proof;
    default:
      return fail("wrong_kind",
                  "envelope kind " + std::to_string(static_cast<int>(kind)) + " is not known");
  }
}

v1::BodyKind body_kind_of(SignKind kind) {
  switch (kind) {
    case SignKind::claim:
      return v1::BODY_KIND_CLAIM;
    case SignKind::retraction:
      return v1::BODY_KIND_RETRACTION;
    case SignKind::operator_decision:
      return v1::BODY_KIND_OPERATOR_DECISION;
    case SignKind::misbehaviour_proof:
      return v1::BODY_KIND_MISBEHAVIOUR_PROOF;
    default:
      return v1::BODY_KIND_UNSPECIFIED;
  }
}

v1::Envelope sign_envelope(SignKind kind, std::string body, const SecretKey& key) {
  v1::Envelope env;
  env.set_kind(body_kind_of(kind));
  Signature sig = sign(kind, as_bytes(body), key);
  env.set_body(std::move(body));
  env.set_signature(reinterpret_cast<const char*>(sig.data()), sig.size());
  return env;
}

v1::Envelope sign_claim(const v1::Claim& claim, const SecretKey& key) {
  return sign_envelope(SignKind::claim, claim.SerializeAsString(), key);
}
v1::Envelope sign_retraction(const v1::Retraction& retraction, const SecretKey& key) {
  return sign_envelope(SignKind::retraction, retraction.SerializeAsString(), key);
}
v1::Envelope sign_operator_decision(const v1::OperatorDecision& decision, const SecretKey& key) {
  return sign_envelope(SignKind::operator_decision, decision.SerializeAsString(), key);
}
v1::Envelope sign_misbehaviour_proof(const v1::MisbehaviourProof& proof, const SecretKey& key) {
  return sign_envelope(SignKind::misbehaviour_proof, proof.SerializeAsString(), key);
}

Result<void> verify_envelope(const v1::Envelope& env, const PublicKey& key) {
  auto kind = sign_kind_of(env.kind());
  if (!kind) return std::unexpected(kind.error());
  return verify(*kind, as_bytes(env.body()), as_bytes(env.signature()), key);
}

Result<std::string_view> open_envelope(SignKind expected, const v1::Envelope& env,
                                       const PublicKey& key) {
  if (auto k = expect_kind(expected, env); !k) return std::unexpected(k.error());
  if (auto v = verify(expected, as_bytes(env.body()), as_bytes(env.signature()), key); !v) {
    return std::unexpected(v.error());
  }
  return std::string_view(env.body());
}

Result<v1::Claim> decode_claim(const v1::Envelope& env) {
  return decode_as<v1::Claim>(SignKind::claim, env);
}
Result<v1::Retraction> decode_retraction(const v1::Envelope& env) {
  return decode_as<v1::Retraction>(SignKind::retraction, env);
}
Result<v1::OperatorDecision> decode_operator_decision(const v1::Envelope& env) {
  return decode_as<v1::OperatorDecision>(SignKind::operator_decision, env);
}
Result<v1::MisbehaviourProof> decode_misbehaviour_proof(const v1::Envelope& env) {
  return decode_as<v1::MisbehaviourProof>(SignKind::misbehaviour_proof, env);
}

Result<v1::Claim> open_claim(const v1::Envelope& env, const PublicKey& key) {
  return open_as<v1::Claim>(SignKind::claim, env, key);
}
Result<v1::Retraction> open_retraction(const v1::Envelope& env, const PublicKey& key) {
  return open_as<v1::Retraction>(SignKind::retraction, env, key);
}
Result<v1::OperatorDecision> open_operator_decision(const v1::Envelope& env, const PublicKey& key) {
  return open_as<v1::OperatorDecision>(SignKind::operator_decision, env, key);
}
Result<v1::MisbehaviourProof> open_misbehaviour_proof(const v1::Envelope& env,
                                                      const PublicKey& key) {
  return open_as<v1::MisbehaviourProof>(SignKind::misbehaviour_proof, env, key);
}

Result<SignerRef> peek_signer(const v1::Envelope& env) {
  auto kind = sign_kind_of(env.kind());
  if (!kind) return std::unexpected(kind.error());
  SignerRef ref{*kind, {}, 0, 0};
  switch (*kind) {
    case SignKind::claim: {
      auto m = parse_body<v1::Claim>(env);
      if (!m) return std::unexpected(m.error());
      ref.signer = m->origin();
      ref.seq = m->seq();
      ref.issued_at = m->issued_at_ms();
      break;
    }
    case SignKind::retraction: {
      auto m = parse_body<v1::Retraction>(env);
      if (!m) return std::unexpected(m.error());
      ref.signer = m->origin();
      ref.seq = m->seq();
      ref.issued_at = m->issued_at_ms();
      break;
    }
    case SignKind::operator_decision: {
      auto m = parse_body<v1::OperatorDecision>(env);
      if (!m) return std::unexpected(m.error());
      ref.signer = m->operator_id();
      ref.seq = m->seq();
      ref.issued_at = m->issued_at_ms();
      break;
    }
    case SignKind::misbehaviour_proof: {
      auto m = parse_body<v1::MisbehaviourProof>(env);
      if (!m) return std::unexpected(m.error());
      ref.signer = m->reporter();
      ref.seq = m->seq();
      ref.issued_at = m->issued_at_ms();
      break;
    }
    default:
      break;
  }
  if (ref.signer.empty()) {
    return fail("undecodable_body", std::string(to_string(*kind)) + " envelope names no signer");
  }
  return ref;
}

EventId event_id_of(const v1::Envelope& env) {
  return event_id(as_bytes(env.SerializeAsString()));
}

}  // namespace meshd::proto

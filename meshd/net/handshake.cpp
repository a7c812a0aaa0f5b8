#include "meshd/net/handshake.hpp"

#include "proto/cert.hpp"
#include "proto/frame.hpp"

namespace meshd::net {
namespace {

HandshakeError err(HandshakeFailure reason, std::string message) {
  return HandshakeError{reason, std::move(message)};
}

void append_be32(std::string& out, std::size_t v) {
  out.push_back(static_cast<char>((v >> 24) & 0xff));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

// Reads a handshake Frame. A Goodbye in its place is the peer refusing us.
HandshakeResult<v1::Frame> parse_handshake_frame(proto::Bytes payload, v1::Frame::PayloadCase want,
                                                 std::string_view what) {
  v1::Frame frame;
  if (!frame.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return std::unexpected(err(HandshakeFailure::malformed,
                               "expected " + std::string(what) + ", got " +
                                   std::to_string(payload.size()) + " bytes that are not a Frame"));
  }
  if (frame.payload_case() == v1::Frame::kGoodbye) {
    return std::unexpected(
        err(HandshakeFailure::peer_refused, "peer refused us: " + frame.goodbye().reason()));
  }
  if (frame.payload_case() != want) {
    return std::unexpected(err(HandshakeFailure::malformed,
                               "expected " + std::string(what) + ", got Frame field " +
                                   std::to_string(static_cast<int>(frame.payload_case()))));
  }
  return frame;
}

}  // namespace

std::string_view to_string(HandshakeFailure failure) {
  switch (failure) {
    case HandshakeFailure::timeout:
      return "timeout";
    case HandshakeFailure::io_error:
      return "io_error";
    case HandshakeFailure::malformed:
      return "malformed";
    case HandshakeFailure::protocol_version:
      return "protocol_version";
    case HandshakeFailure::cert_bad_signature:
      return "cert_bad_signature";
    case HandshakeFailure::cert_malformed:
      return "cert_malformed";
    case HandshakeFailure::cert_not_yet_valid:
      return "cert_not_yet_valid";
    case HandshakeFailure::cert_expired:
      return "cert_expired";
    case HandshakeFailure::cert_wrong_role:
      return "cert_wrong_role";
    case HandshakeFailure::cert_revoked:
      return "cert_revoked";
    case HandshakeFailure::bad_transcript_signature:
      return "bad_transcript_signature";
    case HandshakeFailure::bad_key_exchange:
      return "bad_key_exchange";
    case HandshakeFailure::self_connection:
      return "self_connection";
    case HandshakeFailure::banned:
      return "banned";
    case HandshakeFailure::peer_refused:
      return "peer_refused";
    case HandshakeFailure::redirected:
      return "redirected";
    case HandshakeFailure::count_:
      break;
  }
  return "unknown";
}

HandshakeFailure cert_failure_from_code(std::string_view code) {
  if (code == "cert_bad_signature") return HandshakeFailure::cert_bad_signature;
  if (code == "cert_not_yet_valid") return HandshakeFailure::cert_not_yet_valid;
  if (code == "cert_expired") return HandshakeFailure::cert_expired;
  if (code == "cert_wrong_role") return HandshakeFailure::cert_wrong_role;
  return HandshakeFailure::cert_malformed;
}

Handshake::Handshake(HandshakeRole role, const LocalIdentity& identity)
    : role_(role), identity_(identity) {
  proto::ensure_sodium();
  crypto_kx_keypair(kx_pk_.data(), kx_sk_.data());
  std::array<std::uint8_t, 32> nonce{};
  randombytes_buf(nonce.data(), nonce.size());
  v1::Frame frame;
  v1::Hello* hello = frame.mutable_hello();
  hello->set_protocol_version(protocol_version);
  *hello->mutable_cert() = identity_.cert;
  hello->set_ephemeral_pk(kx_pk_.data(), kx_pk_.size());
  hello->set_nonce(nonce.data(), nonce.size());
  hello->set_features(our_features);
  our_hello_ = frame.SerializeAsString();
}

Handshake::~Handshake() {
  sodium_memzero(kx_sk_.data(), kx_sk_.size());
  sodium_memzero(rx_key_.data(), rx_key_.size());
}

std::string Handshake::transcript(HandshakeRole signer, std::string_view initiator_hello,
                                  std::string_view responder_hello) {
  std::string t;
  t.reserve(1 + 8 + initiator_hello.size() + responder_hello.size());
  t.push_back(signer == HandshakeRole::initiator ? 'I' : 'R');
  append_be32(t, initiator_hello.size());
  t.append(initiator_hello);
  append_be32(t, responder_hello.size());
  t.append(responder_hello);
  return t;
}

HandshakeResult<v1::NodeCert> Handshake::on_peer_hello(
    proto::Bytes payload, TimeMs now_ms, const std::function<bool(std::uint64_t)>& is_revoked) {
  auto frame = parse_handshake_frame(payload, v1::Frame::kHello, "Hello");
  if (!frame) return std::unexpected(frame.error());
  const v1::Hello& hello = frame->hello();
  if (hello.protocol_version() != protocol_version) {
    return std::unexpected(err(HandshakeFailure::protocol_version,
                               "peer speaks protocol version " +
                                   std::to_string(hello.protocol_version()) + ", we speak " +
                                   std::to_string(protocol_version)));
  }
  if (hello.ephemeral_pk().size() != crypto_kx_PUBLICKEYBYTES || hello.nonce().size() != 32) {
    return std::unexpected(err(HandshakeFailure::malformed,
                               "Hello has a " + std::to_string(hello.ephemeral_pk().size()) +
                                   "-byte ephemeral key and a " +
                                   std::to_string(hello.nonce().size()) +
                                   "-byte nonce, expected 32 and 32"));
  }
  auto cert = proto::verify_cert(hello.cert(), identity_.ca, now_ms, v1::ROLE_NODE);
  if (!cert) {
    return std::unexpected(err(cert_failure_from_code(cert.error().code), cert.error().message));
  }
  if (is_revoked && is_revoked(cert->serial())) {
    return std::unexpected(
        err(HandshakeFailure::cert_revoked, "cert of node '" + cert->node_id() + "' (serial " +
                                                std::to_string(cert->serial()) + ") is revoked"));
  }
  if (cert->node_id() == identity_.node_cert.node_id()) {
    return std::unexpected(err(HandshakeFailure::self_connection,
                               "peer presents our own node id '" + cert->node_id() + "'"));
  }
  auto key = proto::cert_public_key(*cert);
  if (!key) return std::unexpected(err(HandshakeFailure::cert_malformed, key.error().message));
  peer_key_ = *key;
  std::copy(hello.ephemeral_pk().begin(), hello.ephemeral_pk().end(), peer_kx_pk_.begin());
  peer_hello_.assign(reinterpret_cast<const char*>(payload.data()), payload.size());
  peer_cert_ = *cert;
  peer_features_ = hello.features();
  return *cert;
}

HandshakeResult<std::string> Handshake::auth() {
  if (!peer_cert_) {
    return std::unexpected(err(HandshakeFailure::malformed, "auth() before a verified Hello"));
  }
  StreamKey tx_key{};
  int rc = 0;
  if (role_ == HandshakeRole::initiator) {
    rc = crypto_kx_client_session_keys(rx_key_.data(), tx_key.data(), kx_pk_.data(), kx_sk_.data(),
                                       peer_kx_pk_.data());
  } else {
    rc = crypto_kx_server_session_keys(rx_key_.data(), tx_key.data(), kx_pk_.data(), kx_sk_.data(),
                                       peer_kx_pk_.data());
  }
  sodium_memzero(kx_sk_.data(), kx_sk_.size());
  if (rc != 0) {
    sodium_memzero(tx_key.data(), tx_key.size());
    return std::unexpected(
        err(HandshakeFailure::bad_key_exchange,
            "ephemeral key of node '" + peer_cert_->node_id() + "' rejected by crypto_kx"));
  }
  tx_.emplace(tx_key);
  sodium_memzero(tx_key.data(), tx_key.size());

  const bool initiator = role_ == HandshakeRole::initiator;
  const std::string t =
      transcript(role_, initiator ? our_hello_ : peer_hello_, initiator ? peer_hello_ : our_hello_);
  const proto::Signature sig =
      proto::sign(proto::SignKind::handshake, proto::as_bytes(t), identity_.key);
  v1::Frame frame;
  v1::HelloAuth* auth = frame.mutable_hello_auth();
  auth->set_signature(sig.data(), sig.size());
  auth->set_stream_header(tx_->header().data(), tx_->header().size());
  return frame.SerializeAsString();
}

HandshakeResult<Session> Handshake::on_peer_auth(proto::Bytes payload) {
  if (!tx_ || !peer_key_) {
    return std::unexpected(err(HandshakeFailure::malformed, "on_peer_auth() before auth()"));
  }
  auto frame = parse_handshake_frame(payload, v1::Frame::kHelloAuth, "HelloAuth");
  if (!frame) return std::unexpected(frame.error());
  const v1::HelloAuth& auth = frame->hello_auth();
  const bool initiator = role_ == HandshakeRole::initiator;
  const HandshakeRole peer_role = initiator ? HandshakeRole::responder : HandshakeRole::initiator;
  const std::string t = transcript(peer_role, initiator ? our_hello_ : peer_hello_,
                                   initiator ? peer_hello_ : our_hello_);
  if (auto ok = proto::verify(proto::SignKind::handshake, proto::as_bytes(t),
                              proto::as_bytes(auth.signature()), *peer_key_);
      !ok) {
    return std::unexpected(
        err(HandshakeFailure::bad_transcript_signature,
            "node '" + peer_cert_->node_id() +
                "' did not prove it holds its cert's key: " + ok.error().message));
  }
  auto rx = SecretStreamPull::open(proto::as_bytes(auth.stream_header()), rx_key_);
  sodium_memzero(rx_key_.data(), rx_key_.size());
  if (!rx) return std::unexpected(err(HandshakeFailure::malformed, rx.error().message));
  Session session{std::move(*tx_), std::move(*rx)};
  tx_.reset();
  return session;
}

}  // namespace meshd::net

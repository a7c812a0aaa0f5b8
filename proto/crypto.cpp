#include "proto/crypto.hpp"

#include <sodium.h>

#include <cstring>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace meshd::proto {

void ensure_sodium() {
  // sodium_init() is itself thread-safe; call_once keeps the hot path to one atomic load.
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  });
}

std::string_view to_string(SignKind kind) {
  switch (kind) {
    case SignKind::claim:
      return "claim";
    case SignKind::retraction:
      return "retraction";
    case SignKind::operator_decision:
      return "operator_decision";
    case SignKind::misbehaviour_proof:
      return "misbehaviour_proof";
    case SignKind::node_cert:
      return "node_cert";
    case SignKind::handshake:
      return "handshake";
  }
  return "invalid";
}

Result<PublicKey> PublicKey::from_bytes(Bytes b) {
  if (b.size() != public_key_size) {
    return fail("bad_public_key", "public key is " + std::to_string(b.size()) +
                                      " bytes, expected " + std::to_string(public_key_size));
  }
  PublicKey k;
  std::memcpy(k.bytes.data(), b.data(), public_key_size);
  return k;
}

std::string PublicKey::fingerprint() const {
  auto h = blake2b_256(bytes);
  return "ed25519:" + to_hex(Bytes(h.data(), 16));
}

SecretKey SecretKey::generate() {
  ensure_sodium();
  SecretKey k;
  crypto_sign_keypair(k.public_.bytes.data(), k.sk_.data());
  return k;
}

Result<SecretKey> SecretKey::from_seed(Bytes seed) {
  if (seed.size() != seed_size) {
    return fail("bad_seed", "secret key seed is " + std::to_string(seed.size()) +
                                " bytes, expected " + std::to_string(seed_size));
  }
  ensure_sodium();
  SecretKey k;
  crypto_sign_seed_keypair(k.public_.bytes.data(), k.sk_.data(), seed.data());
  return k;
}

SecretKey::SecretKey(SecretKey&& other) noexcept : sk_(other.sk_), public_(other.public_) {
  sodium_memzero(other.sk_.data(), other.sk_.size());
}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    sk_ = other.sk_;
    public_ = other.public_;
    sodium_memzero(other.sk_.data(), other.sk_.size());
  }
  return *this;
}

SecretKey::~SecretKey() {
  sodium_memzero(sk_.data(), sk_.size());
}

Signature sign_raw(Bytes message, const SecretKey& key) {
  ensure_sodium();
  Signature sig{};
  crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(), key.data());
  return sig;
}

bool verify_raw(Bytes message, Bytes signature, const PublicKey& key) {
  ensure_sodium();
  if (signature.size() != signature_size) return false;
  return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                     key.bytes.data()) == 0;
}

namespace {

// Assembles "meshd/v1/<kind>\0<body>" in a per-thread buffer that only grows, so steady-state
// signing and verification do not allocate.
Bytes domain_message(SignKind kind, Bytes body) {
  thread_local std::vector<std::uint8_t> buf;
  constexpr std::string_view prefix = "meshd/v1/";
  std::string_view name = to_string(kind);
  std::size_t n = prefix.size() + name.size() + 1 + body.size();
  if (buf.size() < n) buf.resize(n);
  std::uint8_t* p = buf.data();
  std::memcpy(p, prefix.data(), prefix.size());
  p += prefix.size();
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = 0;
  if (!body.empty()) std::memcpy(p, body.data(), body.size());
  return {buf.data(), n};
}

}  // namespace

Signature sign(SignKind kind, Bytes body, const SecretKey& key) {
  return sign_raw(domain_message(kind, body), key);
}

Result<void> verify(SignKind kind, Bytes body, Bytes signature, const PublicKey& key) {
  if (signature.size() != signature_size) {
    return fail("bad_signature", std::string(to_string(kind)) + " signature is " +
                                     std::to_string(signature.size()) + " bytes, expected " +
                                     std::to_string(signature_size));
  }
  if (!verify_raw(domain_message(kind, body), signature, key)) {
    return fail("bad_signature", std::string(to_string(kind)) + " signature does not verify " +
                                     "under key " + key.fingerprint());
  }
  return {};
}

std::array<std::uint8_t, 32> blake2b_256(Bytes data) {
  ensure_sodium();
  std::array<std::uint8_t, 32> out{};
  crypto_generichash(out.data(), out.size(), data.data(), data.size(), nullptr, 0);
  return out;
}

EventId event_id(Bytes envelope_bytes) {
  return blake2b_256(envelope_bytes);
}

std::string to_hex(Bytes bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 0xf];
  }
  return out;
}

}  // namespace meshd::proto

// Ed25519 signing with domain separation, BLAKE2b event ids, key types (libsodium).
//
// Every signature meshd makes is over  "meshd/v1/" + kind + "\0" + body  where kind is one
// of the SignKind names below, so a signature made for one kind never verifies as another.
// The raw primitives (sign_raw / verify_raw) exist for the RFC 8032 test vectors and for
// nothing else. Verification always takes the exact received bytes: never re-serialize a
// parsed message to verify it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "meshd/common/result.hpp"

namespace meshd::proto {

using Bytes = std::span<const std::uint8_t>;

// Views of a string's bytes (protobuf `bytes` fields are std::string).
inline Bytes as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Initialises libsodium once (thread-safe, idempotent). Every function of this library that
// needs libsodium calls it; call it yourself before using libsodium directly. Throws
// std::runtime_error if libsodium cannot initialise (a fatal start-up error).
void ensure_sodium();

constexpr std::size_t public_key_size = 32;
constexpr std::size_t seed_size = 32;
constexpr std::size_t signature_size = 64;
constexpr std::size_t event_id_size = 32;

// What a signature is for; selects the domain separation prefix.
enum class SignKind : std::uint8_t {
  claim,
  retraction,
  operator_decision,
  misbehaviour_proof,
  node_cert,
  handshake,
};

// "claim", "retraction", "operator_decision", "misbehaviour_proof", "node_cert", "handshake".
std::string_view to_string(SignKind kind);

struct PublicKey {
  std::array<std::uint8_t, public_key_size> bytes{};

  // From exactly 32 bytes (e.g. NodeCert.public_key); error `bad_public_key` otherwise.
  static Result<PublicKey> from_bytes(Bytes b);
  // Short stable fingerprint for humans and logs: "ed25519:" + 32 hex chars (first 16
  // bytes of BLAKE2b-256 of the key).
  std::string fingerprint() const;
  std::string_view view() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
  bool operator==(const PublicKey&) const = default;
};

using Signature = std::array<std::uint8_t, signature_size>;
using EventId = std::array<std::uint8_t, event_id_size>;

// An Ed25519 secret key (libsodium's 64-byte form: seed || public key). Move-only; the
// bytes are wiped with sodium_memzero when the key is destroyed or moved from.
class SecretKey {
 public:
  // Fresh random keypair.
  static SecretKey generate();
  // Deterministic keypair from a 32-byte seed (RFC 8032 "secret key"); `bad_seed` if the
  // size is wrong.
  static Result<SecretKey> from_seed(Bytes seed);

  SecretKey(SecretKey&& other) noexcept;
  SecretKey& operator=(SecretKey&& other) noexcept;
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;
  ~SecretKey();

  const PublicKey& public_key() const { return public_; }
  // The 32-byte seed (what key files store). The span aliases this key's memory.
  Bytes seed() const { return {sk_.data(), seed_size}; }
  // libsodium's 64-byte secret key, for crypto_sign_* calls.
  const std::uint8_t* data() const { return sk_.data(); }

 private:
  SecretKey() = default;
  std::array<std::uint8_t, 64> sk_{};
  PublicKey public_;
};

// Raw Ed25519 (RFC 8032), no domain prefix. Only for test vectors and the layers below.
Signature sign_raw(Bytes message, const SecretKey& key);
bool verify_raw(Bytes message, Bytes signature, const PublicKey& key);

// Domain-separated signing: Ed25519 over "meshd/v1/" + to_string(kind) + "\0" + body.
Signature sign(SignKind kind, Bytes body, const SecretKey& key);
// Errors: `bad_signature` (wrong size or does not verify; the message names the kind).
// Allocation-free after the first call on a thread for bodies up to the largest seen so far
// (the prefixed message is assembled in a thread-local buffer).
Result<void> verify(SignKind kind, Bytes body, Bytes signature, const PublicKey& key);

// BLAKE2b-256 of the serialized Envelope bytes exactly as received or sent.
EventId event_id(Bytes envelope_bytes);
// BLAKE2b-256 of arbitrary bytes (e.g. Claim.evidence_digest).
std::array<std::uint8_t, 32> blake2b_256(Bytes data);

// Lower-case hex of any byte string (ids in logs and JSON).
std::string to_hex(Bytes bytes);

}  // namespace meshd::proto

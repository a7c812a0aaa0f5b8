// The peer handshake (meshd/README.md "Wire format"), without I/O.
//
// Both sides, over plaintext length-prefixed frames:
//   1. send Frame{Hello{protocol_version=1, SignedCert, ephemeral X25519 pk, 32-byte nonce}}
//   2. read the peer's Hello and check its cert against the fleet CA (signature, validity
//      window at `now`, role node, well-formed, serial not revoked) and that it is not
//      ourselves — before anything else from the peer is read;
//   3. send Frame{HelloAuth{Ed25519 signature, stream header}}; the signature (domain
//      "handshake", proto/crypto.hpp) is over the transcript
//        signer_role || u32be(len(I)) || I || u32be(len(R)) || R
//      where I / R are the exact serialized Hello frames of the initiator / responder and
//      signer_role is 'I' or 'R' (so one side's signature can never be replayed as the
//      other's); the stream header starts our sending direction;
//   4. read the peer's HelloAuth and verify its signature with the key of the cert checked
//      in step 2. Only then is the session established.
// Session keys come from crypto_kx over the ephemeral keys (initiator = client), so each
// connection has fresh keys (forward secrecy) and the identity keys only sign.
#pragma once

#include <sodium.h>

#include <array>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "meshd/common/time.hpp"
#include "meshd/net/secret_stream.hpp"
#include "proto/crypto.hpp"
#include "proto/wire.pb.h"

namespace meshd::net {

constexpr std::uint32_t protocol_version = 1;
// Hello.features bits (within protocol version 1; a peer without a bit never gets that frame).
constexpr std::uint32_t feature_peer_exchange = 1u << 0;  // PeerExchange frames
constexpr std::uint32_t feature_trim = 1u << 1;           // Trim frames (surplus connections)
constexpr std::uint32_t our_features = feature_peer_exchange | feature_trim;

// Why a handshake failed. Stable names (to_string) are metric labels and log words.
enum class HandshakeFailure : std::uint8_t {
  timeout,                   // the whole handshake did not finish within the limit
  io_error,                  // peer closed or the socket failed mid-handshake
  malformed,                 // not a Frame / not the expected message / bad field sizes
  protocol_version,          // peer speaks another protocol version
  cert_bad_signature,        // cert not signed by our CA (wrong CA or forged)
  cert_malformed,            // cert body garbage, bad key size, empty node id
  cert_not_yet_valid,        // now < not_before
  cert_expired,              // now > not_after
  cert_wrong_role,           // not a node cert (e.g. an operator cert)
  cert_revoked,              // serial on the revocation list
  bad_transcript_signature,  // HelloAuth signature does not verify: key not held
  bad_key_exchange,          // peer's ephemeral key rejected by crypto_kx
  self_connection,           // the peer is this node (same node id)
  banned,                    // node id banned by disconnect(..., ban_for)
  peer_refused,              // the peer sent Goodbye instead of continuing
  redirected,                // the peer is full and named other peers instead (not an error)
  count_
};
constexpr std::size_t handshake_failure_count = static_cast<std::size_t>(HandshakeFailure::count_);
std::string_view to_string(HandshakeFailure failure);

struct HandshakeError {
  HandshakeFailure reason;
  std::string message;  // one sentence naming the peer (if known) and the reason
};

template <class T>
using HandshakeResult = std::expected<T, HandshakeError>;

enum class HandshakeRole : std::uint8_t { initiator, responder };

// This node's identity. The transport owns it; Handshake only borrows it.
struct LocalIdentity {
  proto::SecretKey key;
  v1::SignedCert cert;
  v1::NodeCert node_cert;  // decoded `cert`, for our node id
  proto::PublicKey ca;     // fleet CA public key
};

// Both directions of an established session.
struct Session {
  SecretStreamPush tx;
  SecretStreamPull rx;
};

class Handshake {
 public:
  // Generates the ephemeral X25519 keypair and nonce. `identity` must outlive this object.
  Handshake(HandshakeRole role, const LocalIdentity& identity);
  ~Handshake();
  Handshake(const Handshake&) = delete;
  Handshake& operator=(const Handshake&) = delete;

  HandshakeRole role() const { return role_; }
  // Step 1: the serialized Frame{Hello} to send (plaintext payload of one frame).
  const std::string& hello() const { return our_hello_; }

  // Step 2: checks the peer's Hello frame payload at wall-clock `now_ms`. `is_revoked` is
  // asked about the cert serial (may be empty). Returns the peer's verified cert.
  HandshakeResult<v1::NodeCert> on_peer_hello(proto::Bytes payload, TimeMs now_ms,
                                              const std::function<bool(std::uint64_t)>& is_revoked);
  // The features the peer's Hello advertised (after on_peer_hello succeeded).
  std::uint32_t peer_features() const { return peer_features_; }

  // Step 3 (after on_peer_hello succeeded): the serialized Frame{HelloAuth} to send.
  HandshakeResult<std::string> auth();

  // Step 4: checks the peer's HelloAuth frame payload; on success the session is ready and
  // this object has no further use.
  HandshakeResult<Session> on_peer_auth(proto::Bytes payload);

  // The transcript a side with `signer` role signs (exposed for tests).
  static std::string transcript(HandshakeRole signer, std::string_view initiator_hello,
                                std::string_view responder_hello);

 private:
  HandshakeRole role_;
  const LocalIdentity& identity_;
  std::array<std::uint8_t, crypto_kx_PUBLICKEYBYTES> kx_pk_{};
  std::array<std::uint8_t, crypto_kx_SECRETKEYBYTES> kx_sk_{};
  std::string our_hello_;
  std::string peer_hello_;
  std::optional<v1::NodeCert> peer_cert_;
  std::uint32_t peer_features_ = 0;
  std::optional<proto::PublicKey> peer_key_;
  std::array<std::uint8_t, crypto_kx_PUBLICKEYBYTES> peer_kx_pk_{};
  std::optional<SecretStreamPush> tx_;
  StreamKey rx_key_{};
};

// Maps proto::verify_cert error codes onto failures (unknown codes -> cert_malformed).
HandshakeFailure cert_failure_from_code(std::string_view code);

}  // namespace meshd::net

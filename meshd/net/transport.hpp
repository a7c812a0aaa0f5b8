// meshd/net — the peer transport: TCP listener and dialer, the certified handshake
// (meshd/net/handshake.hpp) and crypto_secretstream-sealed frames, on ONE io_context thread.
//
// What the daemon gets:
//   * on_peer_up(id, cert) once a peer proved a CA-signed, valid, unrevoked node cert;
//   * on_frame(id, payload) for every decrypted frame payload (one serialized meshd.v1.Frame)
//     except the transport's own Ping / Pong / Goodbye, which it consumes;
//   * on_peer_down(id, reason) exactly once for every peer that was up.
// Callbacks run on the io_context thread. on_peer_up, on_frame and on_rate_drop run from the
// transport's own handlers; on_peer_down is always posted, so it never runs inside a call the
// daemon makes (disconnect(), send(), set_revoked_serials()). After on_peer_down, or after
// disconnect() returns, nothing more arrives from that id. Ids are never reused.
//
// Limits (TransportLimits): handshake timeout (connect + handshake), idle timeout (a Ping is
// sent after idle_timeout/3 of silence; nothing received for idle_timeout closes the
// connection), max peers, max frame size (on the ciphertext length prefix, checked before
// any allocation), per-peer receive rate limit (frames over budget are decrypted — the
// stream must stay in step — then dropped, counted and reported with on_rate_drop), bounded
// send queue per peer (overflow drops the peer: a peer that cannot keep up must resync by
// anti-entropy).
// Fairness: a connection hands at most a few frames to on_frame in a row, then lets the
// other ready handlers run, so one peer's backlog never holds up another peer's frames.
//
// Trim: above target_peers once settled, one surplus link at a time is dropped by agreement
// with the peer (TransportLimits::trim_surplus).
//
// Dialer: keeps about target_peers connections (inbound + outbound) from the seeds;
// "host:port" and "dns:NAME:PORT" seeds are re-resolved every dns_refresh; failed or lost
// peers are retried with jittered exponential back-off (BackoffPolicy; capped lower for
// transient failures while below target_peers, so a cold-started fleet meshes in seconds);
// disconnect(...,
// ban_for) bans a node id (and stops dialing its addresses) for that long. Two connections
// to one node: the one initiated by the smaller node id is kept (both sides agree), a tie
// keeps the older one; a node reaching itself is refused and its address never dialed again.
#pragma once

#include "meshd/common/asio.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"
#include "meshd/net/backoff.hpp"
#include "meshd/net/handshake.hpp"
#include "meshd/net/rate_limiter.hpp"
#include "proto/wire.pb.h"

namespace meshd::net {

// Driver-chosen peer id (one per connection, never reused within a Transport).
using PeerId = std::uint64_t;

struct TransportLimits {
  std::chrono::milliseconds handshake_timeout{5000};  // TCP connect + both Hello/HelloAuth
  std::chrono::milliseconds idle_timeout{30000};      // silence after which a peer is closed
  std::size_t max_peers = 64;    // all connections, handshaking included; more are refused
  std::size_t target_peers = 8;  // the dialer stops dialing at this many (in + out)
  std::size_t max_frame_size = 1024 * 1024;             // ciphertext bytes of one frame
  std::size_t max_send_queue_bytes = 16 * 1024 * 1024;  // per peer, sealed bytes not yet written
  // Per-peer receive limit. Defaults are far above honest gossip (a RangeResponse packs
  // many envelopes per frame) and above what one core verifies (~20-30k Ed25519/s), so the
  // limit only cuts floods and never caps claim ingest below the verify rate.
  RateLimit receive_rate{.frames_per_s = 50000,
                         .frames_burst = 100000,
                         .bytes_per_s = 64.0 * 1024 * 1024,
                         .bytes_burst = 128.0 * 1024 * 1024};
  BackoffPolicy backoff;  // reconnect back-off (200 ms .. 30 s)
  // Outbound connects + handshakes in flight at once. A fleet started at once has every node
  // dialing; a few dials at a time finish within the handshake timeout on a loaded host where
  // target_peers of them at once would not, and leave the others' accept queues shorter.
  std::size_t max_concurrent_dials = 4;
  // Peer exchange (meshd/net/peer_exchange.hpp): tell peers (with the feature) the addresses of
  // our peers after each handshake, learn theirs, and when at max_peers answer a dialer with
  // other peers' addresses (up to redirect_slots at a time) instead of closing at once.
  bool peer_exchange = true;
  std::size_t redirect_slots = 8;
  std::size_t max_learned_addresses = 256;       // addresses learned from peers kept as candidates
  std::chrono::milliseconds dns_refresh{30000};  // seed re-resolution period
  // Surplus connections (a fleet started at once ends with ~2x target_peers: every node dials
  // target_peers and accepts up to max_peers). Once no peer came up for trim_settle and no dial
  // is in flight, a node above target_peers asks one peer at a time (Trim frame) whether they
  // may drop their link; the peer agrees only if it keeps more than target_peers itself and is
  // connected to one of the asker's other peers. A node takes part in one trim at a time, so
  // the link dropped always lies on a triangle of links that stay: nobody is isolated and the
  // overlay is not split by trimming. Every claim is pushed over every link, so each link
  // dropped saves two frames per claim (its copies in both directions).
  bool trim_surplus = true;
  std::chrono::milliseconds trim_settle{2000};
};

struct TransportCallbacks {
  std::function<void(PeerId, const v1::NodeCert&)> on_peer_up;
  // `payload` is valid only during the call.
  std::function<void(PeerId, std::span<const std::uint8_t> payload)> on_frame;
  std::function<void(PeerId, std::string_view reason)> on_peer_down;
  // Optional: one frame of an up peer was dropped by the receive rate limit (after its
  // decryption, before on_frame). The daemon scores the peer for it.
  std::function<void(PeerId)> on_rate_drop;
};

// How an outbound dial ended (one count per dial, at its end or once it is up).
enum class DialOutcome : std::uint8_t {
  up,                 // handshake done, announced to the daemon
  refused,            // TCP connect refused (nothing listening yet)
  connect_timeout,    // TCP connect did not finish within handshake_timeout
  connect_error,      // another TCP connect error
  handshake_timeout,  // connected, handshake not done within handshake_timeout
  closed_by_peer,     // connected, the peer closed during the handshake (full, overloaded)
  handshake_refused,  // another handshake failure (certs, ban, self, peer said why)
  duplicate,          // handshake done, closed by the one-connection-per-node rule
  redirected,         // the peer was full and answered with other peers' addresses
  count_
};
constexpr std::size_t dial_outcome_count = static_cast<std::size_t>(DialOutcome::count_);
std::string_view to_string(DialOutcome outcome);

// Counters for the metrics page. Monotonic except where noted.
struct TransportStats {
  std::uint64_t connections_accepted = 0;  // inbound TCP connections accepted
  std::uint64_t connections_dialed = 0;    // outbound dial attempts
  std::uint64_t connect_failures = 0;      // outbound TCP connect failed or timed out
  std::uint64_t rto_cap_unsupported = 0;   // kernel refused TCP_RTO_MAX_MS (< 6.15)
  std::uint64_t refused_max_peers = 0;     // inbound closed at once: max_peers reached
  // Inbound closed at once: kMaxHandshakingPerAddress unauthenticated connections from the
  // same address were handshaking already (one host cannot hold every slot half-open).
  std::uint64_t refused_per_address = 0;
  std::uint64_t handshakes_ok = 0;
  // By HandshakeFailure (to_string() gives the label). The cert_* entries are the refused
  // certs by reason (wrong CA = cert_bad_signature).
  std::array<std::uint64_t, handshake_failure_count> handshakes_failed{};
  std::uint64_t duplicate_connections = 0;  // closed by the one-connection-per-node rule
  std::array<std::uint64_t, dial_outcome_count> dial_outcomes{};  // by DialOutcome
  std::uint64_t frames_in = 0;        // decrypted frames (incl. Ping/Pong/Goodbye)
  std::uint64_t frames_out = 0;       // sealed frames queued for sending
  std::uint64_t bytes_in = 0;         // TCP bytes read (all connections)
  std::uint64_t bytes_out = 0;        // TCP bytes written
  std::uint64_t oversize_frames = 0;  // length prefix above the limit (pre- or post-auth)
  std::uint64_t decrypt_failures = 0;
  std::uint64_t protocol_errors = 0;   // handshake message after the handshake, bad Ping
  std::uint64_t rate_limit_drops = 0;  // frames dropped by the receive rate limit
  std::uint64_t idle_timeouts = 0;
  std::uint64_t send_queue_overflows = 0;
  std::uint64_t certs_expired_while_connected = 0;
  std::uint64_t revoked_while_connected = 0;
  std::uint64_t pings_sent = 0;
  std::uint64_t resolve_failures = 0;  // seed resolutions that failed
  // Peer exchange.
  std::uint64_t pex_sent = 0;               // PeerExchange frames sent after a handshake
  std::uint64_t pex_received = 0;           // ... received and used
  std::uint64_t pex_rejected = 0;           // ... ignored: unknown version, malformed
  std::uint64_t pex_addresses_learned = 0;  // new candidate addresses from peers
  std::uint64_t redirects_sent = 0;         // dialers answered "full, try these" (at max_peers)
  std::uint64_t redirects_received = 0;     // dials answered that way
  // Trimming surplus connections (TransportLimits::trim_surplus).
  std::uint64_t trim_requests_sent = 0;      // we asked a peer to drop our link
  std::uint64_t trim_requests_granted = 0;   // a peer asked us and we agreed
  std::uint64_t trim_requests_refused = 0;   // a peer asked us and we refused (not surplus, busy)
  std::uint64_t trim_refusals_received = 0;  // a peer refused our request
  std::uint64_t trims = 0;                   // links we closed after the peer agreed
  std::uint64_t trim_rejected = 0;           // Trim frames ignored: bad version, unsolicited reply

  std::uint64_t handshakes_failed_total() const;
};

struct PeerInfo {
  PeerId id = 0;
  std::string node_id;
  std::string failure_domain;
  std::uint64_t cert_serial = 0;
  boost::asio::ip::tcp::endpoint remote;
  bool outbound = false;          // we dialed it
  TimeMs connected_since_ms = 0;  // wall clock, handshake completion
  std::uint64_t bytes_in = 0, bytes_out = 0, frames_in = 0, frames_out = 0;
  std::uint64_t rate_limit_drops = 0;
  std::size_t send_queue_bytes = 0;  // sealed bytes waiting to be written now
};

// Checks that `cert` is signed by `ca`, valid at `now_ms`, a node cert, and certifies
// `key`'s public key. Errors: verify_cert's codes (proto/cert.hpp), `identity_mismatch`.
Result<LocalIdentity> make_identity(proto::SecretKey key, v1::SignedCert cert,
                                    const proto::PublicKey& ca, TimeMs now_ms);

class TransportImpl;

class Transport {
 public:
  // Nothing happens until listen() / add_seed(). `io` must outlive the Transport and is
  // run by the caller on one thread.
  Transport(boost::asio::io_context& io, LocalIdentity identity, TransportLimits limits,
            TransportCallbacks callbacks);
  // Closes every connection without invoking callbacks.
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Starts accepting on `endpoint` (port 0 = any). Returns the bound endpoint. Errors:
  // `listen_failed` naming the endpoint and the OS reason.
  Result<boost::asio::ip::tcp::endpoint> listen(const boost::asio::ip::tcp::endpoint& endpoint);

  // Adds a seed ("host:port" or "dns:NAME:PORT", meshd/net/seeds.hpp); resolution and
  // dialing start at once. Errors: `bad_seed`.
  Result<void> add_seed(std::string_view seed);

  // Seals `payload` (one serialized Frame) and queues it. Errors: `unknown_peer` (not up,
  // or already down), `frame_too_large` (payload + 17 bytes > max_frame_size),
  // `send_queue_overflow` (the peer was dropped).
  Result<void> send(PeerId peer, std::span<const std::uint8_t> payload);

  // Closes the connection (a Goodbye carrying `reason` is flushed first, best effort) and,
  // if ban_for > 0, refuses that node id in both directions for that long.
  void disconnect(PeerId peer, std::string_view reason,
                  std::chrono::milliseconds ban_for = std::chrono::milliseconds(0));

  // Replaces the revoked-serial set; connected peers whose cert serial is now revoked are
  // disconnected.
  void set_revoked_serials(std::unordered_set<std::uint64_t> serials);

  // Established peers.
  std::vector<PeerInfo> peers() const;
  const TransportStats& stats() const;
  const std::string& node_id() const;

  // Stops listening, dialing and closes every connection (no callbacks). Idempotent.
  void stop();

 private:
  std::shared_ptr<TransportImpl> impl_;
};

}  // namespace meshd::net

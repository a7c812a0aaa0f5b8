// Internals of meshd/net/transport.hpp: the shared state (TransportImpl) and one TCP
// connection (Connection). Not a public header.
//
// Lifetime: coroutines hold shared_ptrs to their Connection and to TransportImpl, so both
// outlive every pending operation; `stopped_` turns the Transport's callbacks off when the
// public Transport object goes away.
#pragma once

#include "meshd/common/asio.hpp"
#include "meshd/common/log_limit.hpp"

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>

#include "meshd/common/clock.hpp"
#include "meshd/net/handshake.hpp"
#include "meshd/net/peer_exchange.hpp"
#include "meshd/net/seeds.hpp"
#include "meshd/net/transport.hpp"

namespace meshd::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

std::string to_string(const tcp::endpoint& ep);

class Connection;

// Candidate::seed of an address learned from a peer (peer exchange), not from a seed.
constexpr std::size_t kLearnedSeed = static_cast<std::size_t>(-1);

// A dialable address learned from a seed or from a peer.
struct Candidate {
  std::size_t seed = 0;          // index into TransportImpl::seeds_, or kLearnedSeed
  std::uint64_t generation = 0;  // resolution round that last listed it
  unsigned failures = 0;         // consecutive failed attempts (back-off exponent)
  SteadyTime next_attempt{};     // not before
  PeerId conn = 0;               // live connection dialed to it (0 = none)
  std::string node_id;           // learned from a completed handshake
  bool self = false;             // it is us: never dial again
  bool refused = false;          // its last handshake was refused (certs, ban): full back-off
  bool hinted = false;           // a peer is connected to it: dialed before the others
  bool full = false;  // its last answer was a redirect (at max_peers): keeps its back-off
};

class TransportImpl : public std::enable_shared_from_this<TransportImpl> {
 public:
  TransportImpl(asio::io_context& io, LocalIdentity identity, TransportLimits limits,
                TransportCallbacks callbacks);

  void start();       // spawns the resolver and dialer loops (and the trim loop)
  void start_trim();  // spawns the trim loop once (start() or listen())
  void stop();

  Result<tcp::endpoint> listen(const tcp::endpoint& endpoint);
  Result<void> add_seed(std::string_view text);
  Result<void> send(PeerId peer, std::span<const std::uint8_t> payload);
  void disconnect(PeerId peer, std::string_view reason, std::chrono::milliseconds ban_for);
  void set_revoked_serials(std::unordered_set<std::uint64_t> serials);
  std::vector<PeerInfo> peers() const;

  // --- used by Connection ---
  asio::io_context& io() { return io_; }
  const LocalIdentity& identity() const { return identity_; }
  const TransportLimits& limits() const { return limits_; }
  TransportStats& stats() { return stats_; }
  bool stopped() const { return stopped_; }
  bool is_revoked(std::uint64_t serial) const { return revoked_.contains(serial); }
  bool is_banned(const std::string& node_id, SteadyTime now) const;
  // The handshake succeeded; returns false if the connection must be closed (duplicate,
  // stopped). Reports on_peer_up when true.
  bool on_established(const std::shared_ptr<Connection>& conn);
  // The connection failed its handshake (reason set) or was closed after being up.
  void on_retired(Connection& conn, std::optional<HandshakeFailure> failure,
                  const std::string& reason);
  void deliver_frame(PeerId id, std::span<const std::uint8_t> payload);
  void deliver_rate_drop(PeerId id);
  // Peer exchange: a sealed PeerExchange from an up peer; a redirect answering our dial.
  void on_peer_exchange(Connection& conn, const v1::PeerExchange& msg);
  void on_redirected(Connection& conn, const PeerExchange& pex);
  // Trim (TransportLimits::trim_surplus): a request or reply from an up peer.
  void on_trim(Connection& conn, const v1::Trim& msg);
  // What we tell `to` (excluded from the list): our listen port and up to
  // kMaxPeerExchangeAddresses random peers whose listen address we know.
  PeerExchange peer_exchange_for(const Connection& to, bool redirect);

 private:
  static asio::awaitable<void> accept_loop(std::shared_ptr<TransportImpl> self,
                                           std::shared_ptr<tcp::acceptor> acceptor);
  static asio::awaitable<void> resolve_loop(std::shared_ptr<TransportImpl> self);
  static asio::awaitable<void> dial_loop(std::shared_ptr<TransportImpl> self);
  static asio::awaitable<void> trim_loop(std::shared_ptr<TransportImpl> self);
  // Asks one peer to drop a surplus link if we should; returns when to look again.
  std::chrono::steady_clock::duration trim_round(SteadyTime now);
  // In a trim now (asked a peer, or agreed to one and wait for its close): no other.
  bool trim_busy(SteadyTime now);
  SteadyTime dial_round(SteadyTime now);  // dials what it should; returns the next wake-up
  void dial(const tcp::endpoint& endpoint, Candidate& candidate);
  void kick_dialer();
  void close_peer(PeerId id, const std::string& reason);
  std::size_t live_count() const;
  std::size_t dials_in_flight() const;
  // Adds an address a peer told us about (bounded by max_learned_addresses); `live` = the
  // sender is connected to it now, so a back-off from a cold start need not be waited out.
  // Returns true if it was new.
  bool learn_address(const tcp::endpoint& endpoint, const std::string& node_hint, bool live,
                     SteadyTime now);

  asio::io_context& io_;
  LocalIdentity identity_;
  TransportLimits limits_;
  TransportCallbacks callbacks_;
  TransportStats stats_;
  // Warnings about unauthenticated connections (refused, failed handshakes): one per kind
  // every 10 s, so a flood of them cannot flood the log.
  LogLimit refused_log_, handshake_log_;
  bool stopped_ = false;
  bool started_ = false;
  bool trim_started_ = false;
  PeerId next_id_ = 1;
  std::size_t redirecting_ = 0;    // inbound connections accepted only to be redirected
  std::size_t learned_count_ = 0;  // candidates with seed == kLearnedSeed
  std::uint16_t listen_port_ = 0;  // of the first listener (told to peers), 0 = none

  std::vector<std::shared_ptr<tcp::acceptor>> acceptors_;
  std::unordered_map<PeerId, std::shared_ptr<Connection>> conns_;  // handshaking or up
  std::unordered_map<std::string, PeerId> by_node_;                // up only
  std::unordered_map<std::string, SteadyTime> bans_;               // node id -> until
  std::unordered_set<std::uint64_t> revoked_;

  std::vector<Seed> seeds_;
  bool seeds_changed_ = false;
  std::uint64_t generation_ = 0;
  std::map<tcp::endpoint, Candidate> candidates_;
  asio::steady_timer resolve_timer_;
  asio::steady_timer dial_timer_;
  // Trim state: the peer we asked (0 = none) and since when; the peer we agreed with and until
  // when we wait for it to close; when a peer last came up (formation still going on).
  PeerId trim_asked_ = 0;
  SteadyTime trim_asked_at_{};
  PeerId trim_granted_ = 0;
  SteadyTime trim_granted_until_{};
  SteadyTime last_peer_up_{};
  SteadyTime trim_pause_until_{};  // after an answer: the next request not before
  asio::steady_timer trim_timer_;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class State { handshaking, up, closing, closed };

  Connection(std::shared_ptr<TransportImpl> transport, tcp::socket socket, PeerId id,
             std::optional<tcp::endpoint> dialed, bool redirect_only = false);

  // Inbound: handshake, then serve. Outbound: connect to `dialed` first. Spawn it with
  // spawn(), which keeps the connection alive while it runs.
  static void spawn(std::shared_ptr<Connection> conn);

  PeerId id() const { return id_; }
  State state() const { return state_; }
  bool outbound() const { return dialed_.has_value(); }
  const std::optional<tcp::endpoint>& dialed() const { return dialed_; }
  const v1::NodeCert& cert() const { return cert_; }
  PeerInfo info() const;
  const tcp::endpoint& remote() const { return remote_; }
  // Reported to the daemon with on_peer_up (so on_peer_down is owed).
  bool announced() const { return announced_; }
  void set_announced() { announced_ = true; }
  // Counts how this outbound dial ended, once (later calls and inbound connections: no-op).
  void set_dial_outcome(DialOutcome outcome);
  // Accepted at max_peers: after verifying the dialer it gets a redirect, never a session.
  bool redirect_only() const { return redirect_only_; }
  std::uint32_t peer_features() const { return peer_features_; }
  // Where the peer accepts connections: the dialed address, or (inbound) its address with the
  // listen port its PeerExchange named.
  std::optional<tcp::endpoint> peer_listen() const { return dialed_ ? dialed_ : peer_listen_; }
  void set_peer_listen(const tcp::endpoint& ep) { peer_listen_ = ep; }
  bool pex_received() const { return pex_received_; }
  void set_pex_received() { pex_received_ = true; }
  // Trim: not asked again before this (it refused us); how often it refused us so far.
  SteadyTime trim_refused_until() const { return trim_refused_until_; }
  unsigned trim_refusals() const { return trim_refusals_; }
  void trim_refused(SteadyTime until) {
    trim_refused_until_ = until;
    ++trim_refusals_;
  }
  // Seals and queues a transport frame (PeerExchange); state up only.
  void send_transport_frame(const v1::Frame& frame) { send_control(frame); }
  std::chrono::steady_clock::duration up_for() const {
    return std::chrono::steady_clock::now() - up_since_;
  }

  // Seals and queues one frame payload (state up only). `send_queue_overflow` drops the peer.
  Result<void> send(std::span<const std::uint8_t> payload);
  // Graceful: the peer is reported down now; a Goodbye is flushed, then the socket closes
  // (at the latest after the handshake timeout).
  void close_gracefully(const std::string& reason);
  // Immediate close. `failure` set = a handshake failure to count and report.
  void close(const std::string& reason, std::optional<HandshakeFailure> failure = std::nullopt);

 private:
  // Each coroutine takes `self` so the connection outlives it.
  static asio::awaitable<void> run(std::shared_ptr<Connection> self);
  asio::awaitable<bool> handshake();  // true = up and announced
  asio::awaitable<HandshakeResult<std::string>> read_plain_frame();
  asio::awaitable<bool> write_plain_frame(const std::string& payload);
  asio::awaitable<void> refuse(const HandshakeError& error, bool tell_peer);
  static asio::awaitable<void> read_loop(std::shared_ptr<Connection> self);
  static asio::awaitable<void> write_loop(std::shared_ptr<Connection> self);
  static asio::awaitable<void> idle_loop(std::shared_ptr<Connection> self);
  void handle_frame(std::span<const std::uint8_t> plain);
  void enqueue_sealed(std::span<const std::uint8_t> payload);
  void send_control(const v1::Frame& frame);
  void retire(std::optional<HandshakeFailure> failure, const std::string& reason);

  std::shared_ptr<TransportImpl> t_;
  tcp::socket socket_;
  PeerId id_;
  std::optional<tcp::endpoint> dialed_;
  tcp::endpoint remote_;
  State state_ = State::handshaking;
  bool retired_ = false;
  bool announced_ = false;
  bool timed_out_ = false;
  bool dial_counted_ = false;
  bool redirect_only_ = false;
  bool pex_received_ = false;
  std::uint32_t peer_features_ = 0;
  std::optional<tcp::endpoint> peer_listen_;
  std::string close_reason_;  // for a graceful close in progress
  SteadyTime up_since_{};
  SteadyTime trim_refused_until_{};
  unsigned trim_refusals_ = 0;

  asio::steady_timer deadline_;  // handshake deadline, then graceful-close deadline
  asio::steady_timer idle_timer_;
  asio::steady_timer write_signal_;

  v1::NodeCert cert_;
  std::optional<Session> session_;
  FrameRateLimiter limiter_;
  SteadyTime last_rx_{};
  TimeMs connected_since_ms_ = 0;

  std::deque<std::vector<std::uint8_t>> queue_;  // sealed frames with their length prefix
  std::size_t queued_bytes_ = 0;
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0, frames_in_ = 0, frames_out_ = 0;
  std::uint64_t rate_drops_ = 0;
  std::uint64_t ping_nonce_ = 0;
};

}  // namespace meshd::net

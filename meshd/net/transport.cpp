// Transport bookkeeping: listener, peer table, callbacks, bans, revocation, stats.
// The dialer lives in dialer.cpp, one connection in connection.cpp.
#include "meshd/common/asio.hpp"

#include <spdlog/spdlog.h>

#include "meshd/net/transport_impl.hpp"
#include "proto/cert.hpp"

namespace meshd::net {

using asio::redirect_error;
using asio::use_awaitable;
using boost::system::error_code;

std::string to_string(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) {
    return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  }
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

std::string_view to_string(DialOutcome outcome) {
  switch (outcome) {
    case DialOutcome::up:
      return "up";
    case DialOutcome::refused:
      return "refused";
    case DialOutcome::connect_timeout:
      return "connect_timeout";
    case DialOutcome::connect_error:
      return "connect_error";
    case DialOutcome::handshake_timeout:
      return "handshake_timeout";
    case DialOutcome::closed_by_peer:
      return "closed_by_peer";
    case DialOutcome::handshake_refused:
      return "handshake_refused";
    case DialOutcome::duplicate:
      return "duplicate";
    case DialOutcome::redirected:
      return "redirected";
    case DialOutcome::count_:
      break;
  }
  return "unknown";
}

std::uint64_t TransportStats::handshakes_failed_total() const {
  std::uint64_t total = 0;
  for (auto n : handshakes_failed) total += n;
  return total;
}

Result<LocalIdentity> make_identity(proto::SecretKey key, v1::SignedCert cert,
                                    const proto::PublicKey& ca, TimeMs now_ms) {
  auto node_cert = proto::verify_cert(cert, ca, now_ms, v1::ROLE_NODE);
  if (!node_cert) return std::unexpected(node_cert.error());
  auto cert_key = proto::cert_public_key(*node_cert);
  if (!cert_key) return std::unexpected(cert_key.error());
  if (!(*cert_key == key.public_key())) {
    return fail("identity_mismatch", "cert of node '" + node_cert->node_id() + "' certifies key " +
                                         cert_key->fingerprint() + " but the secret key is " +
                                         key.public_key().fingerprint());
  }
  return LocalIdentity{std::move(key), std::move(cert), std::move(*node_cert), ca};
}

// ---------------------------------------------------------------------------------------

TransportImpl::TransportImpl(asio::io_context& io, LocalIdentity identity, TransportLimits limits,
                             TransportCallbacks callbacks)
    : io_(io),
      identity_(std::move(identity)),
      limits_(limits),
      callbacks_(std::move(callbacks)),
      resolve_timer_(io),
      dial_timer_(io),
      trim_timer_(io) {
  // A full-size frame must always be able to pass the byte bucket eventually.
  auto& rate = limits_.receive_rate;
  if (rate.bytes_per_s > 0) {
    rate.bytes_burst = std::max(rate.bytes_burst, static_cast<double>(limits_.max_frame_size));
  }
  if (rate.frames_per_s > 0) rate.frames_burst = std::max(rate.frames_burst, 1.0);
  limits_.target_peers = std::min(limits_.target_peers, limits_.max_peers);
  limits_.max_concurrent_dials = std::max<std::size_t>(limits_.max_concurrent_dials, 1);
}

void TransportImpl::start() {
  if (started_ || stopped_) return;
  started_ = true;
  asio::co_spawn(io_, resolve_loop(shared_from_this()), asio::detached);
  asio::co_spawn(io_, dial_loop(shared_from_this()), asio::detached);
  start_trim();
}

void TransportImpl::start_trim() {
  // A node that only listens (no seeds) has surplus links to trim too.
  if (trim_started_ || stopped_ || !limits_.trim_surplus) return;
  trim_started_ = true;
  asio::co_spawn(io_, trim_loop(shared_from_this()), asio::detached);
}

void TransportImpl::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& acceptor : acceptors_) {
    error_code ignored;
    acceptor->close(ignored);
  }
  acceptors_.clear();
  resolve_timer_.cancel();
  dial_timer_.cancel();
  trim_timer_.cancel();
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& [id, conn] : conns_) all.push_back(conn);
  for (auto& conn : all) conn->close("transport stopped");
  conns_.clear();
  by_node_.clear();
}

Result<tcp::endpoint> TransportImpl::listen(const tcp::endpoint& endpoint) {
  if (stopped_) return fail("listen_failed", "transport is stopped");
  auto acceptor = std::make_shared<tcp::acceptor>(io_);
  error_code ec;
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail("listen_failed", "cannot listen on " + to_string(endpoint) + ": " + ec.message());
  }
  auto bound = acceptor->local_endpoint(ec);
  if (ec) {
    return fail("listen_failed",
                "cannot read the bound address of " + to_string(endpoint) + ": " + ec.message());
  }
  acceptors_.push_back(acceptor);
  if (listen_port_ == 0) listen_port_ = bound.port();
  asio::co_spawn(io_, accept_loop(shared_from_this(), acceptor), asio::detached);
  start_trim();
  spdlog::info("net: node {} listening on {}", identity_.node_cert.node_id(), to_string(bound));
  return bound;
}

// Unauthenticated inbound connections one address may hold at once: enough for a NAT of a few
// honest nodes, far fewer than max_peers.
constexpr std::size_t kMaxHandshakingPerAddress = 4;

asio::awaitable<void> TransportImpl::accept_loop(std::shared_ptr<TransportImpl> self,
                                                 std::shared_ptr<tcp::acceptor> acceptor) {
  asio::steady_timer pause(self->io_);
  while (!self->stopped_ && acceptor->is_open()) {
    error_code ec;
    tcp::socket socket = co_await acceptor->async_accept(redirect_error(use_awaitable, ec));
    if (self->stopped_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // E.g. out of file descriptors: back off briefly instead of spinning.
      spdlog::warn("net: accept failed: {}", ec.message());
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(redirect_error(use_awaitable, ec));
      continue;
    }
    self->stats_.connections_accepted++;
    error_code addr_ec;
    const auto from = socket.remote_endpoint(addr_ec);
    std::size_t handshaking = 0;
    if (!addr_ec)
      for (const auto& [id, c] : self->conns_)
        if (!c->outbound() && !c->announced() && c->remote().address() == from.address())
          ++handshaking;
    if (handshaking >= kMaxHandshakingPerAddress) {
      self->stats_.refused_per_address++;
      if (auto more = self->refused_log_.admit())
        spdlog::warn(
            "net: refused connection from {}: {} connections from that address are "
            "handshaking already{}",
            to_string(from), handshaking, LogLimit::and_more(*more));
      socket.close(addr_ec);
      continue;
    }
    // Full: a dialer that can read a redirect is told other peers' addresses (after it proved
    // its identity; redirect_slots at a time), any other connection is closed at once.
    bool redirect = false;
    if (self->conns_.size() - self->redirecting_ >= self->limits_.max_peers &&
        self->limits_.peer_exchange && self->redirecting_ < self->limits_.redirect_slots)
      redirect = true;
    if (!redirect && self->conns_.size() - self->redirecting_ >= self->limits_.max_peers) {
      self->stats_.refused_max_peers++;
      error_code peer_ec;
      const auto remote = socket.remote_endpoint(peer_ec);
      if (auto more = self->refused_log_.admit())
        spdlog::warn("net: refused connection from {}: max peers ({}) reached{}",
                     peer_ec ? std::string("?") : to_string(remote), self->limits_.max_peers,
                     LogLimit::and_more(*more));
      socket.close(peer_ec);
      continue;
    }
    const PeerId id = self->next_id_++;
    auto conn = std::make_shared<Connection>(self, std::move(socket), id, std::nullopt, redirect);
    if (redirect) ++self->redirecting_;
    self->conns_.emplace(id, conn);
    Connection::spawn(conn);
  }
}

bool TransportImpl::is_banned(const std::string& node_id, SteadyTime now) const {
  auto it = bans_.find(node_id);
  return it != bans_.end() && now < it->second;
}

bool TransportImpl::on_established(const std::shared_ptr<Connection>& conn) {
  stats_.handshakes_ok++;
  if (stopped_) {
    conn->close("transport stopped");
    return false;
  }
  const std::string node = conn->cert().node_id();
  // Remember who answers at this address even if this connection loses the duplicate
  // rule below, so the dialer does not dial a connected node again.
  if (conn->dialed()) {
    if (auto c = candidates_.find(*conn->dialed()); c != candidates_.end())
      c->second.node_id = node;
  }
  if (auto it = by_node_.find(node); it != by_node_.end()) {
    std::shared_ptr<Connection> existing = conns_.at(it->second);
    // Both ends apply the same rule, so they keep the same connection: the one initiated
    // by the smaller node id; if both were initiated by the same side, the older one.
    const bool we_are_smaller = identity_.node_cert.node_id() < node;
    const bool new_preferred = conn->outbound() == we_are_smaller;
    const bool old_preferred = existing->outbound() == we_are_smaller;
    stats_.duplicate_connections++;
    if (!new_preferred || old_preferred) {
      conn->set_dial_outcome(DialOutcome::duplicate);
      conn->close("duplicate connection to node '" + node + "': keeping the existing one");
      return false;
    }
    existing->close_gracefully("duplicate connection to node '" + node +
                               "': replaced by the one initiated by the smaller node id");
  }
  by_node_[node] = conn->id();
  last_peer_up_ = std::chrono::steady_clock::now();
  conn->set_announced();
  conn->set_dial_outcome(DialOutcome::up);
  const PeerInfo info = conn->info();
  spdlog::info("net: peer {} up: node '{}' domain '{}' serial {} {} {}", info.id, info.node_id,
               info.failure_domain, info.cert_serial, info.outbound ? "dialed" : "from",
               to_string(info.remote));
  if (callbacks_.on_peer_up) callbacks_.on_peer_up(conn->id(), conn->cert());
  if (limits_.peer_exchange && (conn->peer_features() & feature_peer_exchange) != 0 &&
      conn->state() == Connection::State::up) {
    conn->send_transport_frame(encode_peer_exchange(peer_exchange_for(*conn, false)));
    stats_.pex_sent++;
  }
  kick_dialer();  // a dial slot is free again
  return conn->state() == Connection::State::up;
}

PeerExchange TransportImpl::peer_exchange_for(const Connection& to, bool redirect) {
  PeerExchange out;
  out.redirect = redirect;
  out.listen_port = listen_port_;
  const std::string& to_node = to.cert().node_id();
  for (const auto& [node, id] : by_node_) {
    if (node == to_node || id == to.id()) continue;
    const auto ep = conns_.at(id)->peer_listen();
    if (ep && dialable(*ep)) out.peers.push_back(PexAddress{*ep, node});
  }
  // A random subset: many dialers redirected by one node spread over its peers.
  for (std::size_t i = out.peers.size(); i > 1; --i)
    std::swap(out.peers[i - 1], out.peers[randombytes_uniform(static_cast<std::uint32_t>(i))]);
  if (out.peers.size() > kMaxPeerExchangeAddresses) out.peers.resize(kMaxPeerExchangeAddresses);
  return out;
}

bool TransportImpl::learn_address(const tcp::endpoint& endpoint, const std::string& node_hint,
                                  bool live, SteadyTime now) {
  if (!dialable(endpoint)) return false;
  if (!node_hint.empty() && node_hint == identity_.node_cert.node_id()) return false;
  if (auto it = candidates_.find(endpoint); it != candidates_.end()) {
    Candidate& c = it->second;
    // A peer is connected to it now: it listens, so a back-off earned while the fleet was
    // still starting need not be waited out. Handshake refusals keep theirs (not transient),
    // and so does a node that redirected us: it is full, and a redirect from another full node
    // naming it must not send us straight back (two full nodes would bounce a dialer between
    // them as fast as handshakes complete).
    if (live && c.conn == 0 && !c.self && c.next_attempt > now && !c.refused && !c.full) {
      c.next_attempt = now;
      c.hinted = true;
    }
    return false;
  }
  if (learned_count_ >= limits_.max_learned_addresses) return false;
  Candidate c;
  c.seed = kLearnedSeed;
  c.node_id = node_hint;
  c.next_attempt = now;
  c.hinted = live;
  candidates_.emplace(endpoint, std::move(c));
  ++learned_count_;
  stats_.pex_addresses_learned++;
  return true;
}

void TransportImpl::on_peer_exchange(Connection& conn, const v1::PeerExchange& msg) {
  // One per connection (sent right after the handshake): more would let a peer steer our
  // dialer at will.
  if (conn.pex_received()) {
    stats_.pex_rejected++;
    spdlog::debug("net: node '{}' sent a second PeerExchange: ignored", conn.cert().node_id());
    return;
  }
  conn.set_pex_received();
  auto pex = decode_peer_exchange(msg);
  if (!pex) {
    stats_.pex_rejected++;
    spdlog::debug("net: PeerExchange from node '{}' ignored: {}", conn.cert().node_id(),
                  pex.error().message);
    return;
  }
  stats_.pex_received++;
  const auto now = std::chrono::steady_clock::now();
  if (!conn.outbound() && pex->listen_port != 0) {
    // Its address is the one it connected from (authenticated: it is this session's peer).
    const tcp::endpoint ep(conn.remote().address(), pex->listen_port);
    if (dialable(ep)) {
      conn.set_peer_listen(ep);
      learn_address(ep, conn.cert().node_id(), false, now);
      if (auto it = candidates_.find(ep); it != candidates_.end())
        it->second.node_id = conn.cert().node_id();
    }
  }
  for (const auto& a : pex->peers) learn_address(a.endpoint, a.node_id, true, now);
  kick_dialer();
}

void TransportImpl::on_redirected(Connection& conn, const PeerExchange& pex) {
  stats_.redirects_received++;
  conn.set_dial_outcome(DialOutcome::redirected);
  const auto now = std::chrono::steady_clock::now();
  for (const auto& a : pex.peers) learn_address(a.endpoint, a.node_id, true, now);
}

void TransportImpl::on_retired(Connection& conn, std::optional<HandshakeFailure> failure,
                               const std::string& reason) {
  const PeerId id = conn.id();
  conns_.erase(id);
  if (id == trim_asked_) trim_asked_ = 0;
  if (id == trim_granted_) trim_granted_ = 0;
  if (conn.redirect_only() && redirecting_ > 0) --redirecting_;
  const std::string remote = to_string(conn.info().remote);
  if (failure)
    conn.set_dial_outcome(*failure == HandshakeFailure::timeout ? DialOutcome::handshake_timeout
                          : *failure == HandshakeFailure::io_error
                              ? DialOutcome::closed_by_peer
                              : DialOutcome::handshake_refused);
  else
    conn.set_dial_outcome(DialOutcome::connect_error);  // closed before it finished (stop)
  if (failure) {
    stats_.handshakes_failed[static_cast<std::size_t>(*failure)]++;
    if (*failure == HandshakeFailure::redirected) {
      spdlog::debug("net: dial to {}: {}", remote, reason);
    } else if (!stopped_) {
      if (auto more = handshake_log_.admit())
        spdlog::warn("net: handshake {} {} failed ({}): {}{}", conn.outbound() ? "to" : "from",
                     remote, to_string(*failure), reason, LogLimit::and_more(*more));
    }
  }
  if (conn.announced()) {
    const std::string& node = conn.cert().node_id();
    if (auto it = by_node_.find(node); it != by_node_.end() && it->second == id) by_node_.erase(it);
    if (!stopped_) {
      spdlog::info("net: peer {} down: node '{}' {}: {}", id, node, remote, reason);
      asio::post(io_, [self = shared_from_this(), id, reason] {
        if (!self->stopped_ && self->callbacks_.on_peer_down)
          self->callbacks_.on_peer_down(id, reason);
      });
    }
  } else if (!failure && !stopped_) {
    spdlog::debug("net: connection {} {} closed before the handshake finished: {}",
                  conn.outbound() ? "to" : "from", remote, reason);
  }
  if (conn.dialed()) {
    if (auto it = candidates_.find(*conn.dialed());
        it != candidates_.end() && it->second.conn == id) {
      Candidate& c = it->second;
      c.conn = 0;
      if (failure == HandshakeFailure::self_connection) c.self = true;
      // A connection that stayed up a while earns a quick reconnect; one that flaps keeps
      // growing its back-off.
      if (conn.announced() && conn.up_for() >= std::chrono::seconds(10)) {
        c.failures = 1;
      } else {
        c.failures++;
      }
      // A full node stays full for a while: not before ~2-3 s (the other peers it named are
      // dialed meanwhile).
      if (failure == HandshakeFailure::redirected) c.failures = std::max(c.failures, 5u);
      BackoffPolicy policy = limits_.backoff;
      const bool transient = !failure || *failure == HandshakeFailure::io_error ||
                             *failure == HandshakeFailure::timeout ||
                             *failure == HandshakeFailure::redirected;
      c.refused = !transient;
      c.full = failure == HandshakeFailure::redirected;
      c.hinted = false;
      if (transient && live_count() < limits_.target_peers)
        policy.cap = std::min(policy.cap, policy.below_target_cap);
      const double r = randombytes_uniform(1u << 30) / static_cast<double>(1u << 30);
      c.next_attempt = std::chrono::steady_clock::now() + backoff_delay(policy, c.failures, r);
    }
  }
  kick_dialer();
}

void TransportImpl::deliver_frame(PeerId id, std::span<const std::uint8_t> payload) {
  if (!stopped_ && callbacks_.on_frame) callbacks_.on_frame(id, payload);
}

void TransportImpl::deliver_rate_drop(PeerId id) {
  if (!stopped_ && callbacks_.on_rate_drop) callbacks_.on_rate_drop(id);
}

Result<void> TransportImpl::send(PeerId peer, std::span<const std::uint8_t> payload) {
  auto it = conns_.find(peer);
  if (it == conns_.end() || !it->second->announced()) {
    return fail("unknown_peer", "peer " + std::to_string(peer) + " is not connected");
  }
  std::shared_ptr<Connection> conn = it->second;
  return conn->send(payload);
}

void TransportImpl::disconnect(PeerId peer, std::string_view reason,
                               std::chrono::milliseconds ban_for) {
  auto it = conns_.find(peer);
  if (it == conns_.end() || !it->second->announced()) return;
  std::shared_ptr<Connection> conn = it->second;
  if (ban_for.count() > 0) {
    const auto until = std::chrono::steady_clock::now() + ban_for;
    auto& ban = bans_[conn->cert().node_id()];
    ban = std::max(ban, until);
    spdlog::warn("net: banning node '{}' for {} ms: {}", conn->cert().node_id(), ban_for.count(),
                 reason);
  }
  conn->close_gracefully(std::string(reason));
}

void TransportImpl::set_revoked_serials(std::unordered_set<std::uint64_t> serials) {
  revoked_ = std::move(serials);
  std::vector<std::shared_ptr<Connection>> hit;
  for (auto& [node, id] : by_node_) {
    auto& conn = conns_.at(id);
    if (revoked_.contains(conn->cert().serial())) hit.push_back(conn);
  }
  for (auto& conn : hit) {
    stats_.revoked_while_connected++;
    conn->close_gracefully("cert of node '" + conn->cert().node_id() + "' (serial " +
                           std::to_string(conn->cert().serial()) + ") revoked");
  }
}

std::vector<PeerInfo> TransportImpl::peers() const {
  std::vector<PeerInfo> out;
  out.reserve(by_node_.size());
  for (const auto& [node, id] : by_node_) out.push_back(conns_.at(id)->info());
  std::sort(out.begin(), out.end(),
            [](const PeerInfo& a, const PeerInfo& b) { return a.id < b.id; });
  return out;
}

// ---------------------------------------------------------------------------------------

Transport::Transport(asio::io_context& io, LocalIdentity identity, TransportLimits limits,
                     TransportCallbacks callbacks)
    : impl_(
          std::make_shared<TransportImpl>(io, std::move(identity), limits, std::move(callbacks))) {}

Transport::~Transport() {
  impl_->stop();
}

Result<tcp::endpoint> Transport::listen(const tcp::endpoint& endpoint) {
  return impl_->listen(endpoint);
}

Result<void> Transport::add_seed(std::string_view seed) {
  return impl_->add_seed(seed);
}

Result<void> Transport::send(PeerId peer, std::span<const std::uint8_t> payload) {
  return impl_->send(peer, payload);
}

void Transport::disconnect(PeerId peer, std::string_view reason,
                           std::chrono::milliseconds ban_for) {
  impl_->disconnect(peer, reason, ban_for);
}

void Transport::set_revoked_serials(std::unordered_set<std::uint64_t> serials) {
  impl_->set_revoked_serials(std::move(serials));
}

std::vector<PeerInfo> Transport::peers() const {
  return impl_->peers();
}
const TransportStats& Transport::stats() const {
  return impl_->stats();
}
const std::string& Transport::node_id() const {
  return impl_->identity().node_cert.node_id();
}
void Transport::stop() {
  impl_->stop();
}

}  // namespace meshd::net

// One peer connection: connect (outbound), handshake, then three coroutines — reader,
// writer, idle watchdog — on the transport's io_context thread.
#include "meshd/common/asio.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "meshd/net/transport_impl.hpp"
#include "proto/frame.hpp"

namespace meshd::net {
namespace {

using asio::redirect_error;
using asio::use_awaitable;
using boost::system::error_code;

// Hello frames carry one cert; anything bigger before authentication is an attack.
constexpr std::size_t max_handshake_frame = 16 * 1024;
constexpr std::size_t read_chunk = 64 * 1024;
// Fairness between peers: one connection hands at most this many frames to the daemon, then
// lets every other ready handler (other peers' frames, timers, the control socket) run before
// it goes on. One read of 64 KiB holds ~100 claim frames; handed over in one go, a flooding
// peer's burst (each frame verified, enforced, stored, relayed) would keep an honest peer's
// frame waiting behind all of them.
constexpr std::size_t frames_per_turn = 8;
// A write gathers at most this much so one large backlog does not starve the reader.
constexpr std::size_t max_write_batch_bytes = 1024 * 1024;
constexpr std::size_t max_write_batch_frames = 4096;
// Capacity of an idle connection's batch buffer kept for the next write.
constexpr std::size_t keep_write_buffer_bytes = 64 * 1024;

// First byte of a serialized Frame whose oneof field `field` (length-delimited) is set.
constexpr std::uint8_t frame_tag(int field) {
  return static_cast<std::uint8_t>((field << 3) | 2);
}
// TCP_RTO_MAX_MS of <linux/tcp.h> >= 6.15 (older headers lack it).
constexpr int kTcpRtoMaxMs = 44;

constexpr std::uint8_t tag_ping = frame_tag(v1::Frame::kPingFieldNumber);
constexpr std::uint8_t tag_pong = frame_tag(v1::Frame::kPongFieldNumber);
constexpr std::uint8_t tag_hello = frame_tag(v1::Frame::kHelloFieldNumber);
constexpr std::uint8_t tag_hello_auth = frame_tag(v1::Frame::kHelloAuthFieldNumber);
constexpr std::uint8_t tag_goodbye = frame_tag(v1::Frame::kGoodbyeFieldNumber);
constexpr std::uint8_t tag_peer_exchange = frame_tag(v1::Frame::kPeerExchangeFieldNumber);
constexpr std::uint8_t tag_trim = frame_tag(v1::Frame::kTrimFieldNumber);

void put_be32(std::uint8_t* p, std::size_t v) {
  p[0] = static_cast<std::uint8_t>((v >> 24) & 0xff);
  p[1] = static_cast<std::uint8_t>((v >> 16) & 0xff);
  p[2] = static_cast<std::uint8_t>((v >> 8) & 0xff);
  p[3] = static_cast<std::uint8_t>(v & 0xff);
}

std::chrono::nanoseconds mono_now() {
  return std::chrono::steady_clock::now().time_since_epoch();
}

long long ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

Connection::Connection(std::shared_ptr<TransportImpl> transport, tcp::socket socket, PeerId id,
                       std::optional<tcp::endpoint> dialed, bool redirect_only)
    : t_(std::move(transport)),
      socket_(std::move(socket)),
      id_(id),
      dialed_(dialed),
      redirect_only_(redirect_only && !dialed),
      deadline_(t_->io()),
      idle_timer_(t_->io()),
      write_signal_(t_->io()),
      limiter_(t_->limits().receive_rate) {
  if (dialed_) {
    remote_ = *dialed_;
  } else {
    error_code ec;
    remote_ = socket_.remote_endpoint(ec);
  }
}

void Connection::set_dial_outcome(DialOutcome outcome) {
  if (!outbound() || dial_counted_) return;
  dial_counted_ = true;
  t_->stats().dial_outcomes[static_cast<std::size_t>(outcome)]++;
}

void Connection::spawn(std::shared_ptr<Connection> conn) {
  asio::co_spawn(conn->t_->io(), run(conn), asio::detached);
}

PeerInfo Connection::info() const {
  PeerInfo p;
  p.id = id_;
  p.node_id = cert_.node_id();
  p.failure_domain = cert_.failure_domain();
  p.cert_serial = cert_.serial();
  p.remote = remote_;
  p.outbound = outbound();
  p.connected_since_ms = connected_since_ms_;
  p.bytes_in = bytes_in_;
  p.bytes_out = bytes_out_;
  p.frames_in = frames_in_;
  p.frames_out = frames_out_;
  p.rate_limit_drops = rate_drops_;
  p.send_queue_bytes = queued_bytes_;
  return p;
}

asio::awaitable<void> Connection::run(std::shared_ptr<Connection> self) {
  // One deadline covers connect + handshake; on expiry the socket is closed, which aborts
  // whatever operation is pending.
  self->deadline_.expires_after(self->t_->limits().handshake_timeout);
  self->deadline_.async_wait([weak = self->weak_from_this()](error_code ec) {
    if (ec) return;
    if (auto c = weak.lock(); c && c->state_ == State::handshaking) {
      c->timed_out_ = true;
      error_code ignored;
      c->socket_.close(ignored);
    }
  });

  if (self->dialed_) {
    error_code ec;
    co_await self->socket_.async_connect(*self->dialed_, redirect_error(use_awaitable, ec));
    if (ec) {
      self->t_->stats().connect_failures++;
      self->set_dial_outcome(self->timed_out_                        ? DialOutcome::connect_timeout
                             : ec == asio::error::connection_refused ? DialOutcome::refused
                                                                     : DialOutcome::connect_error);
      self->close(self->timed_out_ ? "connect timed out" : "connect failed: " + ec.message());
      co_return;
    }
  }
  {
    // Frames are batched by the writer already; Nagle would only add delayed-ACK stalls
    // (~40 ms) to gossip latency.
    error_code ignored;
    self->socket_.set_option(tcp::no_delay(true), ignored);
    // Retransmissions back off exponentially (up to 120 s): after a partition of 30 s, a
    // connection that kept data in flight would next retransmit ~20 s after the heal. Capped
    // at 1 s (TCP_RTO_MAX_MS, Linux >= 6.15), it resumes within a second of the heal. Older
    // kernels refuse the option: they keep their default (the dialer reconnects instead once
    // the idle timeout closes the connection).
    const int rto_max_ms = 1000;
    if (::setsockopt(self->socket_.native_handle(), IPPROTO_TCP, kTcpRtoMaxMs, &rto_max_ms,
                     sizeof rto_max_ms) != 0)
      self->t_->stats().rto_cap_unsupported++;
  }
  if (!co_await self->handshake()) co_return;

  auto ex = self->t_->io().get_executor();
  asio::co_spawn(ex, write_loop(self), asio::detached);
  asio::co_spawn(ex, idle_loop(self), asio::detached);
  co_await read_loop(self);
}

asio::awaitable<bool> Connection::handshake() {
  auto self = shared_from_this();
  Handshake hs(outbound() ? HandshakeRole::initiator : HandshakeRole::responder, t_->identity());
  // GCC 12 mis-handles temporaries built inside a co_await expression (double destruction),
  // so the failure is collected in a named local and refused once at the end.
  std::optional<HandshakeError> failure;
  bool tell_peer = false;
  do {
    if (!co_await write_plain_frame(hs.hello())) {
      failure = HandshakeError{timed_out_ ? HandshakeFailure::timeout : HandshakeFailure::io_error,
                               "cannot send Hello"};
      break;
    }
    auto peer_hello = co_await read_plain_frame();
    if (!peer_hello) {
      failure = peer_hello.error();
      break;
    }
    // From here on the peer is reading our frames: tell it why it is refused.
    tell_peer = true;
    auto cert = hs.on_peer_hello(proto::as_bytes(*peer_hello), wall_now_ms(),
                                 [t = t_.get()](std::uint64_t s) { return t->is_revoked(s); });
    if (!cert) {
      failure = cert.error();
      break;
    }
    if (t_->is_banned(cert->node_id(), std::chrono::steady_clock::now())) {
      failure =
          HandshakeError{HandshakeFailure::banned, "node '" + cert->node_id() + "' is banned"};
      break;
    }
    cert_ = *cert;
    peer_features_ = hs.peer_features();
    if (redirect_only_ && (peer_features_ & feature_peer_exchange) == 0) {
      // A node that cannot read a redirect gets what it always got at max_peers.
      close("max peers (" + std::to_string(t_->limits().max_peers) + ") reached");
      co_return false;
    }
    auto auth = hs.auth();
    if (!auth) {
      failure = auth.error();
      break;
    }
    tell_peer = false;
    if (redirect_only_) {
      // Full: our HelloAuth is never sent. The dialer's proves it holds a fleet key, and only
      // then does it learn other peers' addresses, in place of our HelloAuth.
      auto dialer_auth = co_await read_plain_frame();
      if (!dialer_auth) {
        failure = dialer_auth.error();
        break;
      }
      auto verified = hs.on_peer_auth(proto::as_bytes(*dialer_auth));
      if (!verified) {
        failure = verified.error();
        break;
      }
      const std::string redirect =
          encode_peer_exchange(t_->peer_exchange_for(*this, /*redirect=*/true)).SerializeAsString();
      t_->stats().redirects_sent++;
      co_await write_plain_frame(redirect);
      close("max peers (" + std::to_string(t_->limits().max_peers) + ") reached: node '" +
            cert_.node_id() + "' redirected to other peers");
      co_return false;
    }
    if (!co_await write_plain_frame(*auth)) {
      failure = HandshakeError{timed_out_ ? HandshakeFailure::timeout : HandshakeFailure::io_error,
                               "cannot send HelloAuth to node '" + cert_.node_id() + "'"};
      break;
    }
    auto peer_auth = co_await read_plain_frame();
    if (!peer_auth) {
      failure = peer_auth.error();
      break;
    }
    if (outbound() && !peer_auth->empty() &&
        static_cast<std::uint8_t>((*peer_auth)[0]) == tag_peer_exchange) {
      // The responder is full and names other peers instead (unauthenticated hints: each is
      // only dialed, and must pass this handshake itself).
      v1::Frame frame;
      if (frame.ParseFromString(*peer_auth) && frame.has_peer_exchange()) {
        auto pex = decode_peer_exchange(frame.peer_exchange());
        if (pex && pex->redirect) {
          const std::size_t n = pex->peers.size();
          t_->on_redirected(*this, *pex);
          failure = HandshakeError{HandshakeFailure::redirected,
                                   "node '" + cert_.node_id() + "' is full: redirected to " +
                                       std::to_string(n) + " other peers"};
          break;
        }
      }
    }
    // A bad HelloAuth: the peer may already consider the session up, so a plaintext
    // Goodbye would only look like a decrypt failure to it; just close.
    auto session = hs.on_peer_auth(proto::as_bytes(*peer_auth));
    if (!session) {
      failure = session.error();
      break;
    }
    if (state_ != State::handshaking) co_return false;  // closed meanwhile (stop())
    session_.emplace(std::move(*session));
  } while (false);
  if (failure) {
    co_await refuse(*failure, tell_peer);
    co_return false;
  }
  deadline_.cancel();
  state_ = State::up;
  up_since_ = std::chrono::steady_clock::now();
  last_rx_ = up_since_;
  connected_since_ms_ = wall_now_ms();
  co_return t_->on_established(self) && state_ == State::up;
}

asio::awaitable<HandshakeResult<std::string>> Connection::read_plain_frame() {
  auto io_failure = [this](const error_code& ec) {
    if (timed_out_) {
      return HandshakeError{HandshakeFailure::timeout,
                            "handshake not finished within " +
                                std::to_string(t_->limits().handshake_timeout.count()) + " ms"};
    }
    return HandshakeError{HandshakeFailure::io_error,
                          ec == asio::error::eof
                              ? "peer closed the connection during the handshake"
                              : "read failed during the handshake: " + ec.message()};
  };
  std::array<std::uint8_t, 4> header{};
  error_code ec;
  co_await asio::async_read(socket_, asio::buffer(header), redirect_error(use_awaitable, ec));
  if (ec) co_return std::unexpected(io_failure(ec));
  const std::size_t len = (std::size_t{header[0]} << 24) | (std::size_t{header[1]} << 16) |
                          (std::size_t{header[2]} << 8) | std::size_t{header[3]};
  if (len > max_handshake_frame) {
    t_->stats().oversize_frames++;
    co_return std::unexpected(HandshakeError{
        HandshakeFailure::malformed, "handshake frame length " + std::to_string(len) +
                                         " exceeds the " + std::to_string(max_handshake_frame) +
                                         "-byte limit (garbage or not a meshd peer)"});
  }
  std::string payload(len, '\0');
  co_await asio::async_read(socket_, asio::buffer(payload), redirect_error(use_awaitable, ec));
  if (ec) co_return std::unexpected(io_failure(ec));
  bytes_in_ += header.size() + len;
  t_->stats().bytes_in += header.size() + len;
  co_return payload;
}

asio::awaitable<bool> Connection::write_plain_frame(const std::string& payload) {
  std::array<std::uint8_t, 4> header{};
  put_be32(header.data(), payload.size());
  std::array<asio::const_buffer, 2> buffers{asio::buffer(header), asio::buffer(payload)};
  error_code ec;
  co_await asio::async_write(socket_, buffers, redirect_error(use_awaitable, ec));
  if (ec) co_return false;
  bytes_out_ += header.size() + payload.size();
  t_->stats().bytes_out += header.size() + payload.size();
  co_return true;
}

asio::awaitable<void> Connection::refuse(const HandshakeError& error, bool tell_peer) {
  auto self = shared_from_this();
  if (tell_peer && socket_.is_open() && !timed_out_) {
    // Best effort, still under the handshake deadline: the peer's operator sees why.
    v1::Frame bye;
    bye.mutable_goodbye()->set_reason("refused: " + std::string(to_string(error.reason)));
    const std::string payload = bye.SerializeAsString();
    co_await write_plain_frame(payload);
  }
  close(error.message, error.reason);
}

asio::awaitable<void> Connection::read_loop(std::shared_ptr<Connection> self) {
  proto::FrameDecoder decoder(self->t_->limits().max_frame_size);
  std::vector<std::uint8_t> chunk(read_chunk);
  std::vector<std::uint8_t> plain;
  TransportStats& stats = self->t_->stats();
  std::size_t turn = 0;  // frames handed over since this connection last yielded
  while (self->state_ == State::up || self->state_ == State::closing) {
    error_code ec;
    const std::size_t n = co_await self->socket_.async_read_some(asio::buffer(chunk),
                                                                 redirect_error(use_awaitable, ec));
    if (ec) {
      self->close(ec == asio::error::eof ? "peer closed the connection"
                                         : "read failed: " + ec.message());
      co_return;
    }
    self->last_rx_ = std::chrono::steady_clock::now();
    const auto now = mono_now();
    self->bytes_in_ += n;
    stats.bytes_in += n;
    decoder.feed({chunk.data(), n});
    while (self->state_ != State::closed) {
      auto next = decoder.next();
      if (!next) {
        stats.oversize_frames++;
        self->close(next.error().message);
        co_return;
      }
      if (!*next) break;
      const std::vector<std::uint8_t>& cipher = **next;
      const bool allowed = self->limiter_.allow(cipher.size(), now);
      // Decrypt even a frame over budget: the stream position must advance.
      if (auto ok = self->session_->rx.unseal(cipher, plain); !ok) {
        stats.decrypt_failures++;
        self->close(ok.error().message);
        co_return;
      }
      if (!allowed) {
        self->rate_drops_++;
        stats.rate_limit_drops++;
        // Told to the daemon, which scores the peer for it (a peer that keeps exceeding its
        // budget is disconnected and banned, not just slowed down).
        if (self->state_ == State::up) self->t_->deliver_rate_drop(self->id_);
      } else {
        self->frames_in_++;
        stats.frames_in++;
        self->handle_frame(plain);
      }
      if (++turn >= frames_per_turn) {
        turn = 0;
        co_await asio::post(self->socket_.get_executor(), use_awaitable);
      }
    }
  }
}

void Connection::handle_frame(std::span<const std::uint8_t> plain) {
  if (state_ != State::up) return;  // closing: the daemon was told the peer is down
  const std::uint8_t first = plain.empty() ? 0 : plain[0];
  if (first == tag_ping || first == tag_pong || first == tag_goodbye || first == tag_hello ||
      first == tag_hello_auth || first == tag_peer_exchange || first == tag_trim) {
    v1::Frame frame;
    if (frame.ParseFromArray(plain.data(), static_cast<int>(plain.size()))) {
      switch (frame.payload_case()) {
        case v1::Frame::kPing: {
          v1::Frame pong;
          pong.mutable_pong()->set_nonce(frame.ping().nonce());
          send_control(pong);
          return;
        }
        case v1::Frame::kPong:
          return;
        case v1::Frame::kGoodbye:
          close("peer said goodbye: " + frame.goodbye().reason());
          return;
        case v1::Frame::kPeerExchange:
          t_->on_peer_exchange(*this, frame.peer_exchange());
          return;
        case v1::Frame::kTrim:
          t_->on_trim(*this, frame.trim());
          return;
        case v1::Frame::kHello:
        case v1::Frame::kHelloAuth:
          t_->stats().protocol_errors++;
          close("protocol error: handshake message after the handshake");
          return;
        default:
          break;
      }
    }
  }
  // Everything else (including undecodable bytes, which the daemon counts against the
  // peer) goes to the daemon.
  t_->deliver_frame(id_, plain);
}

void Connection::enqueue_sealed(std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> buf;
  buf.reserve(4 + payload.size() + stream_overhead);
  buf.resize(4);
  session_->tx.seal(payload, buf);
  put_be32(buf.data(), buf.size() - 4);
  queued_bytes_ += buf.size();
  queue_.push_back(std::move(buf));
  frames_out_++;
  t_->stats().frames_out++;
  write_signal_.cancel();  // wakes the writer if it is waiting
}

Result<void> Connection::send(std::span<const std::uint8_t> payload) {
  if (state_ != State::up) {
    return fail("unknown_peer", "peer " + std::to_string(id_) + " is not connected");
  }
  const std::size_t limit = t_->limits().max_frame_size;
  if (payload.size() + stream_overhead > limit) {
    return fail("frame_too_large", "frame payload of " + std::to_string(payload.size()) +
                                       " bytes exceeds the " + std::to_string(limit) +
                                       "-byte frame limit (including " +
                                       std::to_string(stream_overhead) + " bytes of MAC)");
  }
  enqueue_sealed(payload);
  const std::size_t max_queue = t_->limits().max_send_queue_bytes;
  if (queued_bytes_ > max_queue) {
    t_->stats().send_queue_overflows++;
    const std::string reason = "send queue overflow: " + std::to_string(queued_bytes_) +
                               " bytes queued, limit " + std::to_string(max_queue);
    close(reason);
    return fail("send_queue_overflow", "peer " + std::to_string(id_) + " dropped: " + reason);
  }
  return {};
}

void Connection::send_control(const v1::Frame& frame) {
  if (state_ != State::up && state_ != State::closing) return;
  const std::string bytes = frame.SerializeAsString();
  enqueue_sealed(proto::as_bytes(bytes));
}

asio::awaitable<void> Connection::write_loop(std::shared_ptr<Connection> self) {
  // Frames are copied into one contiguous buffer per batch. A gather write of many small
  // frames is split by Asio into sendmsg calls of at most 64 buffers, each completing on a
  // separate turn of the io loop; under load (a reader turning 64 KiB of input into frames
  // for every peer) the writers then fell behind until their queues overflowed.
  std::vector<std::uint8_t> out;
  TransportStats& stats = self->t_->stats();
  while (self->state_ != State::closed) {
    if (self->queue_.empty()) {
      if (self->state_ == State::closing) {
        // Goodbye is out. Half-close and let the reader drain until the peer closes: a
        // close() with unread input would send a reset that can destroy the Goodbye in
        // flight. The deadline set by close_gracefully() bounds the wait.
        error_code ignored;
        self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
      self->write_signal_.expires_at(SteadyTime::max());
      error_code ec;
      co_await self->write_signal_.async_wait(redirect_error(use_awaitable, ec));
      continue;
    }
    out.clear();
    std::size_t frames = 0;
    while (!self->queue_.empty() && frames < max_write_batch_frames &&
           out.size() < max_write_batch_bytes) {
      const auto& f = self->queue_.front();
      out.insert(out.end(), f.begin(), f.end());
      self->queue_.pop_front();
      ++frames;
    }
    const std::size_t batch = out.size();
    self->queued_bytes_ -= batch;
    error_code ec;
    co_await asio::async_write(self->socket_, asio::buffer(out), redirect_error(use_awaitable, ec));
    if (ec) {
      self->close("write failed: " + ec.message());
      co_return;
    }
    self->bytes_out_ += batch;
    stats.bytes_out += batch;
    // A burst grew the batch buffer towards max_write_batch_bytes: give it back once the
    // queue is drained rather than keep it for the life of the connection.
    if (self->queue_.empty() && out.capacity() > keep_write_buffer_bytes)
      std::vector<std::uint8_t>().swap(out);
  }
}

asio::awaitable<void> Connection::idle_loop(std::shared_ptr<Connection> self) {
  const auto idle = self->t_->limits().idle_timeout;
  const auto interval =
      std::max<std::chrono::steady_clock::duration>(idle / 3, std::chrono::milliseconds(10));
  TransportStats& stats = self->t_->stats();
  while (self->state_ == State::up) {
    self->idle_timer_.expires_after(interval);
    error_code ec;
    co_await self->idle_timer_.async_wait(redirect_error(use_awaitable, ec));
    if (self->state_ != State::up) co_return;
    const auto silence = std::chrono::steady_clock::now() - self->last_rx_;
    if (silence >= idle) {
      stats.idle_timeouts++;
      self->close("idle timeout: nothing received for " + std::to_string(ms(silence)) + " ms");
      co_return;
    }
    if (self->cert_.not_after_ms() < wall_now_ms()) {
      stats.certs_expired_while_connected++;
      self->close_gracefully("cert of node '" + self->cert_.node_id() + "' expired");
      co_return;
    }
    if (silence >= interval) {
      v1::Frame ping;
      ping.mutable_ping()->set_nonce(++self->ping_nonce_);
      self->send_control(ping);
      stats.pings_sent++;
    }
  }
}

void Connection::close_gracefully(const std::string& reason) {
  if (state_ != State::up) {
    close(reason);
    return;
  }
  state_ = State::closing;
  close_reason_ = reason;
  v1::Frame bye;
  bye.mutable_goodbye()->set_reason(reason);
  send_control(bye);
  deadline_.expires_after(t_->limits().handshake_timeout);
  deadline_.async_wait([weak = weak_from_this()](error_code ec) {
    if (ec) return;
    if (auto c = weak.lock()) c->close(c->close_reason_);
  });
  idle_timer_.cancel();
  retire(std::nullopt, reason);
}

void Connection::close(const std::string& reason, std::optional<HandshakeFailure> failure) {
  if (state_ == State::closed) return;
  state_ = State::closed;
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  deadline_.cancel();
  idle_timer_.cancel();
  write_signal_.cancel();
  queue_.clear();
  queued_bytes_ = 0;
  retire(failure, reason);
}

void Connection::retire(std::optional<HandshakeFailure> failure, const std::string& reason) {
  if (retired_) return;
  retired_ = true;
  // Both may otherwise lose their last owner inside on_retired.
  auto keep = shared_from_this();
  auto transport = t_;
  transport->on_retired(*this, failure, reason);
}

}  // namespace meshd::net

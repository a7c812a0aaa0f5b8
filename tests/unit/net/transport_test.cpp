// Transports talking real TCP over 127.0.0.1 on one io_context (no root).
#include <gtest/gtest.h>

#include "meshd/common/asio.hpp"

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include "meshd/net/transport.hpp"
#include "tests/unit/net/net_test_support.hpp"

namespace meshd::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using testing::CertSpec;
using testing::make_node;
using testing::run_for;
using testing::run_until;
using testing::TestCa;

std::vector<std::uint8_t> ping_like_payload(std::uint32_t i, std::size_t size) {
  // Starts with the Envelope tag (field 1) so the transport passes it through; content is
  // a counter pattern the receiver checks.
  std::vector<std::uint8_t> p(size);
  for (std::size_t k = 0; k < size; ++k) p[k] = static_cast<std::uint8_t>((i * 31 + k) & 0xff);
  if (!p.empty()) p[0] = 0x0a;
  return p;
}

// A Transport plus everything its callbacks reported.
struct Node {
  std::unique_ptr<Transport> t;
  tcp::endpoint ep;
  std::map<PeerId, std::string> up;  // peer id -> node id (currently up)
  std::vector<std::string> ups;      // every peer_up node id, in order
  std::vector<std::pair<PeerId, std::string>> downs;
  std::vector<std::pair<PeerId, std::vector<std::uint8_t>>> frames;
  std::map<PeerId, std::uint64_t> rate_drops;  // on_rate_drop calls per peer
  std::function<void(PeerId)> on_frame_hook;   // runs after each frame is recorded

  Node(asio::io_context& io, LocalIdentity id, TransportLimits limits = {}) {
    TransportCallbacks cb;
    cb.on_peer_up = [this](PeerId p, const v1::NodeCert& c) {
      up[p] = c.node_id();
      ups.push_back(c.node_id());
    };
    cb.on_frame = [this](PeerId p, std::span<const std::uint8_t> f) {
      frames.emplace_back(p, std::vector<std::uint8_t>(f.begin(), f.end()));
      if (on_frame_hook) on_frame_hook(p);
    };
    cb.on_peer_down = [this](PeerId p, std::string_view reason) {
      up.erase(p);
      downs.emplace_back(p, std::string(reason));
    };
    cb.on_rate_drop = [this](PeerId p) { ++rate_drops[p]; };
    t = std::make_unique<Transport>(io, std::move(id), limits, std::move(cb));
  }
  void listen() {
    auto r = t->listen(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    ASSERT_TRUE(r) << r.error().message;
    ep = *r;
  }
  std::string seed() const { return "127.0.0.1:" + std::to_string(ep.port()); }
  PeerId peer_id(const std::string& node) const {
    for (auto& [id, n] : up)
      if (n == node) return id;
    return 0;
  }
  std::uint64_t failed(HandshakeFailure f) const {
    return t->stats().handshakes_failed[static_cast<std::size_t>(f)];
  }
};

TransportLimits fast_limits() {
  TransportLimits l;
  l.handshake_timeout = 1000ms;
  l.idle_timeout = 5000ms;
  return l;
}

// A hand-driven peer on a plain socket: sends raw bytes, or runs the real handshake and then
// misbehaves after it.
struct RawPeer {
  tcp::socket socket;
  explicit RawPeer(asio::io_context& io) : socket(io) {}

  asio::awaitable<bool> connect(tcp::endpoint ep) {
    boost::system::error_code ec;
    co_await socket.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) socket.set_option(tcp::no_delay(true), ec);
    co_return !ec;
  }
  asio::awaitable<bool> write(const std::vector<std::uint8_t>& bytes) {
    boost::system::error_code ec;
    co_await asio::async_write(socket, asio::buffer(bytes),
                               asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }
  asio::awaitable<bool> write_frame(std::string_view payload) {
    std::vector<std::uint8_t> b(4 + payload.size());
    const auto n = payload.size();
    b[0] = n >> 24;
    b[1] = (n >> 16) & 0xff;
    b[2] = (n >> 8) & 0xff;
    b[3] = n & 0xff;
    std::copy(payload.begin(), payload.end(), b.begin() + 4);
    co_return co_await write(b);
  }
  // One frame payload, or nullopt when the other side closed.
  asio::awaitable<std::optional<std::string>> read_frame() {
    std::array<std::uint8_t, 4> h{};
    boost::system::error_code ec;
    co_await asio::async_read(socket, asio::buffer(h),
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return std::nullopt;
    std::string p((std::size_t{h[0]} << 24) | (h[1] << 16) | (h[2] << 8) | h[3], '\0');
    co_await asio::async_read(socket, asio::buffer(p),
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return std::nullopt;
    co_return p;
  }
  // Reads until the other side closes; returns how many frames arrived before that.
  asio::awaitable<int> drain_until_closed() {
    int n = 0;
    while (co_await read_frame()) ++n;
    co_return n;
  }
  // The real initiator handshake with `id`; the session on success.
  asio::awaitable<std::optional<Session>> handshake(const LocalIdentity& id) {
    Handshake hs(HandshakeRole::initiator, id);
    if (!co_await write_frame(hs.hello())) co_return std::nullopt;
    auto hello = co_await read_frame();
    if (!hello) co_return std::nullopt;
    if (!hs.on_peer_hello(proto::as_bytes(*hello), wall_now_ms(), {})) co_return std::nullopt;
    auto auth = hs.auth();
    if (!auth || !co_await write_frame(*auth)) co_return std::nullopt;
    auto peer_auth = co_await read_frame();
    if (!peer_auth) co_return std::nullopt;
    auto s = hs.on_peer_auth(proto::as_bytes(*peer_auth));
    if (!s) co_return std::nullopt;
    co_return std::move(*s);
  }
};

// Spawns `script` and returns a flag set when it finishes.
std::shared_ptr<bool> spawn(asio::io_context& io, std::function<asio::awaitable<void>()> script) {
  auto done = std::make_shared<bool>(false);
  asio::co_spawn(
      io,
      [script = std::move(script), done]() -> asio::awaitable<void> {
        co_await script();
        *done = true;
      },
      asio::detached);
  return done;
}

TEST(Transport, HandshakeThenManyAndLargeFramesFlowBothWays) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.max_frame_size = 256 * 1024;
  Node a(io, make_node(ca, "node-a", CertSpec{.domain = "zone-a", .serial = 11}), limits);
  Node b(io, make_node(ca, "node-b", CertSpec{.domain = "zone-b", .serial = 12}), limits);
  a.listen();
  ASSERT_TRUE(b.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return a.up.size() == 1 && b.up.size() == 1; }));
  EXPECT_EQ(a.up.begin()->second, "node-b");
  EXPECT_EQ(b.up.begin()->second, "node-a");

  const PeerId a_to_b = a.peer_id("node-b");
  const PeerId b_to_a = b.peer_id("node-a");
  constexpr int n = 2000;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(a.t->send(a_to_b, ping_like_payload(i, 100 + i % 300)));
    ASSERT_TRUE(b.t->send(b_to_a, ping_like_payload(i + 7, 50 + i % 200)));
  }
  // Largest payload that fits, a few times each way.
  const std::size_t biggest = limits.max_frame_size - stream_overhead;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(a.t->send(a_to_b, ping_like_payload(n + i, biggest)));
    ASSERT_TRUE(b.t->send(b_to_a, ping_like_payload(n + i + 7, biggest)));
  }
  ASSERT_TRUE(run_until(io, [&] { return a.frames.size() == n + 3 && b.frames.size() == n + 3; }))
      << a.frames.size() << " " << b.frames.size();
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(b.frames[i].second, ping_like_payload(i, 100 + i % 300)) << i;
    ASSERT_EQ(a.frames[i].second, ping_like_payload(i + 7, 50 + i % 200)) << i;
  }
  EXPECT_EQ(b.frames[n + 2].second.size(), biggest);
  EXPECT_EQ(a.frames[n].second, ping_like_payload(n + 7, biggest));

  // One byte more does not fit.
  auto too_big = a.t->send(a_to_b, ping_like_payload(0, biggest + 1));
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().code, "frame_too_large");

  auto peers = a.t->peers();
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].node_id, "node-b");
  EXPECT_EQ(peers[0].failure_domain, "zone-b");
  EXPECT_EQ(peers[0].cert_serial, 12u);
  EXPECT_FALSE(peers[0].outbound);
  // Everything b sent, plus its PeerExchange right after the handshake.
  EXPECT_EQ(peers[0].frames_in, static_cast<std::uint64_t>(n + 3 + 1));
  EXPECT_GE(peers[0].frames_out, static_cast<std::uint64_t>(n + 3));
  EXPECT_GT(peers[0].bytes_in, 3 * biggest);
  EXPECT_GT(peers[0].connected_since_ms, 0);
  EXPECT_TRUE(b.t->peers()[0].outbound);
  EXPECT_EQ(a.t->stats().handshakes_ok, 1u);
  EXPECT_EQ(a.t->stats().handshakes_failed_total(), 0u);

  // Unknown peer ids are an error, not a crash.
  auto unknown = a.t->send(999, ping_like_payload(0, 10));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, "unknown_peer");
}

TEST(Transport, RefusesCertFromAnotherCa) {
  asio::io_context io;
  TestCa ca, other;
  Node a(io, make_node(ca, "node-a"), fast_limits());
  Node m(io, make_node(other, other, "mallory"), fast_limits());
  a.listen();
  ASSERT_TRUE(m.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return a.failed(HandshakeFailure::cert_bad_signature) >= 1; }));
  run_for(io, 100ms);
  EXPECT_TRUE(a.ups.empty());
  EXPECT_TRUE(m.ups.empty());
  EXPECT_EQ(a.t->stats().handshakes_ok, 0u);
}

TEST(Transport, RefusesExpiredCert) {
  asio::io_context io;
  TestCa ca;
  Node a(io, make_node(ca, "node-a"), fast_limits());
  Node old(io,
           make_node(
               ca, "old",
               CertSpec{.not_before = wall_now_ms() - 20'000, .not_after = wall_now_ms() - 10'000}),
           fast_limits());
  a.listen();
  ASSERT_TRUE(old.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return a.failed(HandshakeFailure::cert_expired) >= 1; }));
  // The refused side learns why from the Goodbye.
  ASSERT_TRUE(run_until(io, [&] { return old.failed(HandshakeFailure::peer_refused) >= 1; }));
  EXPECT_TRUE(a.ups.empty());
  EXPECT_TRUE(old.ups.empty());
}

TEST(Transport, RefusesRevokedSerialAndDropsPeerRevokedWhileConnected) {
  asio::io_context io;
  TestCa ca;
  Node a(io, make_node(ca, "node-a", CertSpec{.serial = 1}), fast_limits());
  Node b(io, make_node(ca, "node-b", CertSpec{.serial = 2}), fast_limits());
  Node c(io, make_node(ca, "node-c", CertSpec{.serial = 3}), fast_limits());
  a.listen();
  a.t->set_revoked_serials({3});
  ASSERT_TRUE(b.t->add_seed(a.seed()));
  ASSERT_TRUE(c.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(
      io, [&] { return a.up.size() == 1 && a.failed(HandshakeFailure::cert_revoked) >= 1; }));
  EXPECT_EQ(a.up.begin()->second, "node-b");
  EXPECT_TRUE(c.ups.empty());

  a.t->set_revoked_serials({2, 3});
  ASSERT_TRUE(run_until(io, [&] { return a.up.empty() && b.up.empty(); }));
  EXPECT_EQ(a.t->stats().revoked_while_connected, 1u);
  ASSERT_FALSE(b.downs.empty());
  EXPECT_NE(b.downs[0].second.find("revoked"), std::string::npos) << b.downs[0].second;
}

TEST(Transport, GarbageBytesAreDroppedAndServerKeepsServing) {
  asio::io_context io;
  TestCa ca;
  Node a(io, make_node(ca, "node-a"), fast_limits());
  a.listen();
  RawPeer raw(io);
  int frames_before_close = -1;
  auto done = spawn(io, [&]() -> asio::awaitable<void> {
    if (!co_await raw.connect(a.ep)) co_return;
    std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    std::vector<std::uint8_t> bytes(junk.begin(), junk.end());
    co_await raw.write(bytes);
    frames_before_close = co_await raw.drain_until_closed();
  });
  ASSERT_TRUE(run_until(io, [&] { return *done; }));
  // Our Hello may or may not arrive: closing with unread garbage sends a TCP reset.
  EXPECT_LE(frames_before_close, 1);
  EXPECT_EQ(a.failed(HandshakeFailure::malformed), 1u);

  // A short garbage frame that fits the size limit but is not a Hello.
  RawPeer raw2(io);
  auto done2 = spawn(io, [&]() -> asio::awaitable<void> {
    if (!co_await raw2.connect(a.ep)) co_return;
    co_await raw2.write_frame("\x01\x02\x03\xff\xfe garbage");
    co_await raw2.drain_until_closed();
  });
  ASSERT_TRUE(run_until(io, [&] { return *done2; }));
  EXPECT_EQ(a.failed(HandshakeFailure::malformed), 2u);

  Node b(io, make_node(ca, "node-b"), fast_limits());
  ASSERT_TRUE(b.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return a.up.size() == 1 && b.up.size() == 1; }));
}

TEST(Transport, OversizedLengthPrefixIsDroppedBeforeAndAfterAuth) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.max_frame_size = 64 * 1024;
  Node a(io, make_node(ca, "node-a"), limits);
  a.listen();

  // Before authentication: 4 GiB announced.
  RawPeer raw(io);
  auto done = spawn(io, [&]() -> asio::awaitable<void> {
    if (!co_await raw.connect(a.ep)) co_return;
    std::vector<std::uint8_t> prefix{0xff, 0xff, 0xff, 0xff, 0x00};
    co_await raw.write(prefix);
    co_await raw.drain_until_closed();
  });
  ASSERT_TRUE(run_until(io, [&] { return *done; }));
  EXPECT_EQ(a.t->stats().oversize_frames, 1u);

  // After a real handshake: one byte above the frame limit.
  auto peer_id = make_node(ca, "node-p");
  RawPeer p(io);
  bool handshake_ok = false;
  auto done2 = spawn(io, [&]() -> asio::awaitable<void> {
    if (!co_await p.connect(a.ep)) co_return;
    auto s = co_await p.handshake(peer_id);
    handshake_ok = s.has_value();
    const std::size_t n = limits.max_frame_size + 1;
    std::vector<std::uint8_t> prefix{
        static_cast<std::uint8_t>(n >> 24), static_cast<std::uint8_t>(n >> 16),
        static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)};
    co_await p.write(prefix);
    co_await p.drain_until_closed();
  });
  ASSERT_TRUE(run_until(io, [&] { return *done2; }));
  EXPECT_TRUE(handshake_ok);
  EXPECT_EQ(a.t->stats().oversize_frames, 2u);
  ASSERT_TRUE(run_until(io, [&] { return a.downs.size() == 1; }));
  EXPECT_NE(a.downs[0].second.find("65537"), std::string::npos) << a.downs[0].second;
}

TEST(Transport, ForgedCiphertextIsADecryptFailure) {
  asio::io_context io;
  TestCa ca;
  Node a(io, make_node(ca, "node-a"), fast_limits());
  a.listen();
  auto peer_id = make_node(ca, "node-p");
  RawPeer p(io);
  auto done = spawn(io, [&]() -> asio::awaitable<void> {
    if (!co_await p.connect(a.ep)) co_return;
    auto s = co_await p.handshake(peer_id);
    if (!s) co_return;
    // One good frame, then a frame sealed under the right stream but tampered.
    std::vector<std::uint8_t> good, bad;
    s->tx.seal(ping_like_payload(1, 40), good);
    s->tx.seal(ping_like_payload(2, 40), bad);
    bad[10] ^= 0x40;
    const std::string good_frame(good.begin(), good.end());
    const std::string bad_frame(bad.begin(), bad.end());
    co_await p.write_frame(good_frame);
    co_await p.write_frame(bad_frame);
    co_await p.drain_until_closed();
  });
  ASSERT_TRUE(run_until(io, [&] { return *done; }));
  EXPECT_EQ(a.t->stats().decrypt_failures, 1u);
  ASSERT_EQ(a.frames.size(), 1u);  // the good one only
  EXPECT_EQ(a.frames[0].second, ping_like_payload(1, 40));
  ASSERT_TRUE(run_until(io, [&] { return a.downs.size() == 1; }));
}

TEST(Transport, HalfOpenConnectionIsDroppedAfterHandshakeTimeout) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.handshake_timeout = 300ms;
  Node a(io, make_node(ca, "node-a"), limits);
  a.listen();
  RawPeer raw(io);
  auto started = std::chrono::steady_clock::now();
  auto done = spawn(io, [&]() -> asio::awaitable<void> {
    if (!co_await raw.connect(a.ep)) co_return;
    co_await raw.drain_until_closed();  // sends nothing at all
  });
  ASSERT_TRUE(run_until(
      io, [&] { return *done; }, 3000ms));
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, 250ms);
  EXPECT_EQ(a.failed(HandshakeFailure::timeout), 1u);
}

TEST(Transport, SilentPeerIsDroppedAfterIdleTimeoutWhileLivePeersStay) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.idle_timeout = 300ms;
  Node a(io, make_node(ca, "node-a"), limits);
  Node b(io, make_node(ca, "node-b"), limits);
  a.listen();
  ASSERT_TRUE(b.t->add_seed(a.seed()));

  // A peer that completes the handshake, then never answers (a half-open connection).
  auto peer_id = make_node(ca, "node-p");
  RawPeer p(io);
  int pings_seen = -1;
  auto done = spawn(io, [&]() -> asio::awaitable<void> {
    if (!co_await p.connect(a.ep)) co_return;
    if (!co_await p.handshake(peer_id)) co_return;
    pings_seen = co_await p.drain_until_closed();
  });
  ASSERT_TRUE(run_until(
      io, [&] { return *done; }, 3000ms));
  EXPECT_GE(pings_seen, 1);
  EXPECT_EQ(a.t->stats().idle_timeouts, 1u);
  EXPECT_GE(a.t->stats().pings_sent, 1u);

  // node-b answers pings, so it stays up for many idle periods.
  run_for(io, 1200ms);
  EXPECT_EQ(a.up.size(), 1u);
  EXPECT_EQ(a.up.begin()->second, "node-b");
  EXPECT_EQ(b.downs.size(), 0u);
}

TEST(Transport, ReconnectsAfterPeerRestart) {
  asio::io_context io;
  TestCa ca;
  auto a = std::make_unique<Node>(io, make_node(ca, "node-a"), fast_limits());
  Node b(io, make_node(ca, "node-b"), fast_limits());
  a->listen();
  const auto port = a->ep.port();
  ASSERT_TRUE(b.t->add_seed(a->seed()));
  ASSERT_TRUE(run_until(io, [&] { return b.up.size() == 1; }));

  a.reset();  // node-a goes away
  ASSERT_TRUE(run_until(io, [&] { return b.up.empty(); }));
  run_for(io, 300ms);  // b retries against a closed port meanwhile

  // node-a comes back on the same port with a fresh transport.
  a = std::make_unique<Node>(io, make_node(ca, "node-a"), fast_limits());
  auto r = a->t->listen(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(run_until(
      io, [&] { return b.up.size() == 1 && a->up.size() == 1; }, 5000ms));
  EXPECT_EQ(b.ups.size(), 2u);
  EXPECT_GE(b.t->stats().connect_failures, 1u);
}

TEST(Transport, DnsSeedResolvesLocalhost) {
  asio::io_context io;
  TestCa ca;
  Node a(io, make_node(ca, "node-a"), fast_limits());
  Node b(io, make_node(ca, "node-b"), fast_limits());
  a.listen();
  ASSERT_TRUE(b.t->add_seed("dns:localhost:" + std::to_string(a.ep.port())));
  ASSERT_TRUE(run_until(io, [&] { return a.up.size() == 1 && b.up.size() == 1; }));
  EXPECT_EQ(b.up.begin()->second, "node-a");
  EXPECT_FALSE(b.t->add_seed("dns:localhost"));
}

TEST(Transport, RefusesItselfAndDoesNotRedial) {
  asio::io_context io;
  TestCa ca;
  Node a(io, make_node(ca, "node-a"), fast_limits());
  a.listen();
  ASSERT_TRUE(a.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return a.failed(HandshakeFailure::self_connection) >= 1; }));
  run_for(io, 800ms);
  EXPECT_EQ(a.t->stats().connections_dialed, 1u);
  EXPECT_TRUE(a.ups.empty());
}

TEST(Transport, MutualDialsKeepExactlyOneConnection) {
  asio::io_context io;
  TestCa ca;
  Node a(io, make_node(ca, "node-a"), fast_limits());
  Node b(io, make_node(ca, "node-b"), fast_limits());
  a.listen();
  b.listen();
  ASSERT_TRUE(a.t->add_seed(b.seed()));
  ASSERT_TRUE(b.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return a.up.size() == 1 && b.up.size() == 1; }));
  run_for(io, 500ms);  // duplicates settle
  ASSERT_EQ(a.t->peers().size(), 1u);
  ASSERT_EQ(b.t->peers().size(), 1u);
  // The surviving connection was initiated by the smaller node id, node-a.
  EXPECT_TRUE(a.t->peers()[0].outbound);
  EXPECT_FALSE(b.t->peers()[0].outbound);
  // And it carries frames.
  ASSERT_TRUE(b.t->send(b.peer_id("node-a"), ping_like_payload(5, 64)));
  ASSERT_TRUE(run_until(io, [&] { return a.frames.size() == 1; }));
}

TEST(Transport, DisconnectWithBanRefusesTheNodeUntilItExpires) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.backoff = {50ms, 200ms};
  Node a(io, make_node(ca, "node-a"), limits);
  Node b(io, make_node(ca, "node-b"), limits);
  a.listen();
  ASSERT_TRUE(b.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return a.up.size() == 1 && b.up.size() == 1; }));
  a.t->disconnect(a.peer_id("node-b"), "score below threshold", 1500ms);
  EXPECT_TRUE(a.t->peers().empty());  // down at once for the daemon
  ASSERT_TRUE(run_until(io, [&] { return !b.downs.empty(); }));
  EXPECT_NE(b.downs[0].second.find("score below threshold"), std::string::npos)
      << b.downs[0].second;
  // b keeps retrying and is refused while banned.
  ASSERT_TRUE(run_until(io, [&] { return a.failed(HandshakeFailure::banned) >= 1; }));
  EXPECT_EQ(a.ups.size(), 1u);
  // After the ban, b gets back in.
  ASSERT_TRUE(run_until(
      io, [&] { return a.up.size() == 1; }, 4000ms));
  EXPECT_EQ(a.ups.size(), 2u);
}

// A fleet started at once: a node that comes up first sees every address refuse until
// that daemon listens. Below target_peers its retries stay at most below_target_cap apart
// (not the exponential 30 s cap), so it meshes as soon as the others listen.
TEST(Transport, RefusedAddressIsRetriedAtMostBelowTargetCapApartWhileBelowTarget) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.backoff = {.base = 50ms, .cap = 30000ms, .below_target_cap = 300ms};
  Node a(io, make_node(ca, "node-a"), limits);
  // A free port nobody listens on (yet).
  tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto port = probe.local_endpoint().port();
  probe.close();
  ASSERT_TRUE(a.t->add_seed("127.0.0.1:" + std::to_string(port)));
  run_for(io, 3000ms);
  const auto at_3s = a.t->stats().connect_failures;
  run_for(io, 2000ms);
  const auto in_window = a.t->stats().connect_failures - at_3s;
  // With the 30 s cap, 3 s of refusals (>= 5 failures) put the next retries >= 800 ms
  // apart: at most 3 in these 2 s. Capped at 300 ms (150..300 ms apart): 6 or more.
  EXPECT_GE(in_window, 5u) << "connect failures in [3 s, 5 s]: " << in_window;
  // The peer starts listening on that address: a connects within the cap.
  TransportLimits b_limits = fast_limits();
  Node b(io, make_node(ca, "node-b"), b_limits);
  auto bound = b.t->listen(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  ASSERT_TRUE(bound) << bound.error().message;
  EXPECT_TRUE(run_until(
      io, [&] { return a.up.size() == 1 && b.up.size() == 1; }, 1000ms));
}

TEST(Transport, HandshakeRefusalsKeepTheFullBackoffBelowTarget) {
  // A node whose cert comes from another CA refuses us at every attempt: that is not a cold
  // start, so the retries back off exponentially (no handshake every 300 ms forever).
  asio::io_context io;
  TestCa ca, other;
  auto limits = fast_limits();
  limits.backoff = {.base = 50ms, .cap = 30000ms, .below_target_cap = 300ms};
  Node a(io, make_node(ca, "node-a"), limits);
  Node f(io, make_node(other, "foreign"), fast_limits());
  f.listen();
  ASSERT_TRUE(a.t->add_seed(f.seed()));
  run_for(io, 3000ms);
  const auto at_3s = a.t->stats().connections_dialed;
  run_for(io, 2000ms);
  EXPECT_LE(a.t->stats().connections_dialed - at_3s, 3u);
  EXPECT_GE(a.t->stats().handshakes_failed_total(), 3u);
}

TEST(Transport, ReceiveRateLimitDropsFramesOverBudget) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.receive_rate = {.frames_per_s = 5, .frames_burst = 20, .bytes_per_s = 0, .bytes_burst = 0};
  Node a(io, make_node(ca, "node-a"), limits);
  Node b(io, make_node(ca, "node-b"), fast_limits());
  a.listen();
  ASSERT_TRUE(b.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return b.up.size() == 1 && a.up.size() == 1; }));
  for (int i = 0; i < 200; ++i)
    ASSERT_TRUE(b.t->send(b.peer_id("node-a"), ping_like_payload(i, 32)));
  ASSERT_TRUE(
      run_until(io, [&] { return a.t->stats().rate_limit_drops + a.frames.size() >= 200; }));
  // The burst of 20, less the token b's PeerExchange took right after the handshake.
  EXPECT_GE(a.frames.size(), 19u);
  EXPECT_LE(a.frames.size(), 30u);
  EXPECT_GE(a.t->stats().rate_limit_drops, 170u);
  EXPECT_EQ(a.t->peers()[0].rate_limit_drops, a.t->stats().rate_limit_drops);
  EXPECT_EQ(a.up.size(), 1u);  // drops, not a disconnect (the daemon decides on the score)
  // Every drop is reported, so the daemon can score the peer for it.
  EXPECT_EQ(a.rate_drops[a.peer_id("node-b")], a.t->stats().rate_limit_drops);
}

// One peer's backlog does not hold up another's frames: the reader hands a few frames over,
// then lets other ready connections run.
TEST(Transport, ABackloggedPeerDoesNotHoldUpAnotherPeersFrames) {
  asio::io_context io;
  TestCa ca;
  Node a(io, make_node(ca, "node-a"), fast_limits());
  Node flood(io, make_node(ca, "node-flood"), fast_limits());
  Node honest(io, make_node(ca, "node-honest"), fast_limits());
  a.listen();
  ASSERT_TRUE(flood.t->add_seed(a.seed()));
  ASSERT_TRUE(honest.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(
      io, [&] { return a.up.size() == 2 && flood.up.size() == 1 && honest.up.size() == 1; }));
  const PeerId from_honest = a.peer_id("node-honest");
  // The receiver spends 1 ms on every frame (as the daemon does on a frame that costs a
  // signature check, a store write and relays).
  a.on_frame_hook = [](PeerId) { std::this_thread::sleep_for(1ms); };
  // 2,000 flood frames (~430 KiB) reach a's socket first; a has started on them when the
  // honest peer sends its one frame.
  for (int i = 0; i < 2000; ++i)
    ASSERT_TRUE(flood.t->send(flood.peer_id("node-a"), ping_like_payload(i, 200)));
  run_for(io, 30ms);
  const std::size_t at_send = a.frames.size();
  ASSERT_LT(at_send, 1000u);
  ASSERT_TRUE(honest.t->send(honest.peer_id("node-a"), ping_like_payload(7, 200)));
  std::size_t flood_after_send = 0;  // flood frames handed over before the honest one
  auto honest_arrived = [&] {
    for (std::size_t k = at_send + flood_after_send; k < a.frames.size(); ++k) {
      if (a.frames[k].first == from_honest) return true;
      ++flood_after_send;
    }
    return false;
  };
  ASSERT_TRUE(run_until(io, honest_arrived));
  // Handed over in one go, one 64 KiB read (~300 of these frames) would have gone first;
  // taking turns, a few turns of a few frames.
  EXPECT_LT(flood_after_send, 100u) << "flood frames handed over after the honest one arrived";
}

TEST(Transport, SendQueueOverflowDropsThePeer) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.max_send_queue_bytes = 64 * 1024;
  Node a(io, make_node(ca, "node-a"), fast_limits());
  Node b(io, make_node(ca, "node-b"), limits);
  a.listen();
  ASSERT_TRUE(b.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return b.up.size() == 1 && a.up.size() == 1; }));
  const PeerId id = b.peer_id("node-a");
  Result<void> r;
  int sent = 0;
  // Without running the io_context nothing drains: the queue must overflow.
  while ((r = b.t->send(id, ping_like_payload(sent, 1000)))) ++sent;
  EXPECT_EQ(r.error().code, "send_queue_overflow");
  EXPECT_GE(sent, 60);
  EXPECT_EQ(b.t->stats().send_queue_overflows, 1u);
  EXPECT_TRUE(b.t->peers().empty());
  ASSERT_TRUE(run_until(io, [&] { return b.downs.size() == 1 && a.up.empty(); }));
}

TEST(Transport, MaxPeersRefusesExtraInbound) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.max_peers = 1;
  limits.peer_exchange = false;  // no redirects: the extra dialer is refused at once
  Node a(io, make_node(ca, "node-a"), limits);
  Node b(io, make_node(ca, "node-b"), fast_limits());
  Node c(io, make_node(ca, "node-c"), fast_limits());
  a.listen();
  ASSERT_TRUE(b.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return a.up.size() == 1; }));
  ASSERT_TRUE(c.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return a.t->stats().refused_max_peers >= 1; }));
  EXPECT_EQ(a.up.size(), 1u);
  EXPECT_TRUE(c.ups.empty());
}

// Accept-or-redirect: a full node (max_peers) verifies the dialer, then names its peers
// instead of refusing; the dialer reaches one of them next and counts the dial as redirected.
TEST(Transport, FullNodeRedirectsDialerToItsPeers) {
  asio::io_context io;
  TestCa ca;
  auto full = fast_limits();
  full.max_peers = 1;
  Node a(io, make_node(ca, "node-a"), full);
  Node b(io, make_node(ca, "node-b"), fast_limits());
  Node c(io, make_node(ca, "node-c"), fast_limits());
  a.listen();
  b.listen();
  ASSERT_TRUE(b.t->add_seed(a.seed()));
  // a learns b's listen port from b's PeerExchange (b dialed it, so only that tells it).
  ASSERT_TRUE(run_until(io, [&] { return a.up.size() == 1 && a.t->stats().pex_received == 1; }));
  ASSERT_TRUE(c.t->add_seed(a.seed()));  // c knows only the full node
  ASSERT_TRUE(run_until(io, [&] { return c.peer_id("node-b") != 0; }));
  EXPECT_EQ(a.t->stats().redirects_sent, c.t->stats().redirects_received);
  EXPECT_GE(a.t->stats().redirects_sent, 1u);
  EXPECT_EQ(a.t->stats().refused_max_peers, 0u);
  EXPECT_GE(c.t->stats().dial_outcomes[static_cast<std::size_t>(DialOutcome::redirected)], 1u);
  EXPECT_GE(c.failed(HandshakeFailure::redirected), 1u);
  EXPECT_EQ(c.peer_id("node-a"), 0u);  // never a session with the full node
  EXPECT_EQ(a.up.size(), 1u);
  EXPECT_TRUE(a.t->stats().pex_addresses_learned >= 1u);  // b's listen address
}

// Regression (100-node run with max_peers 10): two full nodes name each other in their
// redirects. The hint that the other one "is live" must not cancel the back-off the other one
// earned by redirecting us, or a dialer bounces between them as fast as handshakes complete
// (234,320 redirected dials in ~2 min across 100 daemons).
TEST(Transport, TwoFullNodesDoNotBounceADialerBetweenThem) {
  asio::io_context io;
  TestCa ca;
  auto full = fast_limits();
  full.max_peers = 1;
  Node a(io, make_node(ca, "node-a"), full);
  Node b(io, make_node(ca, "node-b"), full);
  Node d(io, make_node(ca, "node-d"), fast_limits());
  a.listen();
  b.listen();
  ASSERT_TRUE(b.t->add_seed(a.seed()));
  // Both full (one peer each), and a knows b's listen port from b's PeerExchange.
  ASSERT_TRUE(run_until(io, [&] { return a.up.size() == 1 && a.t->stats().pex_received == 1; }));
  ASSERT_TRUE(d.t->add_seed(a.seed()));
  ASSERT_TRUE(d.t->add_seed(b.seed()));
  ASSERT_TRUE(run_until(io, [&] { return d.t->stats().redirects_received >= 2; }));
  run_for(io, std::chrono::milliseconds(3000));
  // Each full node is retried after its back-off (>= ~1 s below target), not at once.
  EXPECT_LE(d.t->stats().redirects_received, 10u);
  EXPECT_EQ(d.up.size(), 0u);
}

// Peer exchange: a node seeded with one address learns the others from its first peer and
// connects to them (as a pod whose DNS answer lists only some of the fleet).
TEST(Transport, PeerExchangeTeachesAddressesBeyondTheSeeds) {
  asio::io_context io;
  TestCa ca;
  Node a(io, make_node(ca, "node-a"), fast_limits());
  Node b(io, make_node(ca, "node-b"), fast_limits());
  Node c(io, make_node(ca, "node-c"), fast_limits());
  a.listen();
  b.listen();
  c.listen();
  ASSERT_TRUE(b.t->add_seed(a.seed()));
  ASSERT_TRUE(run_until(io, [&] { return a.t->stats().pex_received == 1; }));
  ASSERT_TRUE(c.t->add_seed(a.seed()));  // a tells c where b listens
  ASSERT_TRUE(run_until(io, [&] {
    return b.peer_id("node-c") != 0 && c.peer_id("node-b") != 0 && a.up.size() == 2;
  }));
  EXPECT_GE(c.t->stats().pex_addresses_learned, 1u);
  EXPECT_EQ(b.t->stats().pex_rejected + c.t->stats().pex_rejected, 0u);
}

// Regression (issue [H], 1,000 half-open connections): one address cannot hold every slot
// with connections that never handshake; a node from another address still gets in, and the
// refusals are counted.
TEST(Transport, OneAddressHoldsAtMostFourHandshakingConnections) {
  asio::io_context io;
  TestCa ca;
  Node a(io, make_node(ca, "node-a"), fast_limits());
  a.listen();
  std::vector<std::unique_ptr<tcp::socket>> idle;
  for (int i = 0; i < 10; ++i) {
    auto s = std::make_unique<tcp::socket>(io);
    s->open(tcp::v4());
    s->bind(tcp::endpoint(asio::ip::make_address("127.0.0.2"), 0));
    s->async_connect(a.ep, [](const boost::system::error_code&) {});
    idle.push_back(std::move(s));
  }
  ASSERT_TRUE(run_until(io, [&] { return a.t->stats().refused_per_address >= 6; }));
  EXPECT_EQ(a.t->stats().refused_per_address, 6u);
  Node b(io, make_node(ca, "node-b"), fast_limits());
  ASSERT_TRUE(b.t->add_seed(a.seed()));  // from 127.0.0.1
  ASSERT_TRUE(run_until(io, [&] { return a.up.size() == 1; }));
}

// Links of the overlay as seen by the nodes (each link once, by node index).
std::set<std::pair<int, int>> overlay_links(const std::vector<std::unique_ptr<Node>>& nodes) {
  std::map<std::string, int> index;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    index[nodes[i]->t->node_id()] = static_cast<int>(i);
  std::set<std::pair<int, int>> links;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    for (const auto& [id, node] : nodes[i]->up) {
      const int a = static_cast<int>(i), b = index.at(node);
      links.emplace(std::min(a, b), std::max(a, b));
    }
  return links;
}

int components(std::size_t n, const std::set<std::pair<int, int>>& links) {
  std::vector<int> parent(n);
  for (std::size_t i = 0; i < n; ++i) parent[i] = static_cast<int>(i);
  std::function<int(int)> find = [&](int x) {
    return parent[x] == x ? x : parent[x] = find(parent[x]);
  };
  for (auto [a, b] : links) parent[find(a)] = find(b);
  std::set<int> roots;
  for (std::size_t i = 0; i < n; ++i) roots.insert(find(static_cast<int>(i)));
  return static_cast<int>(roots.size());
}

// A fleet started at once overshoots target_peers (every node dials target_peers and accepts
// more); once settled, the surplus links are dropped by agreement: every node keeps
// >= target_peers, the overlay stays one component, and fewer links carry each claim.
TEST(Transport, SurplusLinksAreTrimmedToTargetWithoutSplittingTheOverlay) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.target_peers = 3;
  limits.trim_settle = 300ms;
  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 0; i < 8; ++i) {
    nodes.push_back(std::make_unique<Node>(io, make_node(ca, "n" + std::to_string(i)), limits));
    nodes.back()->listen();
  }
  for (auto& a : nodes) {
    for (auto& b : nodes) {
      if (a != b) {
        ASSERT_TRUE(a->t->add_seed(b->seed()));
      }
    }
  }
  // Formed with a surplus: more than 8 x 3 / 2 = 12 links at some point.
  std::size_t most = 0;
  ASSERT_TRUE(run_until(io, [&] {
    most = std::max(most, overlay_links(nodes).size());
    std::uint64_t trims = 0;
    for (auto& n : nodes) trims += n->t->stats().trims;
    return trims > 0;
  }));
  run_for(io, 3000ms);  // settles
  const auto links = overlay_links(nodes);
  std::uint64_t trims = 0, granted = 0;
  for (auto& n : nodes) {
    EXPECT_GE(n->up.size(), 3u) << n->t->node_id();
    trims += n->t->stats().trims;
    granted += n->t->stats().trim_requests_granted;
    EXPECT_EQ(n->t->stats().trim_rejected, 0u);
  }
  EXPECT_GT(most, 12u);
  EXPECT_LT(links.size(), most);
  EXPECT_EQ(components(nodes.size(), links), 1);
  EXPECT_GE(trims, 1u);
  EXPECT_GE(granted, trims);
}

// A link that is the only path between its ends (no common neighbour) is never dropped, and a
// peer that would fall below target_peers refuses: two hubs, each with two leaves of its own,
// joined by one link; both hubs are above target_peers (1) but nothing may be trimmed.
TEST(Transport, TrimKeepsABridgeAndAPeerAtTarget) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.target_peers = 1;
  limits.trim_settle = 200ms;
  Node a(io, make_node(ca, "hub-a"), limits);
  Node b(io, make_node(ca, "hub-b"), limits);
  a.listen();
  b.listen();
  ASSERT_TRUE(a.t->add_seed(b.seed()));
  std::vector<std::unique_ptr<Node>> leaves;
  for (int i = 0; i < 4; ++i) {
    leaves.push_back(std::make_unique<Node>(io, make_node(ca, "leaf" + std::to_string(i)), limits));
    ASSERT_TRUE(leaves.back()->t->add_seed(i < 2 ? a.seed() : b.seed()));
  }
  ASSERT_TRUE(run_until(io, [&] { return a.up.size() == 3 && b.up.size() == 3; }));
  ASSERT_TRUE(run_until(io, [&] {
    return a.t->stats().trim_refusals_received >= 2 && b.t->stats().trim_refusals_received >= 2;
  }));
  run_for(io, 1000ms);
  EXPECT_EQ(a.up.size(), 3u);
  EXPECT_EQ(b.up.size(), 3u);
  EXPECT_NE(a.peer_id("hub-b"), 0u);
  for (Node* n : {&a, &b}) {
    EXPECT_EQ(n->t->stats().trims, 0u);
    EXPECT_EQ(n->t->stats().trim_requests_granted, 0u);
    EXPECT_GE(n->t->stats().trim_requests_refused, 1u);  // the other hub asked: no witness
  }
  for (auto& l : leaves) EXPECT_EQ(l->up.size(), 1u);
}

TEST(Transport, DialerStopsAtTargetPeers) {
  asio::io_context io;
  TestCa ca;
  auto limits = fast_limits();
  limits.target_peers = 2;
  std::vector<std::unique_ptr<Node>> servers;
  for (int i = 0; i < 4; ++i) {
    servers.push_back(
        std::make_unique<Node>(io, make_node(ca, "srv-" + std::to_string(i)), fast_limits()));
    servers.back()->listen();
  }
  Node d(io, make_node(ca, "dialer"), limits);
  for (auto& s : servers) ASSERT_TRUE(d.t->add_seed(s->seed()));
  ASSERT_TRUE(run_until(io, [&] { return d.up.size() == 2; }));
  run_for(io, 500ms);
  EXPECT_EQ(d.up.size(), 2u);
  EXPECT_EQ(d.t->stats().connections_dialed, 2u);
}

TEST(Transport, MakeIdentityChecksTheCertMatchesTheKey) {
  TestCa ca;
  auto node = make_node(ca, "node-a");
  auto ok = make_identity(std::move(node.key), node.cert, ca.public_key(), wall_now_ms());
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->node_cert.node_id(), "node-a");
  auto other = make_node(ca, "node-b");
  auto bad =
      make_identity(proto::SecretKey::generate(), other.cert, ca.public_key(), wall_now_ms());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "identity_mismatch");
  TestCa wrong;
  auto foreign = make_identity(std::move(other.key), other.cert, wrong.public_key(), wall_now_ms());
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code, "cert_bad_signature");
}

}  // namespace
}  // namespace meshd::net

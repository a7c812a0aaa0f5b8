// Claim ingest over one real transport connection vs the raw Ed25519 verify rate.
//
// A sender Transport pushes N signed claim Envelopes, one per Frame, over one TCP
// connection on 127.0.0.1 to a receiver Transport; the receiver decrypts, parses each Frame,
// checks the signer cert (verified once, then cached by its bytes, as the daemon does) and
// verifies the claim's Ed25519 signature (proto::open_claim). The same run measures the raw
// crypto_sign_verify_detached rate over the same signed messages. Each Transport runs on its
// own io_context thread, like two daemons. Prints one JSON object.
//
// Usage: net_claim_ingest_bench [N]   (default 50000)
#include "meshd/common/asio.hpp"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <unordered_map>

#include "meshd/common/clock.hpp"
#include "meshd/net/transport.hpp"
#include "proto/cert.hpp"
#include "proto/envelope.hpp"
#include "proto/frame.hpp"

namespace {

using namespace meshd;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

struct Node {
  proto::SecretKey key = proto::SecretKey::generate();
  v1::SignedCert cert;
};

Node make_node(const proto::SecretKey& ca, const std::string& id, std::uint64_t serial) {
  Node n;
  v1::NodeCert c;
  c.set_node_id(id);
  c.set_public_key(std::string(n.key.public_key().view()));
  c.set_failure_domain("bench");
  c.set_role(v1::ROLE_NODE);
  c.set_not_before_ms(wall_now_ms() - 60'000);
  c.set_not_after_ms(wall_now_ms() + 3'600'000);
  c.set_serial(serial);
  n.cert = proto::sign_cert(c, ca);
  return n;
}

net::LocalIdentity identity(Node n, const proto::PublicKey& ca) {
  auto id = net::make_identity(std::move(n.key), std::move(n.cert), ca, wall_now_ms());
  if (!id) {
    std::fprintf(stderr, "identity: %s\n", id.error().message.c_str());
    std::exit(1);
  }
  return std::move(*id);
}

double raw_verify_rate(const std::vector<std::string>& messages,
                       const std::vector<std::string>& signatures, const proto::PublicKey& pk) {
  const auto t0 = Clock::now();
  std::size_t ok = 0;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    ok += crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signatures[i].data()),
                                      reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                                      pk.bytes.data()) == 0;
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (ok != messages.size()) {
    std::fprintf(stderr, "raw verify failed for %zu messages\n", messages.size() - ok);
    std::exit(1);
  }
  return static_cast<double>(messages.size()) / s;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 50000;
  spdlog::set_level(spdlog::level::warn);
  proto::ensure_sodium();

  proto::SecretKey ca = proto::SecretKey::generate();
  Node sender_node = make_node(ca, "sender", 1);
  Node receiver_node = make_node(ca, "receiver", 2);
  // Claims are signed by the sender (their origin) and carry its cert.
  const proto::PublicKey origin_pk = sender_node.key.public_key();

  std::vector<std::string> frames;
  std::vector<std::string> raw_messages, raw_signatures;
  frames.reserve(n);
  raw_messages.reserve(n);
  raw_signatures.reserve(n);
  std::size_t frame_bytes = 0;
  const TimeMs issued = wall_now_ms();
  for (std::size_t i = 0; i < n; ++i) {
    v1::Claim claim;
    claim.set_origin("sender");
    claim.set_seq(i + 1);
    auto* target = claim.mutable_target();
    const std::uint32_t addr = 0x0a000000u + static_cast<std::uint32_t>(i);
    const char a[4] = {static_cast<char>(addr >> 24), static_cast<char>(addr >> 16),
                       static_cast<char>(addr >> 8), static_cast<char>(addr)};
    target->set_addr(a, 4);
    target->set_prefix_len(32);
    claim.set_direction(v1::DIRECTION_BOTH);
    claim.set_detector("threatfeed");
    claim.set_severity(v1::SEVERITY_HIGH);
    claim.set_confidence(0.9);
    claim.set_issued_at_ms(issued);
    claim.set_ttl_ms(3'600'000);
    claim.set_evidence_digest(std::string(32, 'e'));
    v1::Envelope env = proto::sign_claim(claim, sender_node.key);
    *env.mutable_signer_cert() = sender_node.cert;
    raw_messages.push_back("meshd/v1/claim" + std::string(1, '\0') + env.body());
    raw_signatures.push_back(env.signature());
    v1::Frame frame;
    *frame.mutable_envelope() = std::move(env);
    frames.push_back(frame.SerializeAsString());
    frame_bytes += frames.back().size();
  }
  // The raw messages must be exactly what proto signs, or the comparison is meaningless.
  if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(raw_signatures[0].data()),
                                  reinterpret_cast<const unsigned char*>(raw_messages[0].data()),
                                  raw_messages[0].size(), origin_pk.bytes.data()) != 0) {
    std::fprintf(stderr, "raw message layout does not match proto::sign\n");
    return 1;
  }

  const double raw_before = raw_verify_rate(raw_messages, raw_signatures, origin_pk);

  net::TransportLimits limits;
  limits.receive_rate = {};  // unlimited: measure the pipeline, not the configured cap
  limits.max_send_queue_bytes = 1ull << 31;

  // Receiver.
  asio::io_context rio;
  std::atomic<std::size_t> verified{0};
  std::size_t failures = 0;
  Clock::time_point first_rx{}, last_verified{};
  std::unordered_map<std::string, proto::PublicKey> cert_cache;  // cert bytes -> key
  net::TransportCallbacks rcb;
  rcb.on_frame = [&](net::PeerId, std::span<const std::uint8_t> payload) {
    if (verified.load(std::memory_order_relaxed) == 0 && failures == 0) first_rx = Clock::now();
    auto frame = proto::parse_frame(payload);
    if (!frame || frame->payload_case() != v1::Frame::kEnvelope) {
      ++failures;
      return;
    }
    const v1::Envelope& env = frame->envelope();
    const std::string cert_bytes = env.signer_cert().SerializeAsString();
    auto it = cert_cache.find(cert_bytes);
    if (it == cert_cache.end()) {
      auto cert =
          proto::verify_cert(env.signer_cert(), ca.public_key(), wall_now_ms(), v1::ROLE_NODE);
      if (!cert) {
        ++failures;
        return;
      }
      auto key = proto::cert_public_key(*cert);
      if (!key) {
        ++failures;
        return;
      }
      it = cert_cache.emplace(cert_bytes, *key).first;
    }
    auto claim = proto::open_claim(env, it->second);
    if (!claim || claim->origin() != "sender") {
      ++failures;
      return;
    }
    last_verified = Clock::now();
    if (verified.fetch_add(1, std::memory_order_relaxed) + 1 == n) rio.stop();
  };
  net::Transport receiver(rio, identity(std::move(receiver_node), ca.public_key()), limits, rcb);
  auto ep = receiver.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  if (!ep) {
    std::fprintf(stderr, "%s\n", ep.error().message.c_str());
    return 1;
  }

  // Sender: pushes everything as soon as the peer is up.
  asio::io_context sio;
  Clock::time_point send_start{}, send_end{};
  std::unique_ptr<net::Transport> sender;
  net::TransportCallbacks scb;
  // Sends in batches, yielding to the io_context between them so the writer starts
  // flushing while the rest is still being sealed.
  std::size_t next_frame = 0;
  std::function<void(net::PeerId)> send_batch = [&](net::PeerId peer) {
    const std::size_t end = std::min(frames.size(), next_frame + 512);
    for (; next_frame < end; ++next_frame) {
      if (auto r = sender->send(peer, proto::as_bytes(frames[next_frame])); !r) {
        std::fprintf(stderr, "send: %s\n", r.error().message.c_str());
        std::exit(1);
      }
    }
    if (next_frame < frames.size()) {
      asio::post(sio, [&, peer] { send_batch(peer); });
    } else {
      send_end = Clock::now();
    }
  };
  scb.on_peer_up = [&](net::PeerId peer, const v1::NodeCert&) {
    send_start = Clock::now();
    send_batch(peer);
  };
  sender = std::make_unique<net::Transport>(sio, identity(std::move(sender_node), ca.public_key()),
                                            limits, scb);
  if (auto r = sender->add_seed("127.0.0.1:" + std::to_string(ep->port())); !r) return 1;

  std::thread sender_thread([&] {
    auto guard = asio::make_work_guard(sio);
    sio.run();
  });
  std::thread watchdog([&] {
    for (int i = 0; i < 600 && verified.load() < n; ++i) std::this_thread::sleep_for(100ms);
    rio.stop();
  });
  rio.run();
  watchdog.join();
  asio::post(sio, [&] {
    sender->stop();
    sio.stop();
  });
  sender_thread.join();
  if (verified.load() != n) {
    std::fprintf(stderr, "only %zu of %zu claims verified (%zu failures)\n", verified.load(), n,
                 failures);
    return 1;
  }

  const double raw_after = raw_verify_rate(raw_messages, raw_signatures, origin_pk);
  const double raw = (raw_before + raw_after) / 2;
  const double ingest_s = std::chrono::duration<double>(last_verified - send_start).count();
  const double ingest = static_cast<double>(n) / ingest_s;
  std::printf(
      "{\"bench\":\"net_claim_ingest\",\"claims\":%zu,\"avg_frame_bytes\":%.1f,"
      "\"raw_verify_per_s\":%.0f,\"raw_verify_before_per_s\":%.0f,"
      "\"raw_verify_after_per_s\":%.0f,\"ingest_per_s\":%.0f,\"ingest_seconds\":%.3f,"
      "\"sender_enqueue_seconds\":%.3f,\"first_frame_after_ms\":%.2f,\"ratio\":%.3f,"
      "\"goal_ratio\":0.8}\n",
      n, static_cast<double>(frame_bytes) / static_cast<double>(n), raw, raw_before, raw_after,
      ingest, ingest_s, std::chrono::duration<double>(send_end - send_start).count(),
      std::chrono::duration<double, std::milli>(first_rx - send_start).count(), ingest / raw);
  return 0;
}

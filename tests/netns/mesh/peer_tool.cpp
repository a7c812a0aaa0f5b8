// mesh_peer_tool: a certified peer that speaks the real meshd transport (handshake +
// secretstream frames, meshd/net) and pushes claims that netns tests and benchmarks need.
//
//   mesh_peer_tool --ca CA.pub --key node.key --cert node.cert --connect HOST:PORT MODE [opts]
//
// Modes:
//   forge   push --count N (default 1) claims whose Envelope signature does not verify: the
//           body claims to come from the origin certified by --forge-cert (default: this
//           peer) but is signed with this peer's key, and the signature is then tampered
//           with. A receiving meshd must refuse it (bad_signature) and lower this peer's score.
//   flood   push --count N valid claims (distinct /32 targets from --base, default
//           100.64.0.0) signed by this peer, seq 1..N, --ttl-ms each (default 1 h), at most
//           --rate claims/s (0 = as fast as the connection takes them).
//   equivocate  push --count N pairs of valid claims of this peer that share a seq but name
//           different targets (equivocation: the receiver must prove and quarantine it).
//   replay  push the envelopes of --file (one hex-encoded serialized Envelope a line, e.g.
//           `SELECT hex(bytes) FROM envelopes` of a node's store) --count times over.
//   nested  push --count frames of --depth (default 50000) nested protobuf groups inside an
//           Envelope: a parser that recurses without a limit overflows its stack.
//   oversized  push ONE frame of --bytes (default 2 MiB) payload, above the receiver's
//           mesh.max_frame_bytes.
// Options: --hold-ms MS (stay connected after sending; default 3000), --timeout-ms MS
// (give up when the peer is not up by then; default 10000), --seq-start S (first seq).
//
// Prints one JSON line: {"mode":..., "peer":..., "sent":N, "send_ms":...}. Exit 1 when the
// connection could not be made or a send failed.
#include "meshd/common/asio.hpp"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "meshd/common/clock.hpp"
#include "meshd/net/transport.hpp"
#include "proto/cert.hpp"
#include "proto/envelope.hpp"
#include "proto/keys.hpp"

namespace {

using namespace meshd;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "mesh_peer_tool: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T must(Result<T> r, const std::string& what) {
  if (!r) die(what + ": " + r.error().message);
  return std::move(*r);
}

struct Args {
  std::map<std::string, std::string> opts;
  std::string mode;
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = opts.find(k);
    return it == opts.end() ? def : it->second;
  }
  std::string need(const std::string& k) const {
    auto it = opts.find(k);
    if (it == opts.end()) die("missing --" + k);
    return it->second;
  }
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      if (i + 1 >= argc) die("option " + s + " needs a value");
      a.opts[s.substr(2)] = argv[++i];
    } else if (a.mode.empty()) {
      a.mode = s;
    } else {
      die("unexpected argument '" + s + "'");
    }
  }
  static const char* const kModes[] = {"forge",  "flood",  "equivocate",
                                       "replay", "nested", "oversized"};
  if (std::find(std::begin(kModes), std::end(kModes), a.mode) == std::end(kModes))
    die("MODE must be forge, flood, equivocate, replay, nested or oversized");
  return a;
}

v1::Claim make_claim(const std::string& origin, std::uint64_t seq, std::uint32_t addr,
                     TimeMs ttl_ms) {
  v1::Claim c;
  c.set_origin(origin);
  c.set_seq(seq);
  const char a[4] = {static_cast<char>(addr >> 24), static_cast<char>(addr >> 16),
                     static_cast<char>(addr >> 8), static_cast<char>(addr)};
  c.mutable_target()->set_addr(a, 4);
  c.mutable_target()->set_prefix_len(32);
  c.set_direction(v1::DIRECTION_BOTH);
  c.set_detector("feed:peer-tool");
  c.set_severity(v1::SEVERITY_HIGH);
  c.set_confidence(0.9);
  c.set_issued_at_ms(wall_now_ms());
  c.set_ttl_ms(ttl_ms);
  c.mutable_context()->set_reason("mesh_peer_tool");
  return c;
}

std::string frame_of(v1::Envelope env) {
  v1::Frame f;
  *f.mutable_envelope() = std::move(env);
  return f.SerializeAsString();
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  spdlog::set_level(spdlog::level::warn);
  proto::ensure_sodium();

  const auto ca = must(proto::load_public_key(args.need("ca")), "--ca");
  const auto cert = must(proto::load_cert_file(args.need("cert")), "--cert");
  const auto node_cert = must(proto::decode_cert(cert), "--cert");
  const std::string self = node_cert.node_id();
  auto transport_key = must(proto::load_secret_key(args.need("key")), "--key");
  const auto sign_key = must(proto::load_secret_key(args.need("key")), "--key");
  auto identity =
      must(net::make_identity(std::move(transport_key), cert, ca, wall_now_ms()), "identity");

  // The frames to push, prepared before connecting.
  std::vector<std::string> frames;
  const auto ttl = static_cast<TimeMs>(std::stoll(args.get("ttl-ms", "3600000")));
  const std::uint64_t seq0 = std::stoull(args.get("seq-start", "1"));
  const auto count = std::stoull(args.get("count", args.mode == "forge" ? "1" : "1000"));
  in_addr base{};
  if (::inet_pton(AF_INET, args.get("base", "100.64.0.0").c_str(), &base) != 1) die("bad --base");
  const std::uint32_t b = ntohl(base.s_addr);
  auto signed_frame = [&](std::uint64_t seq, std::uint32_t addr) {
    v1::Envelope env = proto::sign_claim(make_claim(self, seq, addr, ttl), sign_key);
    *env.mutable_signer_cert() = cert;
    return frame_of(std::move(env));
  };
  if (args.mode == "forge") {
    v1::SignedCert signer = cert;
    std::string origin = self;
    if (!args.get("forge-cert").empty()) {
      signer = must(proto::load_cert_file(args.get("forge-cert")), "--forge-cert");
      origin = must(proto::decode_cert(signer), "--forge-cert").node_id();
    }
    for (std::uint64_t i = 0; i < count; ++i) {
      v1::Envelope env = proto::sign_claim(
          make_claim(origin, seq0 + i, 0x0a636301u + static_cast<std::uint32_t>(i), ttl), sign_key);
      std::string sig = env.signature();
      sig[0] = static_cast<char>(sig[0] ^ 0x5a);  // tampered: the signature no longer verifies
      env.set_signature(sig);
      *env.mutable_signer_cert() = signer;
      frames.push_back(frame_of(std::move(env)));
    }
  } else if (args.mode == "flood") {
    // Signed as they are sent (below), not all up front: --count is rate x 40 in the hostile
    // runs (80,000 signatures), which on a loaded machine kept the flooder from connecting
    // within the test's 10 s.
  } else if (args.mode == "equivocate") {
    for (std::uint64_t i = 0; i < count; ++i) {
      frames.push_back(signed_frame(seq0 + i, b + static_cast<std::uint32_t>(2 * i)));
      frames.push_back(signed_frame(seq0 + i, b + static_cast<std::uint32_t>(2 * i + 1)));
    }
  } else if (args.mode == "replay") {
    std::ifstream in(args.need("file"));
    if (!in) die("cannot read --file " + args.need("file"));
    std::vector<std::string> envelopes;
    std::string hex;
    while (std::getline(in, hex)) {
      if (hex.size() < 2 || hex.size() % 2) continue;
      std::string bytes;
      for (std::size_t k = 0; k < hex.size(); k += 2)
        bytes.push_back(static_cast<char>(std::stoi(hex.substr(k, 2), nullptr, 16)));
      v1::Envelope env;
      if (!env.ParseFromString(bytes)) die("--file: a line is not an Envelope");
      envelopes.push_back(frame_of(std::move(env)));
    }
    if (envelopes.empty()) die("--file holds no envelope");
    for (std::uint64_t i = 0; i < count; ++i)
      frames.insert(frames.end(), envelopes.begin(), envelopes.end());
  } else if (args.mode == "nested") {
    // Frame.envelope (field 1) holding `depth` start-group tags of field 15 and their ends.
    const auto depth = std::stoull(args.get("depth", "50000"));
    std::string inner(depth, static_cast<char>((15 << 3) | 3));
    inner.append(depth, static_cast<char>((15 << 3) | 4));
    std::string frame;
    frame.push_back(static_cast<char>((1 << 3) | 2));
    for (std::uint64_t n = inner.size();; n >>= 7) {  // varint length
      frame.push_back(static_cast<char>((n & 0x7f) | (n >= 0x80 ? 0x80 : 0)));
      if (n < 0x80) break;
    }
    frame += inner;
    frames.assign(count, frame);
  } else {  // oversized
    frames.emplace_back(std::stoull(args.get("bytes", "2097152")), '\x42');
  }
  const std::size_t total = args.mode == "flood" ? count : frames.size();
  const double rate = std::stod(args.get("rate", "0"));
  const int hold_ms = std::stoi(args.get("hold-ms", "3000"));
  const int timeout_ms = std::stoi(args.get("timeout-ms", "10000"));

  asio::io_context io;
  net::TransportLimits limits;
  limits.max_send_queue_bytes = 1ull << 31;
  limits.max_frame_size = 64ull << 20;  // oversized: this side must not refuse to send it
  std::unique_ptr<net::Transport> transport;
  std::string peer_name;
  std::size_t sent = 0;
  bool failed = false, up = false;
  Clock::time_point t_up{}, t_sent{};
  asio::steady_timer pacer(io), deadline(io);

  // Sends in batches (or paced), then holds the connection open for hold_ms.
  std::function<void(net::PeerId)> send_more = [&](net::PeerId peer) {
    const std::size_t batch = rate > 0 ? 1 : 512;
    for (std::size_t k = 0; k < batch && sent < total; ++k, ++sent) {
      const std::string lazy = args.mode == "flood"
                                   ? signed_frame(seq0 + sent, b + static_cast<std::uint32_t>(sent))
                                   : std::string();
      if (auto r =
              transport->send(peer, proto::as_bytes(args.mode == "flood" ? lazy : frames[sent]));
          !r) {
        std::fprintf(stderr, "mesh_peer_tool: send: %s\n", r.error().message.c_str());
        failed = true;
        io.stop();
        return;
      }
    }
    if (sent < total) {
      if (rate > 0) {
        pacer.expires_after(std::chrono::microseconds(static_cast<long>(1e6 / rate)));
        pacer.async_wait([&, peer](const boost::system::error_code& ec) {
          if (!ec) send_more(peer);
        });
      } else {
        asio::post(io, [&, peer] { send_more(peer); });
      }
      return;
    }
    t_sent = Clock::now();
    deadline.expires_after(std::chrono::milliseconds(hold_ms));
    deadline.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) io.stop();
    });
  };

  net::TransportCallbacks cb;
  cb.on_peer_up = [&](net::PeerId peer, const v1::NodeCert& c) {
    if (up) return;
    up = true;
    peer_name = c.node_id();
    t_up = Clock::now();
    send_more(peer);
  };
  cb.on_frame = [](net::PeerId, std::span<const std::uint8_t>) {};
  cb.on_peer_down = [&](net::PeerId, std::string_view reason) {
    if (sent < total) {
      std::fprintf(stderr, "mesh_peer_tool: peer went down after %zu frames: %.*s\n", sent,
                   static_cast<int>(reason.size()), reason.data());
      failed = true;
      io.stop();
    }
  };
  transport = std::make_unique<net::Transport>(io, std::move(identity), limits, cb);
  if (auto r = transport->add_seed(args.need("connect")); !r)
    die("--connect: " + r.error().message);
  asio::steady_timer give_up(io);
  give_up.expires_after(std::chrono::milliseconds(timeout_ms));
  give_up.async_wait([&](const boost::system::error_code& ec) {
    if (!ec && !up) {
      std::fprintf(stderr, "mesh_peer_tool: no connection to %s within %d ms\n",
                   args.need("connect").c_str(), timeout_ms);
      failed = true;
      io.stop();
    }
  });
  io.run();
  transport->stop();
  const double send_ms = up && t_sent != Clock::time_point{}
                             ? std::chrono::duration<double, std::milli>(t_sent - t_up).count()
                             : -1;
  std::printf("{\"mode\":\"%s\",\"self\":\"%s\",\"peer\":\"%s\",\"sent\":%zu,\"send_ms\":%.1f}\n",
              args.mode.c_str(), self.c_str(), peer_name.c_str(), sent, send_ms);
  return failed || !up ? 1 : 0;
}

// The peer handshake, both roles: an initiator (node-a) and a responder (node-b) run the real
// Handshake against each other while the input acts as the network: for each of the four
// messages (both Hellos, both HelloAuths) one control byte says whether it passes unchanged,
// is replaced by bytes from the input (an attacker's message), has a byte flipped, or is
// truncated. Further control bits pick the clock (inside or outside the certs' validity) and
// whether node-b's serial is revoked. libsodium's randomness is a fixed stream per input, so
// every run of an input is the same handshake.
// Properties: with nothing changed, both sides establish, each learns the other's real node
// id, and the session keys agree both ways; whenever a side establishes, the Hello bytes it
// saw are exactly the ones the other side sent (the transcript signature binds them) and the
// peer it learned is the real one; a revoked or out-of-validity cert never establishes.
#include <sodium.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "meshd/net/handshake.hpp"
#include "tests/fuzz/targets/fixed_identities.hpp"
#include "tests/fuzz/targets/fuzz_check.hpp"

namespace {

using namespace meshd;

// --- deterministic randombytes (splitmix64), reset for every input ---
std::uint64_t g_state = 0;
std::uint64_t next64() {
  std::uint64_t z = (g_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
const char* rb_name() {
  return "fuzz-deterministic";
}
std::uint32_t rb_random() {
  return static_cast<std::uint32_t>(next64());
}
void rb_buf(void* const buf, const std::size_t size) {
  auto* p = static_cast<std::uint8_t*>(buf);
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::uint8_t>(next64());
}
randombytes_implementation g_impl = {rb_name, rb_random, nullptr, nullptr, rb_buf, nullptr};

net::LocalIdentity identity(std::uint8_t seed, const v1::SignedCert& cert) {
  return net::LocalIdentity{*proto::SecretKey::from_seed(std::vector<std::uint8_t>(32, seed)), cert,
                            *proto::decode_cert(cert), fuzz::ca_key().public_key()};
}

struct Input {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::string take(std::size_t len) {
    len = std::min(len, n);
    std::string s(reinterpret_cast<const char*>(p), len);
    p += len;
    n -= len;
    return s;
  }
};

// Applies the control byte's change to a message in transit.
std::string in_transit(const std::string& msg, Input& in) {
  const std::uint8_t c = in.byte();
  switch (c % 4) {
    case 1: {  // replaced by the attacker's bytes
      std::size_t len = in.byte();
      len = len * 4 + in.byte() % 4;
      return in.take(len);
    }
    case 2: {  // one byte flipped
      if (msg.empty()) return msg;
      std::string m = msg;
      const std::size_t at = (static_cast<std::size_t>(in.byte()) << 8 | in.byte()) % m.size();
      m[at] = static_cast<char>(m[at] ^ (in.byte() | 1));
      return m;
    }
    case 3:  // truncated
      return msg.substr(0,
                        (static_cast<std::size_t>(in.byte()) << 8 | in.byte()) % (msg.size() + 1));
    default:
      return msg;
  }
}

bool agree(net::Session& from, net::Session& to) {
  const std::uint8_t text[] = "fuzz";
  std::vector<std::uint8_t> cipher, plain;
  from.tx.seal(text, cipher);
  if (!to.rx.unseal(cipher, plain)) return false;
  return plain.size() == sizeof text && std::memcmp(plain.data(), text, sizeof text) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  randombytes_set_implementation(&g_impl);
  proto::ensure_sodium();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  g_state = 42;
  Input in{data, size};
  const std::uint8_t flags = in.byte();
  const bool revoke_b = flags & 1;
  const int clock = (flags >> 1) % 4;  // 0, 1: valid; 2: before not_before; 3: after not_after
  const TimeMs now = clock == 2   ? fuzz::kNow - 86'400'000LL * 366
                     : clock == 3 ? fuzz::kNow + 86'400'000LL * 366
                                  : fuzz::kNow;
  const bool certs_valid = clock < 2;

  static const net::LocalIdentity a = identity(7, fuzz::node_a_cert());
  static const net::LocalIdentity b = identity(5, fuzz::node_b_cert());
  net::Handshake init(net::HandshakeRole::initiator, a);
  net::Handshake resp(net::HandshakeRole::responder, b);
  auto revoked = [&](std::uint64_t serial) { return revoke_b && serial == 2; };

  const std::string hello_i = init.hello(), hello_r = resp.hello();
  const std::string got_by_r = in_transit(hello_i, in);
  const std::string got_by_i = in_transit(hello_r, in);
  auto peer_of_r = resp.on_peer_hello(proto::as_bytes(got_by_r), now, revoked);
  auto peer_of_i = init.on_peer_hello(proto::as_bytes(got_by_i), now, revoked);
  if (peer_of_r) FUZZ_CHECK(certs_valid && peer_of_r->node_id() == "node-a");
  if (peer_of_i) FUZZ_CHECK(certs_valid && !revoke_b && peer_of_i->node_id() == "node-b");

  std::optional<net::Session> s_i, s_r;
  std::string auth_i, auth_r;
  bool auth_i_intact = false, auth_r_intact = false;
  if (peer_of_r) {
    if (auto x = resp.auth()) auth_r = *x;
  }
  if (peer_of_i) {
    if (auto x = init.auth()) auth_i = *x;
  }
  const std::string auth_got_by_r = in_transit(auth_i, in);
  const std::string auth_got_by_i = in_transit(auth_r, in);
  auth_i_intact = !auth_i.empty() && auth_got_by_r == auth_i;
  auth_r_intact = !auth_r.empty() && auth_got_by_i == auth_r;
  if (peer_of_r)
    if (auto s = resp.on_peer_auth(proto::as_bytes(auth_got_by_r))) s_r.emplace(std::move(*s));
  if (peer_of_i)
    if (auto s = init.on_peer_auth(proto::as_bytes(auth_got_by_i))) s_i.emplace(std::move(*s));

  // A side that established verified the other's signature over both Hellos as that side
  // saw them: so neither Hello was changed in transit.
  if (s_r || s_i) FUZZ_CHECK(got_by_r == hello_i && got_by_i == hello_r);
  if (s_r && s_i) {
    if (auth_i_intact && auth_r_intact) {
      FUZZ_CHECK(agree(*s_i, *s_r));
      FUZZ_CHECK(agree(*s_r, *s_i));
    }
  }
  // Untouched messages, valid certs, nothing revoked: the handshake must succeed.
  if (size == 0 || (got_by_r == hello_i && got_by_i == hello_r && auth_i_intact && auth_r_intact &&
                    certs_valid && !revoke_b)) {
    FUZZ_CHECK(s_i.has_value() && s_r.has_value());
  }
  return 0;
}

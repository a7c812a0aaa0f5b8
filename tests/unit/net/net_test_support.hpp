// Helpers for meshd/net tests: a throw-away CA, node identities, and an io_context driver.
#pragma once

#include "meshd/common/asio.hpp"

#include <chrono>
#include <functional>
#include <string>

#include "meshd/common/clock.hpp"
#include "meshd/net/handshake.hpp"
#include "meshd/net/transport.hpp"
#include "proto/cert.hpp"
#include "proto/crypto.hpp"

namespace meshd::net::testing {

struct TestCa {
  proto::SecretKey key = proto::SecretKey::generate();
  const proto::PublicKey& public_key() const { return key.public_key(); }
};

struct CertSpec {
  std::string domain = "zone-a";
  v1::Role role = v1::ROLE_NODE;
  TimeMs not_before = wall_now_ms() - 60'000;
  TimeMs not_after = wall_now_ms() + 3'600'000;
  std::uint64_t serial = 1;
};

// An identity signed by `signer` whose trusted CA is `trusted` (normally the same CA). Built
// directly, not with make_identity(), so tests can hold expired or foreign certs.
inline LocalIdentity make_node(const TestCa& signer, const TestCa& trusted, const std::string& id,
                               const CertSpec& spec = {}) {
  proto::SecretKey key = proto::SecretKey::generate();
  v1::NodeCert cert;
  cert.set_node_id(id);
  cert.set_public_key(std::string(key.public_key().view()));
  cert.set_failure_domain(spec.domain);
  cert.set_role(spec.role);
  cert.set_not_before_ms(spec.not_before);
  cert.set_not_after_ms(spec.not_after);
  cert.set_serial(spec.serial);
  v1::SignedCert signed_cert = proto::sign_cert(cert, signer.key);
  return LocalIdentity{std::move(key), std::move(signed_cert), cert, trusted.public_key()};
}

inline LocalIdentity make_node(const TestCa& ca, const std::string& id, const CertSpec& spec = {}) {
  return make_node(ca, ca, id, spec);
}

// Runs `io` until `done()` or `timeout`; returns done().
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
  return done();
}

// Runs `io` for `d` regardless.
inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds d) {
  run_until(
      io, [] { return false; }, d);
}

}  // namespace meshd::net::testing

// Fixed keys and CA-signed certs for the fuzz targets and their seed generator, so signed seeds
// stay valid across runs: a fleet CA, node-a (zone-a), node-b (zone-b) and operator alice.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/cert.hpp"
#include "proto/crypto.hpp"

namespace meshd::fuzz {

constexpr std::int64_t kNow = 1'700'000'000'000;  // every cert is valid at kNow

inline const proto::SecretKey& key_of(std::uint8_t seed) {
  static proto::SecretKey ca = *proto::SecretKey::from_seed(std::vector<std::uint8_t>(32, 9));
  static proto::SecretKey a = *proto::SecretKey::from_seed(std::vector<std::uint8_t>(32, 7));
  static proto::SecretKey b = *proto::SecretKey::from_seed(std::vector<std::uint8_t>(32, 5));
  static proto::SecretKey op = *proto::SecretKey::from_seed(std::vector<std::uint8_t>(32, 3));
  switch (seed) {
    case 9:
      return ca;
    case 7:
      return a;
    case 5:
      return b;
    default:
      return op;
  }
}
inline const proto::SecretKey& ca_key() {
  return key_of(9);
}
inline const proto::SecretKey& node_a_key() {
  return key_of(7);
}
inline const proto::SecretKey& node_b_key() {
  return key_of(5);
}
inline const proto::SecretKey& operator_key() {
  return key_of(3);
}

inline v1::NodeCert cert_body(const std::string& id, const std::string& domain,
                              const proto::SecretKey& key, v1::Role role, std::uint64_t serial) {
  v1::NodeCert c;
  c.set_node_id(id);
  c.set_failure_domain(domain);
  c.set_public_key(std::string(key.public_key().view()));
  c.set_role(role);
  c.set_not_before_ms(kNow - 86'400'000LL * 365);
  c.set_not_after_ms(kNow + 86'400'000LL * 365);
  c.set_serial(serial);
  return c;
}
inline const v1::SignedCert& node_a_cert() {
  static v1::SignedCert c =
      proto::sign_cert(cert_body("node-a", "zone-a", node_a_key(), v1::ROLE_NODE, 1), ca_key());
  return c;
}
inline const v1::SignedCert& node_b_cert() {
  static v1::SignedCert c =
      proto::sign_cert(cert_body("node-b", "zone-b", node_b_key(), v1::ROLE_NODE, 2), ca_key());
  return c;
}
inline const v1::SignedCert& operator_cert() {
  static v1::SignedCert c =
      proto::sign_cert(cert_body("alice", "ops", operator_key(), v1::ROLE_OPERATOR, 3), ca_key());
  return c;
}

}  // namespace meshd::fuzz

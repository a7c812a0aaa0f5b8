#include "proto/cert.hpp"

#include <limits>

#include "proto/keys.hpp"

namespace meshd::proto {

namespace {

constexpr std::string_view cert_header = "meshd-cert-v1";

bool parse_bytes(google::protobuf::MessageLite& msg, std::string_view bytes) {
  return bytes.size() <= static_cast<std::size_t>(std::numeric_limits<int>::max()) &&
         msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

}  // namespace

std::string_view role_name(v1::Role role) {
  switch (role) {
    case v1::ROLE_NODE:
      return "node";
    case v1::ROLE_OPERATOR:
      return "operator";
    default:
      return "unspecified";
  }
}

std::optional<v1::Role> parse_role(std::string_view name) {
  if (name == "node") return v1::ROLE_NODE;
  if (name == "operator") return v1::ROLE_OPERATOR;
  return std::nullopt;
}

v1::SignedCert sign_cert(const v1::NodeCert& cert, const SecretKey& ca_key) {
  v1::SignedCert out;
  out.set_cert_body(cert.SerializeAsString());
  Signature sig = sign(SignKind::node_cert, as_bytes(out.cert_body()), ca_key);
  out.set_ca_signature(reinterpret_cast<const char*>(sig.data()), sig.size());
  return out;
}

Result<v1::NodeCert> decode_cert(const v1::SignedCert& signed_cert) {
  v1::NodeCert cert;
  if (!parse_bytes(cert, signed_cert.cert_body())) {
    return fail("cert_malformed", "certificate body of " +
                                      std::to_string(signed_cert.cert_body().size()) +
                                      " bytes is not a NodeCert");
  }
  return cert;
}

Result<PublicKey> cert_public_key(const v1::NodeCert& cert) {
  auto key = PublicKey::from_bytes(as_bytes(cert.public_key()));
  if (!key) {
    return fail("cert_malformed",
                "certificate of '" + cert.node_id() + "': " + key.error().message);
  }
  return key;
}

Result<v1::NodeCert> verify_cert(const v1::SignedCert& signed_cert, const PublicKey& ca_key,
                                 TimeMs now_ms, std::optional<v1::Role> required_role) {
  auto sig_ok = verify(SignKind::node_cert, as_bytes(signed_cert.cert_body()),
                       as_bytes(signed_cert.ca_signature()), ca_key);
  if (!sig_ok) {
    // Name the cert if its body is readable, so an operator can tell which file is wrong.
    auto peek = decode_cert(signed_cert);
    std::string who = peek ? "certificate of '" + peek->node_id() + "'" : "certificate";
    return fail("cert_bad_signature", who + " is not signed by the CA " + ca_key.fingerprint() +
                                          " (wrong CA or altered)");
  }
  auto cert = decode_cert(signed_cert);
  if (!cert) return cert;
  const std::string who = "certificate of '" + cert->node_id() + "'";
  if (cert->node_id().empty()) return fail("cert_malformed", "certificate has an empty node id");
  if (auto key = cert_public_key(*cert); !key) return std::unexpected(key.error());
  if (cert->role() != v1::ROLE_NODE && cert->role() != v1::ROLE_OPERATOR) {
    return fail("cert_malformed", who + " has no valid role");
  }
  if (now_ms < cert->not_before_ms()) {
    return fail("cert_not_yet_valid", who + " is not valid before " +
                                          std::to_string(cert->not_before_ms()) + " ms (now " +
                                          std::to_string(now_ms) + " ms)");
  }
  if (now_ms > cert->not_after_ms()) {
    return fail("cert_expired", who + " expired at " + std::to_string(cert->not_after_ms()) +
                                    " ms (now " + std::to_string(now_ms) + " ms)");
  }
  if (required_role && cert->role() != *required_role) {
    return fail("cert_wrong_role", who + " has role '" + std::string(role_name(cert->role())) +
                                       "', required '" + std::string(role_name(*required_role)) +
                                       "'");
  }
  return cert;
}

Result<void> write_cert_file(const std::filesystem::path& path, const v1::SignedCert& cert,
                             bool overwrite) {
  std::string text =
      std::string(cert_header) + " " + base64_encode(as_bytes(cert.SerializeAsString())) + "\n";
  return write_file_atomic(path, text, 0644, overwrite);
}

Result<v1::SignedCert> load_cert_file(const std::filesystem::path& path) {
  auto text = read_file(path);
  if (!text) return std::unexpected(text.error());
  std::string_view t = *text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) {
    t.remove_suffix(1);
  }
  if (!t.starts_with(std::string(cert_header) + " ")) {
    return fail("cert_format", path.string() + " is not a meshd certificate (expected '" +
                                   std::string(cert_header) + " <base64>')");
  }
  auto raw = base64_decode(t.substr(cert_header.size() + 1));
  if (!raw) return fail("cert_format", path.string() + ": " + raw.error().message);
  v1::SignedCert cert;
  if (!parse_bytes(cert, *raw) || cert.cert_body().empty()) {
    return fail("cert_format", path.string() + " does not hold a signed certificate");
  }
  return cert;
}

}  // namespace meshd::proto

// Fleet CA and node certificates.
//
// The CA is an Ed25519 key. It signs the serialized NodeCert (domain "node_cert"); the
// result travels as SignedCert{cert_body, ca_signature} and is verified as those exact
// bytes. Certificate file: one line "meshd-cert-v1 <base64 of serialized SignedCert>\n".
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"
#include "proto/crypto.hpp"
#include "proto/wire.pb.h"

namespace meshd::proto {

// Signs `cert` with the CA key. The cert is serialized once; those bytes are what is signed.
v1::SignedCert sign_cert(const v1::NodeCert& cert, const SecretKey& ca_key);

// Parses cert_body without checking anything (for display); `cert_malformed` on garbage.
Result<v1::NodeCert> decode_cert(const v1::SignedCert& signed_cert);

// Checks, in this order: CA signature (`cert_bad_signature`), well-formedness
// (`cert_malformed`: public key not 32 bytes, empty node id, unknown role),
// not_before <= now (`cert_not_yet_valid`), now <= not_after (`cert_expired`) and, if
// given, the role (`cert_wrong_role`). Returns the decoded cert. Messages name the node
// id and the times involved.
Result<v1::NodeCert> verify_cert(const v1::SignedCert& signed_cert, const PublicKey& ca_key,
                                 TimeMs now_ms,
                                 std::optional<v1::Role> required_role = std::nullopt);

// The cert's key as a PublicKey (`cert_malformed` if not 32 bytes).
Result<PublicKey> cert_public_key(const v1::NodeCert& cert);

// "node" / "operator" / "unspecified".
std::string_view role_name(v1::Role role);
std::optional<v1::Role> parse_role(std::string_view name);

// Certificate files. Errors as in proto/keys.hpp plus `cert_format`.
Result<void> write_cert_file(const std::filesystem::path& path, const v1::SignedCert& cert,
                             bool overwrite = false);
Result<v1::SignedCert> load_cert_file(const std::filesystem::path& path);

}  // namespace meshd::proto

// Key files on disk.
//
// Secret key file: one line  "meshd-ed25519-secret-v1 <base64 of the 32-byte seed>\n",
// mode 0600, written atomically (temp file in the same directory + fsync + rename).
// Public key file:  "meshd-ed25519-public-v1 <base64 of the 32-byte public key>\n", 0644.
// Loading a secret key refuses a file readable by group or others (error
// `key_permissions`), like ssh does, because a leaked node key lets an attacker speak for
// the node.
#pragma once

#include <filesystem>
#include <string>

#include "meshd/common/result.hpp"
#include "proto/crypto.hpp"

namespace meshd::proto {

// Error codes: `file_exists` (unless overwrite), `io_error` (names the path and errno text).
Result<void> write_secret_key(const std::filesystem::path& path, const SecretKey& key,
                              bool overwrite = false);
Result<void> write_public_key(const std::filesystem::path& path, const PublicKey& key,
                              bool overwrite = false);

// Error codes: `file_missing`, `io_error`, `key_permissions` (secret only: names the mode
// and the chmod fix), `key_format` (wrong header, bad base64, wrong length; says which).
Result<SecretKey> load_secret_key(const std::filesystem::path& path);
Result<PublicKey> load_public_key(const std::filesystem::path& path);

// Text forms used in the files (exposed for config files and tests).
std::string format_public_key(const PublicKey& key);
Result<PublicKey> parse_public_key(std::string_view text, std::string_view source_name);

// Writes `content` to `path` atomically with the given mode: temp file in the same
// directory, fsync, rename. `file_exists` if the path exists and !overwrite.
Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view content,
                               unsigned mode, bool overwrite);
// Whole file; `file_missing` / `io_error`.
Result<std::string> read_file(const std::filesystem::path& path);

// Standard base64 (with padding) via libsodium. decode: nullopt-like error `bad_base64`.
std::string base64_encode(Bytes data);
Result<std::string> base64_decode(std::string_view text);

}  // namespace meshd::proto

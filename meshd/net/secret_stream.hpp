// One direction of an encrypted peer connection: libsodium
// crypto_secretstream_xchacha20poly1305. The sender's push state produces a 24-byte header
// (sent in HelloAuth) and one ciphertext per frame (plaintext + 17 bytes); the receiver's
// pull state authenticates each ciphertext and its position in the stream, so reordered,
// replayed, dropped or truncated frames fail to open.
//
// States and keys are wiped (sodium_memzero) on destruction. Move-only.
#pragma once

#include <sodium.h>

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "meshd/common/result.hpp"

namespace meshd::net {

constexpr std::size_t stream_key_size = crypto_secretstream_xchacha20poly1305_KEYBYTES;
constexpr std::size_t stream_header_size = crypto_secretstream_xchacha20poly1305_HEADERBYTES;
constexpr std::size_t stream_overhead = crypto_secretstream_xchacha20poly1305_ABYTES;

using StreamKey = std::array<std::uint8_t, stream_key_size>;
using StreamHeader = std::array<std::uint8_t, stream_header_size>;

class SecretStreamPush {
 public:
  // Starts a stream under `key`; the header must reach the receiver before any frame.
  explicit SecretStreamPush(const StreamKey& key);
  SecretStreamPush(SecretStreamPush&&) noexcept;
  SecretStreamPush& operator=(SecretStreamPush&&) noexcept;
  SecretStreamPush(const SecretStreamPush&) = delete;
  SecretStreamPush& operator=(const SecretStreamPush&) = delete;
  ~SecretStreamPush();

  const StreamHeader& header() const { return header_; }
  // Appends the ciphertext of `plain` (plain.size() + stream_overhead bytes) to `out`.
  void seal(std::span<const std::uint8_t> plain, std::vector<std::uint8_t>& out);

 private:
  crypto_secretstream_xchacha20poly1305_state state_{};
  StreamHeader header_{};
};

class SecretStreamPull {
 public:
  // Errors: `bad_stream_header` (wrong size or rejected by libsodium).
  static Result<SecretStreamPull> open(std::span<const std::uint8_t> header, const StreamKey& key);
  SecretStreamPull(SecretStreamPull&&) noexcept;
  SecretStreamPull& operator=(SecretStreamPull&&) noexcept;
  SecretStreamPull(const SecretStreamPull&) = delete;
  SecretStreamPull& operator=(const SecretStreamPull&) = delete;
  ~SecretStreamPull();

  // Decrypts one ciphertext into `out` (resized to the plaintext size). Errors:
  // `decrypt_failed` (too short, forged, out of order, or a tag other than MESSAGE — meshd
  // never ends a stream with FINAL, it closes the socket). After an error the stream is
  // unusable: the connection must be closed.
  Result<void> unseal(std::span<const std::uint8_t> cipher, std::vector<std::uint8_t>& out);

 private:
  SecretStreamPull() = default;
  crypto_secretstream_xchacha20poly1305_state state_{};
};

}  // namespace meshd::net

#include "meshd/net/secret_stream.hpp"

#include <utility>

namespace meshd::net {

SecretStreamPush::SecretStreamPush(const StreamKey& key) {
  crypto_secretstream_xchacha20poly1305_init_push(&state_, header_.data(), key.data());
}

SecretStreamPush::SecretStreamPush(SecretStreamPush&& other) noexcept
    : state_(other.state_), header_(other.header_) {
  sodium_memzero(&other.state_, sizeof other.state_);
}

SecretStreamPush& SecretStreamPush::operator=(SecretStreamPush&& other) noexcept {
  if (this != &other) {
    state_ = other.state_;
    header_ = other.header_;
    sodium_memzero(&other.state_, sizeof other.state_);
  }
  return *this;
}

SecretStreamPush::~SecretStreamPush() {
  sodium_memzero(&state_, sizeof state_);
}

void SecretStreamPush::seal(std::span<const std::uint8_t> plain, std::vector<std::uint8_t>& out) {
  const std::size_t at = out.size();
  out.resize(at + plain.size() + stream_overhead);
  unsigned long long written = 0;
  crypto_secretstream_xchacha20poly1305_push(&state_, out.data() + at, &written, plain.data(),
                                             plain.size(), nullptr, 0,
                                             crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
  out.resize(at + written);
}

Result<SecretStreamPull> SecretStreamPull::open(std::span<const std::uint8_t> header,
                                                const StreamKey& key) {
  if (header.size() != stream_header_size) {
    return fail("bad_stream_header", "secretstream header is " + std::to_string(header.size()) +
                                         " bytes, expected " + std::to_string(stream_header_size));
  }
  SecretStreamPull pull;
  if (crypto_secretstream_xchacha20poly1305_init_pull(&pull.state_, header.data(), key.data()) !=
      0) {
    return fail("bad_stream_header", "secretstream header rejected by libsodium");
  }
  return pull;
}

SecretStreamPull::SecretStreamPull(SecretStreamPull&& other) noexcept : state_(other.state_) {
  sodium_memzero(&other.state_, sizeof other.state_);
}

SecretStreamPull& SecretStreamPull::operator=(SecretStreamPull&& other) noexcept {
  if (this != &other) {
    state_ = other.state_;
    sodium_memzero(&other.state_, sizeof other.state_);
  }
  return *this;
}

SecretStreamPull::~SecretStreamPull() {
  sodium_memzero(&state_, sizeof state_);
}

Result<void> SecretStreamPull::unseal(std::span<const std::uint8_t> cipher,
                                      std::vector<std::uint8_t>& out) {
  if (cipher.size() < stream_overhead) {
    return fail("decrypt_failed", "encrypted frame of " + std::to_string(cipher.size()) +
                                      " bytes is shorter than the " +
                                      std::to_string(stream_overhead) + "-byte authenticator");
  }
  out.resize(cipher.size() - stream_overhead);
  unsigned long long len = 0;
  unsigned char tag = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(&state_, out.data(), &len, &tag, cipher.data(),
                                                 cipher.size(), nullptr, 0) != 0) {
    return fail("decrypt_failed", "encrypted frame of " + std::to_string(cipher.size()) +
                                      " bytes failed authentication");
  }
  if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE) {
    return fail("decrypt_failed",
                "encrypted frame carries an unexpected stream tag " + std::to_string(tag));
  }
  out.resize(len);
  return {};
}

}  // namespace meshd::net

#include "proto/keys.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "meshd/common/errno_text.hpp"

namespace meshd::proto {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view secret_header = "meshd-ed25519-secret-v1";
constexpr std::string_view public_header = "meshd-ed25519-public-v1";

std::string mode_octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Closes an fd on scope exit.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

Result<std::string> read_fd(int fd, const fs::path& path) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("io_error", "cannot read " + path.string() + ": " + errno_text(errno));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > (1u << 20)) {
      return fail("io_error", path.string() + " is larger than 1 MiB; not a meshd key or cert");
    }
  }
  return out;
}

Result<int> open_read(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return fail("file_missing", path.string() + " does not exist");
    return fail("io_error", "cannot open " + path.string() + ": " + errno_text(err));
  }
  return fd;
}

// Splits "<header> <base64>\n" and checks the header; returns the decoded payload.
Result<std::string> parse_armored(std::string_view text, std::string_view header,
                                  std::string_view source, std::string_view code) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  auto space = text.find(' ');
  std::string_view got = text.substr(0, space);
  if (got != header) {
    std::string what = got.size() > 40 ? std::string(got.substr(0, 40)) + "..." : std::string(got);
    return fail(std::string(code), std::string(source) + " does not start with '" +
                                       std::string(header) + "' (found '" + what + "')");
  }
  if (space == std::string_view::npos) {
    return fail(std::string(code), std::string(source) + " has no data after the header");
  }
  auto decoded = base64_decode(text.substr(space + 1));
  if (!decoded) {
    return fail(std::string(code), std::string(source) + ": " + decoded.error().message);
  }
  return decoded;
}

}  // namespace

std::string base64_encode(Bytes data) {
  ensure_sodium();
  std::size_t cap = sodium_base64_ENCODED_LEN(data.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string out(cap, '\0');
  sodium_bin2base64(out.data(), cap, data.data(), data.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  ensure_sodium();
  std::string out(text.size(), '\0');
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return fail("bad_base64", "invalid base64 data");
  }
  out.resize(len);
  return out;
}

Result<void> write_file_atomic(const fs::path& path, std::string_view content, unsigned mode,
                               bool overwrite) {
  std::error_code ec;
  if (!overwrite && fs::exists(path, ec)) {
    return fail("file_exists", path.string() + " already exists; refusing to overwrite it");
  }
  fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + path.filename().string() + ".tmp.XXXXXX")).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());  // created 0600, so a secret is never briefly exposed
  if (fd < 0) {
    return fail("io_error", "cannot create a file in " + dir.string() + ": " + errno_text(errno));
  }
  std::string tmp(name.data());
  auto cleanup_fail = [&](std::string what) -> Result<void> {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail("io_error", what + " " + path.string() + ": " + errno_text(err));
  };
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) return cleanup_fail("cannot chmod");
  std::size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return cleanup_fail("cannot write");
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return cleanup_fail("cannot fsync");
  ::close(fd);
  if (overwrite) {
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return fail("io_error", "cannot rename into " + path.string() + ": " + errno_text(err));
    }
  } else {
    // link() fails with EEXIST instead of replacing: no clobbering even under a race.
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      if (err == EEXIST) {
        return fail("file_exists", path.string() + " already exists; refusing to overwrite it");
      }
      return fail("io_error", "cannot create " + path.string() + ": " + errno_text(err));
    }
    ::unlink(tmp.c_str());
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // best effort: make the rename durable
    ::close(dfd);
  }
  return {};
}

Result<std::string> read_file(const fs::path& path) {
  auto fd = open_read(path);
  if (!fd) return std::unexpected(fd.error());
  FdGuard guard{*fd};
  return read_fd(*fd, path);
}

Result<void> write_secret_key(const fs::path& path, const SecretKey& key, bool overwrite) {
  std::string b64 = base64_encode(key.seed());
  std::string text = std::string(secret_header) + " " + b64 + "\n";
  auto r = write_file_atomic(path, text, 0600, overwrite);
  sodium_memzero(b64.data(), b64.size());
  sodium_memzero(text.data(), text.size());
  return r;
}

std::string format_public_key(const PublicKey& key) {
  return std::string(public_header) + " " + base64_encode(key.bytes) + "\n";
}

Result<void> write_public_key(const fs::path& path, const PublicKey& key, bool overwrite) {
  return write_file_atomic(path, format_public_key(key), 0644, overwrite);
}

Result<SecretKey> load_secret_key(const fs::path& path) {
  auto fd = open_read(path);
  if (!fd) return std::unexpected(fd.error());
  FdGuard guard{*fd};
  struct stat st {};
  if (::fstat(*fd, &st) != 0) {
    return fail("io_error", "cannot stat " + path.string() + ": " + errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return fail("key_format", path.string() + " is not a regular file");
  }
  // Checked on the opened fd, so a chmod between check and read cannot slip through.
  if ((st.st_mode & 077) != 0) {
    std::string what = (st.st_mode & 044) ? "readable" : "accessible";
    return fail("key_permissions", path.string() + " is " + what + " by group/others (mode " +
                                       mode_octal(st.st_mode) + "); chmod 600 " + path.string());
  }
  auto text = read_fd(*fd, path);
  if (!text) return std::unexpected(text.error());
  if (text->starts_with(public_header)) {
    return fail("key_format", path.string() + " is a public key file, not a secret key");
  }
  auto seed = parse_armored(*text, secret_header, path.string(), "key_format");
  sodium_memzero(text->data(), text->size());
  if (!seed) return std::unexpected(seed.error());
  if (seed->size() != seed_size) {
    return fail("key_format", path.string() + " holds " + std::to_string(seed->size()) +
                                  " key bytes, expected " + std::to_string(seed_size));
  }
  auto key = SecretKey::from_seed(as_bytes(*seed));
  sodium_memzero(seed->data(), seed->size());
  return key;
}

Result<PublicKey> parse_public_key(std::string_view text, std::string_view source_name) {
  if (text.starts_with(secret_header)) {
    return fail("key_format", std::string(source_name) +
                                  " is a secret key file, not a public key; pass the .pub file");
  }
  auto raw = parse_armored(text, public_header, source_name, "key_format");
  if (!raw) return std::unexpected(raw.error());
  if (raw->size() != public_key_size) {
    return fail("key_format", std::string(source_name) + " holds " + std::to_string(raw->size()) +
                                  " key bytes, expected " + std::to_string(public_key_size));
  }
  return PublicKey::from_bytes(as_bytes(*raw));
}

Result<PublicKey> load_public_key(const fs::path& path) {
  auto text = read_file(path);
  if (!text) return std::unexpected(text.error());
  return parse_public_key(*text, path.string());
}

}  // namespace meshd::proto
